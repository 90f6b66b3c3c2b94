"""Fault campaign: ``python -m harness.chaos`` (``make chaos``).

Production shape on one machine (``harness.chaos.cluster``): two ``serve
--no-learner`` servers and one ``learn`` process (``--learners N``: N of
them in one consumer group, on at least N partitions), all subprocesses,
with Kafka (Tansu, or ``BANDIT_CHAOS_KAFKA``) and MySQL
(``BANDIT_CHAOS_MYSQL_DSN``, default the local server; a database of its
own, dropped at the end). Several learners share the one experiment: each
stores its evidence as snapshot parts, which the learner of partition 0
absorbs into the snapshot.

While load runs through gRPC (Recommend, then Feedback for the shown arms,
retried on the other server until acknowledged), faults fire at random
(``harness.chaos.faults``): a server is SIGKILLed and restarted, a learner
is SIGKILLed and restarted, the MySQL connections are KILLed. The
faults come in rounds, each a random order of every kind, so a short
campaign still sees each one. Bad rewards are also written straight to the
feedback topic: duplicates, late, unknown-event, non-finite and malformed
(``harness.chaos.traffic``).

``--faults server,learner,mysql,broker`` also restarts the broker (SIGTERM,
0.5 to 2 s down, start). The local Tansu keeps its logs in a local S3
endpoint for this (``harness.local_broker``). Under this fault it is not a
trustworthy reference: restarted under load, it can lose records it had
acknowledged, and records it had already served to the learner can be
missing when the topic is read back at the end. The checks compare with
that final read, so they then fail for the broker's sake. The broker fault
is opt-in.

At the end it checks (``harness.chaos.checks``), and prints PASS or FAIL for
each: the posterior equals the closed form over the valid rewards; each was
applied once; dead letters per reason match what was injected; every
acknowledged reward is in the feedback topic; no snapshot part is left
unabsorbed (the snapshot and counters are read once none is). It reports
the recovery time after each fault (server: until its health check answers
SERVING; learner, MySQL and broker: until every partition's committed
position has passed what the logs held at the fault, with a commit made
after it), the snapshot parts written, and the MySQL server's InnoDB
row-lock waits over the campaign.
"""

from harness.chaos.campaign import main, run
from harness.chaos.faults import DEFAULT_FAULTS, FAULTS

__all__ = ["DEFAULT_FAULTS", "FAULTS", "main", "run"]
