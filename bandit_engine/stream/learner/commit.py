"""Between the join state and the store: restore, experiments, commits.

Every store call runs on one database thread of the learner's own, never on
the event loop that heartbeats Kafka; the loop goes on taking records while
a commit is on that thread.

A commit stores, in one ``learner_commit`` transaction, what the join state
hands over (``JoinState.checkpoint``). Commits are serialised, and none runs
after a failed one until the state is reloaded (``reset``): a failed
transaction may or may not have landed, so the join state is void. Without
that rule a commit from the rebalance listener and one from the main loop
could both be queued; if the first failed and the second succeeded, the
second's offsets would cover the first one's rewards, which were never
applied. The rewards that the join state forwards to another partition
(``forward``) are acknowledged by the broker before the transaction that
commits their offsets; if one is not, the commit fails the same way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from bandit_engine.store import LearnerOffsets, LearnerStore
from bandit_engine.stream.learner.decode import DecisionIn
from bandit_engine.stream.learner.forward import ForwardSink, forward
from bandit_engine.stream.learner.join import JoinState, Need
from bandit_engine.stream.learner.models import Models
from bandit_engine.stream.settings import KafkaSettings

__all__ = ["Committer", "DeadLetterSink"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class DeadLetterSink(Protocol):
    """Where dead letters go after their commit (an aiokafka producer)."""

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> Awaitable[Any]: ...


class Committer:
    """Restores the join state from a ``LearnerStore``, loads the experiments
    it asks for, and commits it.

    ``forward_sink``: where forwarded rewards are written (needed once the
    join state forwards any).

    ``applied`` (posterior updates committed: feedback and default rewards),
    ``forwarded`` (rewards forwarded to another partition, committed),
    ``commits``, ``latency_ms`` (reward timestamp to committed posterior, the
    most recent rewards) and ``commit_seconds`` (the most recent commits)
    are for metrics.
    """

    def __init__(
        self,
        store: LearnerStore,
        settings: KafkaSettings,
        join: JoinState,
        *,
        clock: Callable[[], float] = time.time,
        dead_letters: DeadLetterSink | None = None,
        forward_sink: ForwardSink | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.join = join
        self.models = Models(store)
        self.clock = clock
        self.dead_letters = dead_letters
        self.forward_sink = forward_sink
        self.needs_reset = False
        self.applied = 0
        self.forwarded = 0
        self.commits = 0
        self.latency_ms: deque[float] = deque(maxlen=100_000)
        self.commit_seconds: deque[float] = deque(maxlen=10_000)
        self._db = ThreadPoolExecutor(1, thread_name_prefix="learner-db")
        self._lock = asyncio.Lock()

    async def in_db(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the database thread."""
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    def close(self) -> None:
        """Wait for the database thread's work, then stop it."""
        self._db.shutdown(wait=True)

    # -------------------------------------------------------------- restore
    async def restore(self, partitions: Iterable[int]) -> dict[int, LearnerOffsets]:
        """(Re)build ``partitions`` from the committed positions and held
        rewards; returns their committed positions (read the logs again from
        each ``dec_resume`` and ``fb_resume``)."""
        g = self.settings.group_id
        stored, held = await self.in_db(
            lambda: (self.store.learner_offsets(g), self.store.learner_held(g))
        )
        out = {}
        for p in sorted(partitions):
            part = self.join.assign(p, stored.get(p), held.get(p))
            out[p] = part.committed
        return out

    async def reset(self) -> dict[int, LearnerOffsets]:
        """After a failed commit: forget what is not committed, restore the
        same partitions from the store (see ``restore``)."""
        self.models.clear()
        parts = self.join.clear()
        self.needs_reset = False
        return await self.restore(parts)

    # ---------------------------------------------------------- experiments
    async def load(self, need: Need) -> None:
        """Load what a decision named: its experiment, or arms added since."""
        exp_id = need.experiment_id
        model = self.models.get(exp_id)
        if model is None:
            model = await self.in_db(self.models.load, exp_id)
            if model is None:
                return
            self.models.put(exp_id, model)
        elif need.slot >= model.policy.n_arms:
            await self.in_db(self.models.sync, exp_id, model)
        self.join.set_experiment(exp_id, model.config, model.slots, model.policy.n_arms)

    async def take_decisions(self, p: int, rows: Sequence[DecisionIn]) -> bool:
        """Take decisions into the join state, loading what they name; False
        if the join state was rebuilt meanwhile (the rest is void, and will
        be read again)."""
        epoch = self.join.epoch
        need = self.join.take_decisions(p, rows)
        while need is not None:
            await self.load(need)
            if self.join.epoch != epoch:
                return False
            need = self.join.take_decisions(p, rows, need.at, loaded=True)
        return True

    # --------------------------------------------------------------- commit
    async def commit(self) -> bool:
        """Commit the join state's checkpoint in one transaction, one commit
        at a time; False if it failed, or an earlier one did (then nothing
        is committed until ``reset``)."""
        async with self._lock:
            if self.needs_reset:
                return False
            return await self._commit()

    async def _commit(self) -> bool:
        cp = self.join.checkpoint()
        if cp.empty:
            return True
        if cp.forwards:
            try:
                if self.forward_sink is None:
                    raise RuntimeError("rewards to forward, and no producer to forward them")
                await forward(self.forward_sink, self.settings.feedback_topic, cp.forwards)
            except Exception:
                # Some copies may be written: they are written again after the
                # reload, and the owner's join counts one copy per source.
                log.exception("forwarding %d rewards failed; reloading state", len(cp.forwards))
                self.needs_reset = True
                return False
        try:  # a challenger added meanwhile learns from this commit's events on
            await self.in_db(self.models.sync_changes)
        except Exception:
            log.warning("policy changes not read; the commit goes on without them", exc_info=True)
        updates = {e: self.models.update(e, events) for e, events in cp.events.items()}
        t0 = time.perf_counter()
        try:
            versions = await self.in_db(
                self.store.learner_commit,
                self.settings.group_id,
                updates,
                cp.counters,
                cp.offsets,
                self.clock(),
                cp.held,
            )
        except Exception:
            # Nothing is known for sure (it may have committed before the
            # link dropped): the state is void until reloaded.
            log.exception("commit failed; reloading state from the database")
            self.needs_reset = True
            return False
        self.models.committed(versions)
        self.join.confirm(cp)
        self.commit_seconds.append(time.perf_counter() - t0)
        self.applied += cp.n_events
        self.forwarded += len(cp.forwards)
        self.commits += 1
        done = self.clock()
        self.latency_ms.extend((done - t) * 1000.0 for t in cp.reward_times)
        if cp.dead_letters and self.dead_letters is not None:
            topic = self.settings.deadletter_topic
            for d in cp.dead_letters:
                body = json.dumps(d.body(self.settings.feedback_topic)).encode()
                try:
                    await self.dead_letters.send(topic, value=body, key=d.key)
                except Exception as exc:  # counted already; the topic is best effort
                    log.warning("dead-letter produce failed: %s", exc)
        return True
