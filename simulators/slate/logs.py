"""Real logs as slate-estimator inputs: engine exports and the OBD sample.

Engine exports (``export-log`` JSON Lines, ``simulators.logs.jsonl``): a
decision record with ``"propensity_kind": "per_slot"`` carries, per shown
slot k, ``propensities[k]`` = P(the arm at slot k is ranked there | x) and
``prefix_propensities[k]`` = P(the arms at slots 0..k are ranked there, in
that order | x), both from the same Monte Carlo draws of the posterior. They
are the logging marginals (IIPS, PI) and prefixes (RIPS); the last prefix is
the joint slate probability (standard IPS). A ``per_slot`` log without
``prefix_propensities`` (every record or none) supports IIPS only
(``LoggedSlates.logging_prefix`` is None). ``first_slot`` logs carry only
P(arm ranked first | x) and are refused: no slate estimator can use them.

Slates are cut to the first ``slots`` slots (default: the fewest shown in any
row). That is exact, not an approximation: the prefix probability of the first
K slots is the probability of the cut slate, and the value estimated is then
that of the top K slots. Rows with fewer shown arms, or without every reward
of their first K slots, are left out and counted in ``LoggedSlates.dropped``.

The Open Bandit Dataset sample (``simulators.obd``) holds *impressions*, one
(item, position, click, propensity) per row, drawn from the logged slates
without keeping them together (its 10,000 rows have 9,982 distinct
timestamps); ``propensity_score`` is the behaviour policy's marginal P(item
at that position). Joint and prefix probabilities (``pscore`` and
``pscore_cascade`` in Open Bandit Pipeline's synthetic slate data) are not in
the sample, and no row knows the other items of its slate, so only IIPS on
impressions (``impression_iips``) applies there.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np

from bandit_engine import InvalidArgument
from simulators.slate.estimators import FloatArray
from simulators.slate.pseudo_inverse import IntArray

__all__ = [
    "Impressions",
    "LoggedSlates",
    "obd_impressions",
    "read_slate_jsonl",
    "slates_from_records",
]


@dataclass(frozen=True, eq=False)
class LoggedSlates:
    """Whole slates from a log, cut to K slots, with the logging policy's
    per-slot and prefix probabilities.

    ``candidates[i]`` are the arm indices row i was ranked from (every arm
    active in the header when the record says null; ``None`` when unknown).
    """

    arm_ids: tuple[str, ...]
    slates: IntArray  # (n, K)
    slot_rewards: FloatArray  # (n, K)
    logging_marginal: FloatArray  # (n, K)
    logging_prefix: FloatArray | None  # (n, K); None: the log has no prefix_propensities
    candidates: tuple[tuple[int, ...] | None, ...]
    event_id: tuple[str, ...]
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.slates.shape[0])

    @property
    def n_slots(self) -> int:
        return int(self.slates.shape[1])

    @property
    def logging_joint(self) -> FloatArray | None:
        """The whole (cut) slate's logging probability: the last prefix (None
        without prefixes)."""
        if self.logging_prefix is None:
            return None
        out: FloatArray = self.logging_prefix[:, -1].copy()
        return out

    def logged_value(self) -> FloatArray:
        """Per-row slate rewards (sum over the K slots): the logging policy's on-policy terms."""
        out: FloatArray = self.slot_rewards.sum(axis=1)
        return out


def _open(path: str | Path) -> TextIO:
    p = str(path)
    if p.endswith(".gz"):
        return cast(TextIO, gzip.open(p, "rt", encoding="utf-8"))
    return cast(TextIO, open(p, encoding="utf-8"))


def read_slate_jsonl(path: str | Path, *, slots: int | None = None) -> LoggedSlates:
    """``slates_from_records`` over an export file (``.gz`` read transparently)."""

    def recs(f: TextIO) -> Iterable[dict[str, Any]]:
        for no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidArgument(f"{path}:{no}: not JSON ({exc})") from None
            if not isinstance(rec, dict):
                raise InvalidArgument(f"{path}:{no}: expected a JSON object")
            rec.setdefault("_line", no)
            yield rec

    with _open(path) as f:
        return slates_from_records(recs(f), slots=slots)


def _probs(rec: Mapping[str, Any], key: str, m: int, line: Any) -> list[float]:
    vals = rec.get(key)
    if not isinstance(vals, list) or len(vals) != m:
        got = "missing" if vals is None else f"{len(vals) if isinstance(vals, list) else vals!r}"
        raise InvalidArgument(f"line {line}: {key} must list one value per shown arm ({m}); {got}")
    out = []
    for k, v in enumerate(vals):
        if v is None or not isinstance(v, (int, float)) or not 0.0 < float(v) <= 1.0:
            raise InvalidArgument(f"line {line}: {key}[{k}] = {v!r} is outside (0, 1]")
        out.append(float(v))
    return out


def slates_from_records(
    records: Iterable[Mapping[str, Any]], *, slots: int | None = None
) -> LoggedSlates:
    """Build ``LoggedSlates`` from export records (header first, if any); see the module."""
    head: Mapping[str, Any] | None = None
    arm_ids: list[str] = []
    index: dict[str, int] = {}
    active: list[int] = []

    def arm(a: Any) -> int:
        key = str(a)
        if key not in index:
            index[key] = len(arm_ids)
            arm_ids.append(key)
        return index[key]

    rows: list[tuple[Any, list[int], list[float], list[float] | None, list[float | None], Any, str]]
    rows = []
    for rec in records:
        kind = rec.get("type", "decision")
        line = rec.get("_line", len(rows) + 1)
        if kind == "header":
            head = rec
            for a in rec.get("arms") or ():
                s = arm(a["arm_id"])
                if a.get("active", True):
                    active.append(s)
            continue
        if kind != "decision":
            continue
        pk = rec.get("propensity_kind")
        if pk is None and head is not None and isinstance(head.get("config"), Mapping):
            pk = head["config"].get("propensity_kind")
        pk = pk or "first_slot"
        if pk != "per_slot":
            raise InvalidArgument(
                f"line {line}: propensity_kind is {pk!r}; the slate estimators need 'per_slot' "
                f"propensities (P(arm at its slot | x)) and prefix_propensities. A 'first_slot' "
                f"log supports only the first-slot estimators (python -m simulators evaluate); "
                f"set the experiment's propensity_kind to per_slot to log slates"
            )
        shown = [arm(a) for a in rec["arms"]]
        m = len(shown)
        if m == 0:
            raise InvalidArgument(f"line {line}: a decision needs at least one shown arm")
        marg = _probs(rec, "propensities", m, line)
        if rec.get("prefix_propensities") is None:
            rows.append((line, shown, marg, None, _rewards(rec, m), _cands(rec, arm), _id(rec)))
            continue
        pref = _probs(rec, "prefix_propensities", m, line)
        if abs(pref[0] - marg[0]) > 1e-6:
            raise InvalidArgument(
                f"line {line}: prefix_propensities[0] = {pref[0]!r} differs from "
                f"propensities[0] = {marg[0]!r}; a one-slot prefix is the first slot"
            )
        for k in range(1, m):
            if pref[k] > pref[k - 1] * (1 + 1e-9) or pref[k] > marg[k] * (1 + 1e-9):
                raise InvalidArgument(
                    f"line {line}: prefix_propensities[{k}] = {pref[k]!r} exceeds the shorter "
                    f"prefix ({pref[k - 1]!r}) or slot {k}'s own propensity ({marg[k]!r})"
                )
        rows.append((line, shown, marg, pref, _rewards(rec, m), _cands(rec, arm), _id(rec)))
    if not rows:
        raise InvalidArgument("the log holds no decisions")
    k = slots if slots is not None else min(len(r[1]) for r in rows)
    if k < 1:
        raise InvalidArgument(f"slots={slots!r} must be >= 1")
    keep = []
    dropped = {"fewer_slots": 0, "missing_rewards": 0}
    for r in rows:
        if len(r[1]) < k:
            dropped["fewer_slots"] += 1
        elif any(v is None for v in r[4][:k]):
            dropped["missing_rewards"] += 1
        else:
            keep.append(r)
    if not keep:
        raise InvalidArgument(f"no decision shows {k} slots with every reward in: {dropped}")
    every = tuple(active) if head is not None else None
    prefixes = [r[3] for r in keep]
    with_prefix = sum(p is not None for p in prefixes)
    if 0 < with_prefix < len(keep):
        raise InvalidArgument(
            f"{with_prefix} of {len(keep)} decisions carry prefix_propensities: all or none"
        )
    return LoggedSlates(
        arm_ids=tuple(arm_ids),
        slates=np.array([r[1][:k] for r in keep], dtype=np.int64),
        slot_rewards=np.array([r[4][:k] for r in keep], dtype=np.float64),
        logging_marginal=np.array([r[2][:k] for r in keep]),
        logging_prefix=np.array([p[:k] for p in prefixes if p is not None])
        if with_prefix
        else None,
        candidates=tuple(r[5] if r[5] else every for r in keep),
        event_id=tuple(r[6] for r in keep),
        dropped=dropped,
    )


def _rewards(rec: Mapping[str, Any], m: int) -> list[float | None]:
    out: list[float | None] = [None] * m
    for j, rw in enumerate((rec.get("rewards") or [])[:m]):
        if rw is not None:
            out[j] = float(rw.get("reward_norm", rw.get("reward")))
    return out


def _cands(rec: Mapping[str, Any], arm: Any) -> tuple[int, ...] | None:
    cands = rec.get("candidates")
    return None if cands is None else tuple(arm(a) for a in cands)


def _id(rec: Mapping[str, Any]) -> str:
    return str(rec.get("event_id", rec.get("_line", "")))


@dataclass(frozen=True, eq=False)
class Impressions:
    """An impression-level log: row i shows ``item[i]`` at slot ``position[i]``."""

    name: str
    item: IntArray  # (n,)
    position: IntArray  # (n,) 0-based
    reward: FloatArray  # (n,)
    logging_marginal: FloatArray  # (n,) P(item at that slot | x) under the logging policy
    n_items: int
    n_slots: int

    @property
    def n(self) -> int:
        return int(self.item.shape[0])


def obd_impressions(
    behavior: str, campaign: str, data_dir: str | Path | None = None
) -> Impressions:
    """One OBD log as impressions (``simulators.obd.load``)."""
    from simulators import obd

    r = obd.load(behavior, campaign, data_dir)
    return Impressions(
        name=f"obd:{r.name}",
        item=r.item.copy(),
        position=r.position.copy(),
        reward=r.click.copy(),
        logging_marginal=r.pscore.copy(),
        n_items=r.n_items,
        n_slots=int(r.position.max()) + 1,
    )
