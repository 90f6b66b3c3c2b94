"""The learner: joins rewards to decisions from Kafka and applies them exactly once.

One learner owns a set of partition numbers (the consumer group assigns the
same numbers of the decisions and feedback topics to the same member, with
the range assignor). Per partition it keeps the join state in memory:
decisions waiting for their reward window, rewards waiting for their
decision ("orphans"), and recently closed decisions.

Exactly once. Every ``commit_interval`` the learner writes, in one store
transaction, the new posterior of each experiment it touched, its counters
and, per partition, the offsets it has processed (``*_next``), the offsets
from which its join state can be rebuilt (``*_resume``) and its watermark.
On start, on partition assignment and after any failed commit it reloads
all of that and seeks to the resume offsets. Records before ``*_next`` are
then replayed only to rebuild the join state; they change no statistics and
no counters. A decision replayed with a deadline at or before the committed
watermark was closed before the commit and is skipped.

Replay order. The consumer interleaves the two logs as it likes, and not
as the first time: a replayed reward may come before its replayed decision,
with a clock long past its orphan expiry. So a replay never decides from
the clock or the order what became of a reward. Every replayed reward was
resolved before the commit (joined, or dead-lettered) except two kinds, and
the commit stores those by offset (``HeldRewards``): rewards still waiting
for their decision, which are resolved anew, and rewards dead-lettered as
``unknown_event``, which are skipped. Any other replayed reward waits for
its decision, however long, and joins it silently (the join sets the
"rewarded" bit that makes a later copy a duplicate); if the replay ends
without the decision, it was closed before the resume point. A second copy
of a decision (a producer's retry) is ignored and counted as
``duplicate_decision``: the first copy holds the join state. A decision the
model cannot learn from (not a ``DecisionRecord``, an unknown experiment or
arm, a context of the wrong dimension or out of range, a deadline that is
not finite) is counted as ``malformed_decision``.

Windows. A decision is pending until its deadline passes the watermark
(wall clock minus ``lateness``, held back while a log has a backlog); then
every shown arm without a reward gets the experiment's default reward.
Decisions are not closed early when all their arms are rewarded, which is
what makes the resume rule above exact.

Dead letters. A feedback that cannot be applied is counted (exactly, in the
same transaction) under its reason and written to the dead-letter topic
after the commit (at least once): ``malformed``, ``invalid`` (non-finite or
out-of-range reward, arm not shown), ``duplicate``, ``late`` (timestamp
after the decision's deadline, or its window already closed) and
``unknown_event`` (no decision within ``orphan_grace`` seconds).

Forwarding. A reward read on a partition that does not own its event id
(``owner_partition``; a producer that hashes keys otherwise put it there)
and that meets no decision there is copied to the owner's feedback
partition; the commit waits for the broker's acknowledgement of the copy
before it stores the offset (``forward``), and the owner counts one copy
per source record.

Flow control. Rewards fetched ahead of their decisions wait, as fetched,
and a partition's rewards are paused while many wait (``flow``).

Database calls run on a worker thread, never on the event loop that
heartbeats Kafka.

The parts: ``decode`` (records to tuples, by protobuf), ``join`` (the join
state, without I/O; ``partition`` holds one partition's), ``forward``
(copies of rewards to the partition that owns them), ``flow`` (flow
control against a small consumer interface), ``commit`` (restore, loading
experiments, the one-transaction commit; ``models`` holds the posteriors),
``consumer`` (the aiokafka loop and the rebalance listener) and
``service`` (``Learner``, the facade, and ``run_learner``).
"""

from bandit_engine.stream.learner.checkpoint import (
    DEAD_LETTER_REASONS,
    Checkpoint,
    DeadLetter,
    Event,
)
from bandit_engine.stream.learner.commit import Committer, DeadLetterSink
from bandit_engine.stream.learner.consumer import ConsumerLoop
from bandit_engine.stream.learner.decode import (
    DecisionIn,
    LogRecord,
    RewardIn,
    decode_decisions,
    decode_rewards,
)
from bandit_engine.stream.learner.flow import (
    HOLD_MAX_S,
    PAUSE_ORPHANS,
    RESUME_ORPHANS,
    ConsumerView,
    FlowControl,
)
from bandit_engine.stream.learner.forward import Forward, ForwardSink
from bandit_engine.stream.learner.join import JoinExperiment, JoinState, Need
from bandit_engine.stream.learner.models import Model, Models, PosteriorUpdate
from bandit_engine.stream.learner.partition import Partition
from bandit_engine.stream.learner.service import Learner, run_learner

__all__ = [
    "DEAD_LETTER_REASONS",
    "HOLD_MAX_S",
    "PAUSE_ORPHANS",
    "RESUME_ORPHANS",
    "Checkpoint",
    "Committer",
    "ConsumerLoop",
    "ConsumerView",
    "DeadLetter",
    "DeadLetterSink",
    "DecisionIn",
    "Event",
    "FlowControl",
    "Forward",
    "ForwardSink",
    "JoinExperiment",
    "JoinState",
    "Learner",
    "LogRecord",
    "Model",
    "Models",
    "Need",
    "Partition",
    "PosteriorUpdate",
    "RewardIn",
    "decode_decisions",
    "decode_rewards",
    "run_learner",
]
