"""The reward rate over time: a ring buffer per experiment, sampled from
the engine's counters and arm statistics every ``interval`` seconds.

Each sample holds the time, the counters ``decisions``, ``rewards_applied``
and ``rewards_defaulted``, and the sums over the experiment's arms (retired
ones included) of ``pulls`` and ``reward_sum``. A point of the series is the
difference of two consecutive samples:

- ``decisions_per_s`` and ``rewards_per_s`` (applied plus defaulted), per
  second of the interval;
- ``mean_reward``: the mean reward the champion's arms learned from in the
  interval, Feedback and default rewards alike (``Δreward_sum / Δpulls``,
  in reward units); None when no reward was learned from, or when the
  champion changed in the interval (the arm statistics are the champion's).

The buffer keeps ``points`` samples (by default 300 at 2 s: the last ten
minutes); it lives in the serving process only and starts empty at each
start. Experiments with more than ``max_arms`` arms are sampled from their
counters alone (their ``mean_reward`` is None): a pass over every arm's
posterior would cost too much every few seconds.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bandit_engine._exceptions import BanditError

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_INTERVAL", "DEFAULT_POINTS", "RateHistory", "Sample"]

#: Seconds between samples.
DEFAULT_INTERVAL = 2.0
#: Samples kept per experiment (300 at 2 s: ten minutes).
DEFAULT_POINTS = 300
#: Experiments with more arms than this are sampled from their counters only.
DEFAULT_MAX_ARMS = 2_000


@dataclass(frozen=True, slots=True)
class Sample:
    t: float
    decisions: int
    rewards: int
    pulls: int | None
    reward_sum: float | None
    champion: str


class RateHistory:
    """Samples of every experiment of ``engine``, taken by a thread of its own."""

    def __init__(
        self,
        engine: Any,
        interval: float = DEFAULT_INTERVAL,
        points: int = DEFAULT_POINTS,
        max_arms: int = DEFAULT_MAX_ARMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0 or points < 2:
            raise ValueError("interval must be > 0 and points >= 2")
        self.engine = engine
        self.interval = interval
        self.points = points
        self.max_arms = max_arms
        self._clock = clock
        self._samples: dict[str, deque[Sample]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def window_seconds(self) -> float:
        return self.interval * self.points

    def start(self) -> None:
        self._take()
        self._thread = threading.Thread(target=self._run, name="dashboard-rates", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take()

    def _take(self) -> None:
        try:
            self.sample()
        except Exception:  # a failing store must not end the sampling
            log.warning("dashboard: sampling the counters failed", exc_info=True)

    def sample(self) -> None:
        """Take one sample of every experiment."""
        now = self._clock()
        taken: dict[str, Sample] = {}
        for info in self.engine.list_experiments():
            exp_id = info.config.experiment_id
            c = info.counters
            pulls: int | None = None
            rsum: float | None = None
            if info.total_arms <= self.max_arms:
                try:
                    arms = self.engine.list_arms(exp_id, include_retired=True)
                except BanditError:
                    arms = None
                if arms is not None:
                    pulls = sum(a.pulls for a in arms)
                    rsum = float(sum(a.reward_sum for a in arms))
            taken[exp_id] = Sample(
                now,
                int(c.get("decisions", 0)),
                int(c.get("rewards_applied", 0)) + int(c.get("rewards_defaulted", 0)),
                pulls,
                rsum,
                info.champion,
            )
        with self._lock:
            for exp_id, s in taken.items():
                self._samples.setdefault(exp_id, deque(maxlen=self.points)).append(s)
            for gone in set(self._samples) - set(taken):
                del self._samples[gone]

    def series(self, experiment_id: str) -> list[dict[str, Any]]:
        """The points of one experiment, oldest first (module doc)."""
        with self._lock:
            samples = list(self._samples.get(experiment_id, ()))
        out = []
        for a, b in itertools.pairwise(samples):
            dt = b.t - a.t
            if dt <= 0:
                continue
            mean = None
            same = a.champion == b.champion
            if same and a.pulls is not None and b.pulls is not None and b.pulls > a.pulls:
                assert a.reward_sum is not None and b.reward_sum is not None
                mean = (b.reward_sum - a.reward_sum) / (b.pulls - a.pulls)
            out.append(
                {
                    "t": b.t,
                    "decisions_per_s": (b.decisions - a.decisions) / dt,
                    "rewards_per_s": (b.rewards - a.rewards) / dt,
                    "mean_reward": mean,
                }
            )
        return out
