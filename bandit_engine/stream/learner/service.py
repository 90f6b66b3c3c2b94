"""``Learner``, the facade over the learner's parts, and ``run_learner``."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from bandit_engine.store import LearnerStore
from bandit_engine.stream.learner.commit import Committer
from bandit_engine.stream.learner.consumer import ConsumerLoop
from bandit_engine.stream.learner.join import JoinState
from bandit_engine.stream.partitioner import owner_partition
from bandit_engine.stream.settings import KafkaSettings, ensure_topics

__all__ = ["Learner", "run_learner"]

log = logging.getLogger(__name__)


class Learner:
    """Consume decisions and feedback, join, update posteriors, commit.

    ``commit_interval``: seconds between commits. ``lateness``: seconds a
    window stays open past its deadline. ``orphan_grace``: seconds a reward
    waits for its decision. ``closed_retention``: seconds a closed event is
    remembered. ``max_records``: records per fetch at most.
    ``gc_threshold``: the garbage collector's thresholds while the learner
    runs (None: leave them). ``fetch_max_wait_ms``: longest a fetch waits at
    the head of the log. ``group_instance_id``: Kafka static membership.
    ``hold_rewards``: hold rewards that are ahead of their decisions
    (``flow``). ``snapshot_parts`` and ``absorb_interval``: learners that
    share the partitions store evidence beside the snapshots (``Committer``).
    """

    def __init__(
        self,
        store: LearnerStore,
        settings: KafkaSettings,
        *,
        commit_interval: float = 0.1,
        lateness: float = 2.0,
        orphan_grace: float = 10.0,
        closed_retention: float = 3600.0,
        max_records: int = 20_000,
        clock: Callable[[], float] = time.time,
        gc_threshold: tuple[int, int, int] | None = (50_000, 20, 100),
        fetch_max_wait_ms: int = 20,
        group_instance_id: str | None = None,
        hold_rewards: bool = True,
        snapshot_parts: bool = True,
        absorb_interval: float = 0.25,
    ) -> None:
        self.store = store
        self.settings = settings
        self.gc_threshold = gc_threshold
        self.join = JoinState(
            lateness=lateness, orphan_grace=orphan_grace, closed_retention=closed_retention
        )
        self.committer = Committer(
            store,
            settings,
            self.join,
            clock=clock,
            snapshot_parts=snapshot_parts,
            absorb_interval=absorb_interval,
        )
        self.consumer = ConsumerLoop(
            settings,
            self.committer,
            commit_interval=commit_interval,
            max_records=max_records,
            fetch_max_wait_ms=fetch_max_wait_ms,
            group_instance_id=group_instance_id,
            hold_rewards=hold_rewards,
            clock=clock,
        )

    @property
    def ready(self) -> asyncio.Event:
        """Set once partitions are assigned and restored."""
        return self.consumer.ready

    @property
    def applied(self) -> int:
        """Posterior updates committed (feedback and default rewards)."""
        return self.committer.applied

    @property
    def forwarded(self) -> int:
        """Rewards forwarded to the partition of their decision, committed."""
        return self.committer.forwarded

    @property
    def commits(self) -> int:
        return self.committer.commits

    @property
    def latency_ms(self) -> deque[float]:
        """Reward timestamp to committed posterior, ms (the most recent rewards)."""
        return self.committer.latency_ms

    @property
    def commit_seconds(self) -> deque[float]:
        """Durations of the most recent commits, seconds."""
        return self.committer.commit_seconds

    def lag(self) -> tuple[int, float]:
        """Records not yet processed (both logs), and seconds behind the
        newest decision or reward time seen, per the consumer's last fetch."""
        flow = self.consumer.flow
        return (0, 0.0) if flow is None else flow.lag()

    async def commit(self) -> bool:
        """Commit now (``Committer.commit``)."""
        return await self.committer.commit()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then commit and leave the group."""
        n = await ensure_topics(self.settings)
        self.committer.n_partitions = n
        # a reward read on a partition that does not own its event id is
        # forwarded to the one that does (``forward``)
        self.join.owner = None if n == 1 else lambda ev: owner_partition(ev.encode(), n)
        # The join state keeps a few objects per pending decision, hundreds of
        # thousands under load, and the collector's default thresholds
        # (700, 10, 10) rescan them often. Fewer, larger young collections
        # while the learner runs; the process-wide setting is put back after.
        saved_gc = gc.get_threshold()
        if self.gc_threshold is not None:
            gc.set_threshold(*self.gc_threshold)
        try:
            await self.consumer.run(stop)
        finally:
            gc.set_threshold(*saved_gc)
            self.committer.close()


def run_learner(
    store: LearnerStore,
    settings: KafkaSettings,
    metrics_port: int | None = None,
    metrics_host: str = "127.0.0.1",
    **kw: Any,
) -> None:
    """Run a learner until SIGTERM/SIGINT (for ``bandit-engine learn``)."""
    import signal

    learner = Learner(store, settings, **kw)
    metrics = None
    if metrics_port is not None:
        from bandit_engine.server.metrics import Metrics

        metrics = Metrics()
        metrics.watch_learner(learner)
        metrics.serve(metrics_host, metrics_port)
        log.info("learner metrics on %s:%d/metrics", metrics_host, metrics.port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await learner.run(stop)

    try:
        asyncio.run(main())
    finally:
        if metrics is not None:
            metrics.close()
