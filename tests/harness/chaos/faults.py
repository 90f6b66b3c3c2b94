"""The faults, each fired once and timed until the system has recovered.

- ``server``: SIGKILL a random server and start it again; recovered when its
  health check answers SERVING;
- ``learner``: SIGKILL a learner (a random one when there are several) and
  start it again;
- ``mysql``: KILL every connection to the campaign's database (the
  learners' and the servers'); the processes reconnect on their next query;
- ``broker``: stop the local broker (SIGTERM), keep it down 0.5 to 2 s and
  start it again.

The last three have recovered when the learners have caught up with the
fault: the committed offsets of every partition with records, read after
the fault, have moved, and have reached the end the logs had at the
fault. Offsets committed before the fault do not count, nor does a learner
that commits while still behind; with several learners, each partition's
own commit counts, so one learner's commits do not stand for another's.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from bandit_engine.store import MySQLStore
from harness.chaos.cluster import Cluster, serving, wait_until
from harness.local_broker import LocalBroker
from harness.services import behind, kill_connections, log_ends

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

    def _until_caught_up(self, ends: dict[tuple[str, int], int], t0: float) -> dict[str, Any]:
        """Seconds from ``t0`` until every partition in ``ends`` (the logs'
        ends at the fault) has a committed position past its end, from a
        commit made after this call (at most RECOVERY_TIMEOUT_S after the
        call)."""
        settings = self.cluster.settings
        group = settings.group_id
        after_fault = self.store.learner_offsets(group)
        parts = {p for (_, p), end in ends.items() if end > 0}  # partitions with records

        def caught_up() -> bool:
            now = self.store.learner_offsets(group)
            moved = all(p in now and now[p] != after_fault.get(p) for p in parts)
            return moved and not behind(settings, now, ends)

        try:
            wait_until("the learners catch up with the fault", caught_up, RECOVERY_TIMEOUT_S)
        except TimeoutError:
            return {"recovery_s": time.monotonic() - t0, "recovered": False}
        return {"recovery_s": time.monotonic() - t0, "recovered": True}

    def _server(self) -> dict[str, Any]:
        s = self.rng.choice(self.cluster.servers)
        t0 = time.monotonic()
        s.kill()
        s.start()
        recovered = True
        try:
            wait_until(f"{s.name} serving", lambda: serving(s.port), RECOVERY_TIMEOUT_S)
        except TimeoutError:
            recovered = False
        return {
            "fault": f"SIGKILL {s.name}",
            "recovery_s": time.monotonic() - t0,
            "recovered": recovered,
        }

    def _learner(self) -> dict[str, Any]:
        learners = self.cluster.learners
        # one learner: no draw, so a seed fires the same faults as ever
        learner = learners[0] if len(learners) == 1 else self.rng.choice(learners)
        t0 = time.monotonic()
        learner.kill()  # from here on, no commit comes from the old process
        ends = log_ends(self.cluster.settings)
        learner.start()
        recovery = self._until_caught_up(ends, t0)
        return {"fault": f"SIGKILL {learner.name}", "process": learner.name, **recovery}

    def _broker(self) -> dict[str, Any]:
        assert self.broker is not None
        down = self.rng.uniform(0.5, 2.0)
        ends = log_ends(self.cluster.settings)
        self.broker.kill(graceful=True)
        time.sleep(down)  # the outage itself
        t0 = time.monotonic()
        self.broker.start()
        recovery = self._until_caught_up(ends, t0)
        return {"fault": f"restart broker ({down:.1f}s down)", **recovery}

    def _mysql(self) -> dict[str, Any]:
        ends = log_ends(self.cluster.settings)
        t0 = time.monotonic()
        n = kill_connections(self.admin, self.database)
        recovery = self._until_caught_up(ends, t0)
        return {"fault": f"KILL {n} MySQL connections", **recovery}
