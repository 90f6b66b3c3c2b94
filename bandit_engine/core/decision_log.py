"""Embedded mode's decision writer: stores the journal rows not yet stored."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from bandit_engine.core.experiment import Experiment
from bandit_engine.core.ports import RewardRow, Store

log = logging.getLogger(__name__)

__all__ = ["DecisionLog"]


class DecisionLog:
    """Stores what each experiment's journal holds unwritten, in batches.

    Recommend never waits on I/O: it fills a journal row, and a writer thread
    stores the rows every ``interval`` seconds. A reward for a decision not
    stored yet is committed with it (``commit_rewards``). Past ``max_buffer`` unwritten
    rows in an experiment, Recommend is refused (ResourceExhausted) rather
    than the buffer growing without bound.
    """

    def __init__(
        self,
        store: Store,
        experiments: Callable[[], list[Experiment]],
        interval: float = 0.02,
        max_buffer: int = 100_000,
    ) -> None:
        self._store = store
        self._experiments = experiments
        self._interval = interval
        self.max_buffer = max_buffer
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
            self._thread.start()

    def flush(self, only: Experiment | None = None) -> int:
        """Store every decision made so far (of experiment ``only``, if
        given); how many were stored. An experiment whose rows the store
        refuses does not hold up the others: the first error is raised once
        every experiment has been tried, and its rows are tried again next
        time."""
        with self._write_lock:
            n = 0
            error: Exception | None = None
            for exp in self._experiments() if only is None else [only]:
                batch = exp.journal.unwritten(exp.arm_ids)
                if batch is None:
                    continue
                try:
                    self._store.log_decisions(batch.rows)
                except Exception as exc:
                    error = error or exc
                    continue
                exp.journal.mark_written(batch.end)
                n += len(batch.rows)
            if error is not None:
                raise error
            return n

    def commit_rewards(
        self, exp: Experiment, rows: Sequence[RewardRow], close_events: Sequence[str] = ()
    ) -> list[int | None]:
        """Commit reward rows of ``exp`` in one transaction with the
        experiment's decisions not stored yet (``Store.commit_rewards``), so
        that a reward row is never durable before its decision row; seq or
        None for each reward. One transaction in place of a flush and a
        commit."""
        with self._write_lock:
            batch = exp.journal.unwritten(exp.arm_ids)
            seqs = self._store.commit_rewards(rows, close_events, batch.rows if batch else ())
            if batch is not None:
                exp.journal.mark_written(batch.end)
            return seqs

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception:  # keep logging; the rows are retried next tick
                log.exception("decision log flush failed")

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
