"""The export format of a ``BanditLog``: JSON Lines, read and written here.

The format ("bandit-engine log", JSON Lines, optionally gzipped; every
float written with ``repr`` precision, so a round trip is exact)::

    {"type": "header", "format": "bandit-engine-log", "version": 1,
     "experiment_id": "...", "config": {...ExperimentConfig...},
     "arms": [{"arm_id": "...", "features": {"numeric": {}, "categorical": []},
               "active": true}, ...],
     "source": "sqlite:/path/state.db", "exported_at": 1700000000.0}
    {"type": "decision", "event_id": "...", "experiment_id": "...",
     "created_at": 1700000000.0, "deadline": 1700003600.0, "model_version": 7,
     "x": [1.0, 0.0, ...],            # the context vector the policy saw
     "candidates": null | ["a", ...], # null: every active arm at the time
     "arms": ["b", "a"],              # shown arms, ranked
     "scores": [0.31, 0.12],          # sampled scores, same order
     "propensities": [0.42, 0.11],    # logging P(arm ranked first | x), or
     "propensity_kind": "first_slot", # "per_slot": P(arm ranked at its slot | x)
     "prefix_propensities": [...],    # per_slot: P(first j+1 arms as shown | x)
     "rewards": [{"reward": 1.0, "reward_norm": 1.0, "source": "feedback",
                  "ts": 1700000012.5, "seq": 3,
                  "weight": 1.0} | null, ...]}  # one per shown arm; weight: how
                                                # much it counted (click model)

The header is optional (a streaming exporter may not know the arms up
front); without it arm ids are numbered in order of first appearance.
``rewards[j]`` is null while the shown arm ``arms[j]`` has no reward yet.
Optional keys ``position`` (slot index of an impression) and ``meta`` are
read back when present. Unknown keys are ignored, so the format can grow.
"""

from __future__ import annotations

import gzip
import json
import math
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np

from bandit_engine import InvalidArgument
from simulators.logs.bandit_log import SOURCES, BanditLog

__all__ = ["FORMAT", "VERSION", "from_records", "header", "read_jsonl", "records", "write_jsonl"]

FORMAT = "bandit-engine-log"
VERSION = 1


def _open_text(path: str | Path, mode: str) -> TextIO:
    p = str(path)
    if p == "-":
        return sys.stdout if "w" in mode else sys.stdin
    if p.endswith(".gz"):
        return cast(TextIO, gzip.open(p, mode + "t", encoding="utf-8"))
    return cast(TextIO, open(p, mode, encoding="utf-8"))


def _num(v: float) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def header(log: BanditLog, source: str = "") -> dict[str, Any]:
    arms = []
    feats = log.arm_features or ({},) * log.n_arms
    active = log.meta.get("active")
    for i, arm in enumerate(log.arm_ids):
        arms.append(
            {
                "arm_id": arm,
                "features": feats[i],
                "active": True if active is None else bool(active[i]),
            }
        )
    return {
        "type": "header",
        "format": FORMAT,
        "version": VERSION,
        "experiment_id": log.meta.get("experiment_id"),
        "config": log.meta.get("config"),
        "arms": arms,
        "source": source or log.meta.get("source", ""),
        "exported_at": time.time(),
    }


def records(log: BanditLog) -> Iterator[dict[str, Any]]:
    """One format record (a dict) per row of ``log``."""
    ids = log.arm_ids
    exp = log.meta.get("experiment_id")
    for i in range(log.n):
        shown = [int(a) for a in log.shown[i] if a >= 0]
        k = len(shown)
        cands: list[str] | None = None
        if log.cand_ptr is not None and log.cand_idx is not None:
            lo, hi = int(log.cand_ptr[i]), int(log.cand_ptr[i + 1])
            if hi > lo:
                cands = [ids[int(a)] for a in log.cand_idx[lo:hi]]
        rewards: list[dict[str, Any] | None] = []
        for j in range(k):
            if math.isnan(log.reward[i, j]):
                rewards.append(None)
                continue
            rec: dict[str, Any] = {"reward_norm": float(log.reward[i, j])}
            rec["reward"] = (
                float(log.reward_raw[i, j]) if log.reward_raw is not None else rec["reward_norm"]
            )
            if log.reward_source is not None:
                rec["source"] = SOURCES[int(log.reward_source[i, j])] or None
            if log.reward_ts is not None:
                rec["ts"] = _num(float(log.reward_ts[i, j]))
            if log.reward_seq is not None and log.reward_seq[i, j] >= 0:
                rec["seq"] = int(log.reward_seq[i, j])
            if log.reward_weight is not None and not math.isnan(log.reward_weight[i, j]):
                rec["weight"] = float(log.reward_weight[i, j])
            rewards.append(rec)
        out: dict[str, Any] = {
            "type": "decision",
            "event_id": log.event_id[i],
            "experiment_id": exp,
            "created_at": float(log.timestamp[i]),
            "deadline": None if log.deadline is None else _num(float(log.deadline[i])),
            "model_version": None if log.model_version is None else int(log.model_version[i]),
            "x": log.x[i].tolist(),
            "candidates": cands,
            "arms": [ids[a] for a in shown],
            "scores": None if log.scores is None else [_num(s) for s in log.scores[i, :k].tolist()],
            "propensities": [_num(p) for p in log.propensity[i, :k].tolist()],
            "propensity_kind": log.propensity_kind,
            "rewards": rewards,
        }
        if log.prefix_propensity is not None and not np.isnan(log.prefix_propensity[i, 0]):
            out["prefix_propensities"] = [_num(p) for p in log.prefix_propensity[i, :k].tolist()]
        if log.position is not None:
            out["position"] = int(log.position[i])
        yield out


def write_jsonl(log: BanditLog, path: str | Path, *, source: str = "") -> int:
    """Write ``log`` in the export format; returns the number of decisions."""
    n = 0
    f = _open_text(path, "w")
    try:
        f.write(json.dumps(header(log, source), allow_nan=False) + "\n")
        for rec in records(log):
            f.write(json.dumps(rec, allow_nan=False) + "\n")
            n += 1
    finally:
        if f.name != "<stdout>":
            f.close()
        else:
            f.flush()
    return n


def read_jsonl(path: str | Path) -> BanditLog:
    """Load an export (header optional; ``.gz`` read transparently)."""
    f = _open_text(path, "r")
    try:
        return from_records(_parse_lines(f, str(path)))
    finally:
        if f.name != "<stdin>":
            f.close()


def _parse_lines(lines: Iterable[str], where: str) -> Iterator[dict[str, Any]]:
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"{where}:{no}: not JSON ({exc})") from None
        if not isinstance(rec, dict):
            raise InvalidArgument(f"{where}:{no}: expected a JSON object")
        rec.setdefault("_line", no)
        yield rec


def from_records(recs: Iterable[Mapping[str, Any]]) -> BanditLog:
    """Build a ``BanditLog`` from format records (header first, if any)."""
    try:
        return _from_records(recs)
    except InvalidArgument:
        raise
    except KeyError as exc:
        raise InvalidArgument(f"malformed log: a record lacks the key {exc}") from exc
    except (TypeError, ValueError, IndexError) as exc:
        raise InvalidArgument(f"malformed log: {exc}") from exc


def _from_records(recs: Iterable[Mapping[str, Any]]) -> BanditLog:
    head: Mapping[str, Any] | None = None
    arm_ids: list[str] = []
    slot: dict[str, int] = {}
    features: list[dict[str, Any]] = []
    active: list[bool] = []

    def arm(a: str) -> int:
        s = slot.get(a)
        if s is None:
            s = slot[a] = len(arm_ids)
            arm_ids.append(a)
            features.append({})
            active.append(True)
        return s

    rows: list[Mapping[str, Any]] = []
    for rec in recs:
        kind = rec.get("type", "decision")
        if kind == "header":
            if rows or head is not None:
                raise InvalidArgument(f"line {rec.get('_line')}: header after decisions")
            if rec.get("format", FORMAT) != FORMAT or int(rec.get("version", 1)) > VERSION:
                raise InvalidArgument(
                    f"unsupported log format {rec.get('format')!r} version {rec.get('version')!r}"
                )
            head = rec
            for a in rec.get("arms") or ():
                s = arm(str(a["arm_id"]))
                features[s] = dict(a.get("features") or {})
                active[s] = bool(a.get("active", True))
        elif kind == "decision":
            for a in rec["arms"]:
                arm(str(a))
            for a in rec.get("candidates") or ():
                arm(str(a))
            rows.append(rec)
    n = len(rows)
    k = max((len(r["arms"]) for r in rows), default=1)
    d = len(rows[0]["x"]) if rows else 0
    x = np.zeros((n, d))
    shown = np.full((n, k), -1, dtype=np.int64)
    prop = np.full((n, k), np.nan)
    reward = np.full((n, k), np.nan)
    raw = np.full((n, k), np.nan)
    src = np.zeros((n, k), dtype=np.int8)
    rts = np.full((n, k), np.nan)
    rseq = np.full((n, k), -1, dtype=np.int64)
    rweight = np.full((n, k), np.nan)
    prefix = np.full((n, k), np.nan)
    has_prefix = False
    scores = np.full((n, k), np.nan)
    kinds = {str(r["propensity_kind"]) for r in rows if r.get("propensity_kind")}
    if head is not None and not kinds and isinstance(head.get("config"), Mapping):
        kinds = {str(head["config"].get("propensity_kind") or "first_slot")}
    if len(kinds) > 1:
        raise InvalidArgument(f"decisions of more than one propensity_kind: {sorted(kinds)}")
    ts = np.zeros(n)
    deadline = np.full(n, np.nan)
    version = np.full(n, -1, dtype=np.int64)
    position = np.full(n, -1, dtype=np.int64)
    has_scores = has_position = False
    ptr = np.zeros(n + 1, dtype=np.int64)
    cidx: list[int] = []
    events: list[str] = []
    exp_id = head.get("experiment_id") if head else None
    for i, r in enumerate(rows):
        line = r.get("_line", i + 1)
        xi = r["x"]
        if len(xi) != d:
            raise InvalidArgument(f"line {line}: x has length {len(xi)}; expected {d}")
        x[i] = xi
        arms_i = r["arms"]
        if not arms_i:
            raise InvalidArgument(f"line {line}: a decision needs at least one shown arm")
        m = len(arms_i)
        shown[i, :m] = [slot[str(a)] for a in arms_i]
        props = r.get("propensities") or [None] * m
        prop[i, :m] = [np.nan if p is None else p for p in props]
        if r.get("prefix_propensities"):
            has_prefix = True
            prefix[i, :m] = [np.nan if p is None else p for p in r["prefix_propensities"]]
        if r.get("scores") is not None:
            has_scores = True
            scores[i, :m] = [np.nan if s is None else s for s in r["scores"]]
        for j, rw in enumerate(r.get("rewards") or ()):
            if rw is None:
                continue
            reward[i, j] = rw.get("reward_norm", rw.get("reward"))
            raw[i, j] = rw.get("reward", reward[i, j])
            source = rw.get("source")
            src[i, j] = SOURCES.index(source) if source in SOURCES else 0
            rts[i, j] = np.nan if rw.get("ts") is None else rw["ts"]
            rseq[i, j] = -1 if rw.get("seq") is None else int(rw["seq"])
            rweight[i, j] = 1.0 if rw.get("weight") is None else float(rw["weight"])
        ts[i] = r.get("created_at") or 0.0
        if r.get("deadline") is not None:
            deadline[i] = r["deadline"]
        if r.get("model_version") is not None:
            version[i] = int(r["model_version"])
        if r.get("position") is not None:
            has_position = True
            position[i] = int(r["position"])
        cands = r.get("candidates") or ()
        cidx.extend(slot[str(a)] for a in cands)
        ptr[i + 1] = len(cidx)
        events.append(str(r.get("event_id", i)))
        exp_id = exp_id or r.get("experiment_id")
    meta: dict[str, Any] = {"experiment_id": exp_id}
    if head is not None:
        meta["config"] = head.get("config")
        meta["source"] = head.get("source", "")
    meta["active"] = tuple(active)
    return BanditLog(
        arm_ids=tuple(arm_ids),
        x=x,
        shown=shown,
        propensity=prop,
        reward=reward,
        event_id=tuple(events),
        timestamp=ts,
        cand_ptr=None if not cidx else ptr,
        cand_idx=None if not cidx else np.asarray(cidx, dtype=np.int64),
        scores=scores if has_scores else None,
        reward_raw=raw,
        reward_source=src,
        reward_ts=rts,
        reward_seq=rseq,
        model_version=version,
        deadline=deadline,
        position=position if has_position else None,
        arm_features=tuple(features),
        meta=meta,
        reward_weight=rweight,
        propensity_kind=kinds.pop() if kinds else "first_slot",
        prefix_propensity=prefix if has_prefix else None,
    )
