"""The campaign's traffic: clients through gRPC, and bad rewards straight to the topic.

``drive`` runs Recommend, then Feedback for the shown arms, retried on the
other server until acknowledged; ``inject`` writes duplicates, late,
unknown-event, non-finite and malformed rewards to the feedback topic. Both
record what they did in a ``Ledger``: the ground truth the checks compare
the learner's state with.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field

import grpc
import numpy as np

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.core import FeedbackEvent
from bandit_engine.stream import KafkaSettings, encode_feedback
from harness.chaos.cluster import Proc, stub

__all__ = ["ARMS", "EXPERIMENT", "INJECTED_KINDS", "Ledger", "drive", "inject"]

EXPERIMENT = "chaos"
ARMS = [f"d{i}" for i in range(6)]
INJECTED_KINDS = ("duplicate", "late", "unknown_event", "invalid", "malformed")


@dataclass
class Ledger:
    """What the clients saw: the ground truth for the invariants."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    #: event id -> (context vector, shown arms, reward deadline)
    decisions: dict[str, tuple[np.ndarray, list[str], float]] = field(default_factory=dict)
    #: (event id, arm id) -> reward, for every acknowledged Feedback
    acked: dict[tuple[str, str], float] = field(default_factory=dict)
    retries: int = 0
    injected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(INJECTED_KINDS, 0))


def drive(servers: list[Proc], ledger: Ledger, stop: threading.Event, seed: int) -> None:
    """Recommend + Feedback until ``stop``; any server may be down at any time."""
    rng = random.Random(seed)
    stubs = {s.port: stub(s.port) for s in servers}
    while not stop.is_set():
        dense = [rng.uniform(-1, 1), rng.uniform(-1, 1)]
        rec = None
        for s in rng.sample(servers, len(servers)):
            try:
                rec = stubs[s.port][1].Recommend(
                    pb.RecommendRequest(
                        experiment_id=EXPERIMENT, k=2, context=pb.Features(dense=dense)
                    ),
                    timeout=2,
                )
                break
            except grpc.RpcError:
                continue
        if rec is None:
            time.sleep(0.05)  # both servers down: back off
            continue
        arms = [a.arm_id for a in rec.arms]
        with ledger.lock:
            ledger.decisions[rec.event_id] = (np.array([1.0, *dense]), arms, time.time() + 3600)
        for arm in arms:
            if rng.random() < 0.2:
                continue  # no click reported: the window stays open (long)
            r = rng.choice([0.0, 0.5, 1.0])
            req = pb.FeedbackRequest(event_id=rec.event_id, arm_id=arm, reward=r)
            for attempt in range(60):
                s = servers[(attempt + rng.randrange(2)) % len(servers)]
                try:
                    stubs[s.port][1].Feedback(req, timeout=6)
                    with ledger.lock:
                        ledger.acked[(rec.event_id, arm)] = r
                        ledger.retries += attempt
                    break
                except grpc.RpcError:
                    time.sleep(0.05)  # back off before the retry
    for ch, _ in stubs.values():
        ch.close()


def _json(event_id: str, arm_id: str, reward: float) -> bytes:
    return json.dumps({"event_id": event_id, "arm_id": arm_id, "reward": reward}).encode()


async def inject(settings: KafkaSettings, ledger: Ledger, n: int, seed: int) -> None:
    """Write ``n`` bad rewards (of the kinds in ``INJECTED_KINDS``) to the feedback topic."""
    from aiokafka import AIOKafkaProducer

    rng = random.Random(seed)
    p = AIOKafkaProducer(bootstrap_servers=settings.bootstrap)
    await p.start()
    try:
        for _ in range(n):
            with ledger.lock:
                acked = list(ledger.acked.items())
                known = list(ledger.decisions.items())
            kind = rng.choice(INJECTED_KINDS)
            if kind == "duplicate" and acked:
                (ev, arm), _ = rng.choice(acked)
                body = _json(ev, arm, 1.0)
            elif kind == "late" and known:
                ev, (_, arms, deadline) = rng.choice(known)
                body = encode_feedback(
                    FeedbackEvent(event_id=ev, arm_id=arms[0], reward=1.0, timestamp=deadline + 60)
                )
            elif kind == "unknown_event":
                ev = f"nobody-{uuid.uuid4().hex}"
                body = _json(ev, ARMS[0], 1.0)
            elif kind == "invalid" and known:
                ev, (_, arms, _) = rng.choice(known)
                body = _json(ev, arms[0], float("nan"))
            elif kind == "malformed":
                ev = "x"
                body = b"{not json"
            else:
                continue
            await p.send_and_wait(settings.feedback_topic, value=body, key=ev.encode())
            with ledger.lock:
                ledger.injected[kind] += 1
            await asyncio.sleep(rng.uniform(0.01, 0.05))
    finally:
        await p.stop()
