"""The faults, each fired once and timed until the system has recovered.

- ``server``: SIGKILL a random server and start it again; recovered when its
  health check answers SERVING;
- ``learner``: SIGKILL the learner and start it again; recovered when it
  commits offsets again;
- ``mysql``: KILL every connection to the campaign's database (the
  learner's and the servers'); recovery is immediate by definition (the
  processes reconnect on their next query; the checks show whether that
  lost anything);
- ``broker``: stop the local broker (SIGTERM), keep it down 0.5 to 2 s and
  start it again; recovered when the learner commits again.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from bandit_engine.store import MySQLStore
from harness.chaos.cluster import Cluster, serving, wait_until
from harness.local_broker import LocalBroker
from harness.services import kill_connections

__all__ = ["DEFAULT_FAULTS", "FAULTS", "Faults"]

FAULTS = ("server", "learner", "mysql", "broker")
#: The default campaign. "broker" is opt-in: the bundled Tansu over S3 can
#: lose acknowledged records across a restart under load (``harness.chaos``),
#: so with it the checks measure the broker, not the engine.
DEFAULT_FAULTS = ("server", "learner", "mysql")

#: Longest wait for a recovery before the fault is reported as not recovered.
RECOVERY_TIMEOUT_S = 60.0


@dataclass
class Faults:
    """Fires faults at a cluster; each ``fire`` returns the fault and its recovery time."""

    cluster: Cluster
    store: MySQLStore
    admin: Any  # a PyMySQL connection outside the campaign's database
    database: str
    rng: random.Random
    broker: LocalBroker | None = None  # a restartable broker, for "broker"

    def fire(self, kind: str) -> dict[str, Any]:
        return dict(getattr(self, f"_{kind}")())

    def _until_learner_commits(self, before: Any, t0: float) -> float:
        """Seconds from ``t0`` until the learner's committed offsets differ
        from ``before`` (at most RECOVERY_TIMEOUT_S after the call)."""
        group = self.cluster.settings.group_id
        try:
            wait_until(
                "the learner commits",
                lambda: self.store.learner_offsets(group) != before,
                RECOVERY_TIMEOUT_S,
            )
        except TimeoutError:
            pass  # reported as a recovery time that long
        return time.monotonic() - t0

    def _server(self) -> dict[str, Any]:
        s = self.rng.choice(self.cluster.servers)
        t0 = time.monotonic()
        s.kill()
        s.start()
        try:
            wait_until(f"{s.name} serving", lambda: serving(s.port), RECOVERY_TIMEOUT_S)
        except TimeoutError:
            pass  # reported as a recovery time that long
        return {"fault": f"SIGKILL {s.name}", "recovery_s": time.monotonic() - t0}

    def _learner(self) -> dict[str, Any]:
        learner = self.cluster.learner
        assert learner is not None
        t0 = time.monotonic()
        before = self.store.learner_offsets(self.cluster.settings.group_id)
        learner.kill()
        learner.start()
        return {"fault": "SIGKILL learner", "recovery_s": self._until_learner_commits(before, t0)}

    def _broker(self) -> dict[str, Any]:
        assert self.broker is not None
        down = self.rng.uniform(0.5, 2.0)
        self.broker.kill(graceful=True)
        time.sleep(down)  # the outage itself
        before = self.store.learner_offsets(self.cluster.settings.group_id)
        t0 = time.monotonic()
        self.broker.start()
        recovery = self._until_learner_commits(before, t0)
        return {"fault": f"restart broker ({down:.1f}s down)", "recovery_s": recovery}

    def _mysql(self) -> dict[str, Any]:
        t0 = time.monotonic()
        n = kill_connections(self.admin, self.database)
        return {"fault": f"KILL {n} MySQL connections", "recovery_s": time.monotonic() - t0}
