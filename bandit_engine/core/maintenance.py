"""The engine's background loop: reward windows, checkpoints, log retention;
in Kafka mode, following the posteriors the learners commit."""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.core.ports import PRUNE_CHUNK

if TYPE_CHECKING:
    from bandit_engine.core.engine import Engine

log = logging.getLogger(__name__)

__all__ = ["Maintenance"]


class Maintenance:
    """Runs an engine's periodic work on one thread.

    Embedded mode, every tick: close expired windows (``Engine.sweep``);
    every ``checkpoint_interval``: snapshot changed experiments; with
    ``log_retention`` > 0, every ``prune_interval``: delete closed decisions
    older than the retention, with their rewards (``prune_log``). Kafka mode,
    every ``refresh_interval``: ``Engine.refresh``.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        checkpoint_interval: float,
        refresh_interval: float,
        log_retention: float,
        prune_interval: float,
    ) -> None:
        if not (math.isfinite(log_retention) and log_retention >= 0):
            raise InvalidArgument(f"log_retention={log_retention!r} must be >= 0 seconds (0: keep)")
        if not (math.isfinite(prune_interval) and prune_interval > 0):
            raise InvalidArgument(f"prune_interval={prune_interval!r} must be > 0 seconds")
        self._engine = engine
        self.checkpoint_interval = checkpoint_interval
        self.refresh_interval = refresh_interval
        #: Seconds a closed decision and its rewards stay in the log past the
        #: decision's deadline (embedded and MySQL-log modes); 0 keeps them.
        self.log_retention = log_retention
        self.prune_interval = prune_interval
        #: Rows deleted by ``prune_log`` since the start: decisions, rewards.
        self.pruned_decisions = 0
        self.pruned_rewards = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, tick: float) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(tick,), name="engine-maintenance", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self, tick: float) -> None:
        engine = self._engine
        last_ckpt = last_prune = time.monotonic()
        pruning = False  # a pruning round that ran out of its time budget
        if not engine.embedded:
            tick = min(tick, self.refresh_interval)
        while not self._stop.wait(tick):
            try:
                if not engine.embedded:
                    engine.refresh()
                    continue
                engine.sweep()
                if time.monotonic() - last_ckpt >= self.checkpoint_interval:
                    engine.checkpoint()
                    last_ckpt = time.monotonic()
                if self.log_retention > 0 and (
                    pruning or time.monotonic() - last_prune >= self.prune_interval
                ):
                    pruning = self.prune_log(budget=0.5)
                    last_prune = time.monotonic()
            except Exception:
                log.exception("maintenance tick failed")

    def prune_log(
        self, now: float | None = None, *, budget: float = 0.5, limit: int = PRUNE_CHUNK
    ) -> bool:
        """Delete decisions closed more than ``log_retention`` seconds past their
        deadline, with their rewards (``Store.prune_log``), ``limit`` at a time
        with a pause between chunks, so that the decision writer and Feedback
        commits get the store in between. Stops after ``budget`` seconds;
        returns True if rows may remain (the loop goes on at its next tick).
        Not in Kafka mode, where the log is in Kafka."""
        engine = self._engine
        if self.log_retention <= 0 or not engine.embedded:
            return False
        before = (engine.clock() if now is None else now) - self.log_retention
        t_end = time.monotonic() + budget
        decisions = rewards = 0
        more = True
        while more and not self._stop.is_set():
            d, r = engine.store.prune_log(before, limit)
            decisions += d
            rewards += r
            more = d > 0 or r > 0
            if time.monotonic() >= t_end:
                break
            if more:
                self._stop.wait(0.005)  # the store to others between chunks
        with self._lock:
            self.pruned_decisions += decisions
            self.pruned_rewards += rewards
        if decisions or rewards:
            log.info(
                "log retention: deleted %d decisions and %d rewards closed before %.0f",
                decisions,
                rewards,
                before,
            )
        return more
