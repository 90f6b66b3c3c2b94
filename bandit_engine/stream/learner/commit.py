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

Learners that share the logs' partitions share experiments. Taking turns
on an experiment's snapshot row would serialise them, so while a learner
holds fewer than all partitions, a plain experiment's part of its commit
(``Model.plain``: one policy whose state is a sum of events) is learned
apart from the prior and stored beside the snapshot as a ``SnapshotPart``,
in the same transaction as the offsets, without locking the row. The
learner that holds partition 0 absorbs the stored parts into the
snapshots every ``absorb_interval`` seconds, without waiting for a row
another transaction holds; any commit that updates the snapshot absorbs
them too. Servers see a part's evidence once it is absorbed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from bandit_engine.store import LearnerOffsets, LearnerStore
from bandit_engine.stream.learner.checkpoint import Event
from bandit_engine.stream.learner.decode import DecisionIn
from bandit_engine.stream.learner.forward import ForwardSink, forward
from bandit_engine.stream.learner.join import JoinState, Need
from bandit_engine.stream.learner.models import Model, Models
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
    join state forwards any). ``snapshot_parts``: store plain experiments'
    evidence as parts while sharing the partitions (see the module's
    docstring; False: every commit takes the snapshot's row).
    ``absorb_interval``: seconds between absorbing stored parts.

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
        snapshot_parts: bool = True,
        absorb_interval: float = 0.25,
    ) -> None:
        if not absorb_interval > 0.0:
            raise ValueError(f"absorb_interval={absorb_interval!r} must be > 0 seconds")
        self.store = store
        self.settings = settings
        self.join = join
        self.models = Models(store)
        self.clock = clock
        self.dead_letters = dead_letters
        self.forward_sink = forward_sink
        self.needs_reset = False
        #: the partition count of the logs (``Learner.run`` sets it): a learner
        #: that holds fewer shares its experiments with other learners
        self.n_partitions: int | None = None
        self.snapshot_parts = snapshot_parts
        self.absorb_interval = absorb_interval
        self._last_absorb = -math.inf
        self.parts_written = 0
        self.parts_absorbed = 0
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
    async def _model(self, exp_id: str) -> tuple[Model | None, bool]:
        """The experiment's model, loaded from the store if not held here
        (None if the store has no such experiment), and whether this call
        loaded it. The absorbing commit and the loop may both load one at
        once: the one put first is kept, so that there is one copy per
        experiment and a version committed is that of the copy updated."""
        model = self.models.get(exp_id)
        if model is not None:
            return model, False
        loaded = await self.in_db(self.models.load, exp_id)
        model = self.models.get(exp_id)  # put by the other while this one loaded
        if model is not None:
            return model, False
        if loaded is not None:
            self.models.put(exp_id, loaded)
        return loaded, True

    async def load(self, need: Need) -> None:
        """Load what a decision named: its experiment, or arms added since."""
        exp_id = need.experiment_id
        model, fresh = await self._model(exp_id)
        if model is None:
            return
        if not fresh and need.slot >= model.policy.n_arms:
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
    def _apart(
        self, events: Mapping[str, Sequence[Event]], counters: Mapping[tuple[str, str], int]
    ) -> dict[str, dict[str, int]]:
        """The experiments this commit stores as parts, with their counters:
        while sharing, the plain ones (``Model.plain``) none of whose events
        is a shadow decision's."""
        if not self.sharing():
            return {}
        out: dict[str, dict[str, int]] = {}
        for exp_id in {*events, *(e for e, _ in counters)}:
            m = self.models.get(exp_id)
            if m is not None and m.plain and all(ev[5] is None for ev in events.get(exp_id, ())):
                out[exp_id] = {}
        for (exp_id, name), n in counters.items():
            if exp_id in out:
                out[exp_id][name] = n
        return out

    async def commit(self) -> bool:
        """Commit the join state's checkpoint in one transaction, one commit
        at a time; False if it failed, or an earlier one did (then nothing
        is committed until ``reset``)."""
        async with self._lock:
            if self.needs_reset:
                return False
            ok = await self._commit()
            now = self.clock()
            if ok and 0 in self.join.partitions and now - self._last_absorb >= self.absorb_interval:
                self._last_absorb = now
                ok = await self._absorb_pending()
            return ok

    def sharing(self) -> bool:
        """Whether other learners hold some partitions of the logs: commits
        then store plain experiments' evidence as parts (``SnapshotPart``)."""
        n = self.n_partitions
        return self.snapshot_parts and n is not None and len(self.join.partitions) < n

    async def _absorb_pending(self) -> bool:
        """Absorb the stored parts into their snapshots (the learner that
        holds partition 0 does, every ``absorb_interval``); an experiment
        whose row another transaction holds waits for the next round."""
        try:
            pending = await self.in_db(self.store.pending_parts)
            for exp_id in sorted(pending):
                model = (await self._model(exp_id))[0]
                if model is None:
                    continue
                await self.in_db(self.models.sync, exp_id, model)  # arms a part may name
                update = self.models.update(exp_id, [])
                version = await self.in_db(self.store.absorb_parts, exp_id, update, self.clock())
                if version is not None and update.ran:
                    update.model.version = version  # the copy that absorbed them
                    self.parts_absorbed += pending[exp_id]
        except Exception:
            log.exception("absorbing stored parts failed; reloading state")
            self.needs_reset = True
            return False
        return True

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
        apart = self._apart(cp.events, cp.counters)
        updates = {e: self.models.update(e, ev) for e, ev in cp.events.items() if e not in apart}
        counters = {k: n for k, n in cp.counters.items() if k[0] not in apart}
        now = self.clock()

        def commit_in_db() -> dict[str, int]:
            parts = {e: self.models.part(e, cp.events.get(e, []), c) for e, c in apart.items()}
            return self.store.learner_commit(
                self.settings.group_id, updates, counters, cp.offsets, now, cp.held, parts
            )

        t0 = time.perf_counter()
        try:
            versions = await self.in_db(commit_in_db)
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
        self.parts_written += len(apart)
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
