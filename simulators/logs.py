"""Logged bandit feedback: the in-memory ``BanditLog`` and its file format.

Every offline tool (replay, the off-policy estimators, the CLI) works on one
structure, ``BanditLog``: one row per decision, arrays throughout, arms as
indices into ``arm_ids``. Sources fill it:

- ``from_store``: the engine's own decision + reward log from any
  ``bandit_engine.store.Store`` (SQLite state dir, or MySQL);
- ``read_jsonl``: the documented export format below, which a Kafka or MySQL
  exporter can write without this package;
- ``simulators.obd``: the Open Bandit Dataset sample;
- ``SyntheticWorld.sample``: logs with a known truth, for tests.

Export format ("bandit-engine log", JSON Lines, optionally gzipped; every
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
     "propensities": [0.42, 0.11],    # logging P(arm ranked first | x)
     "rewards": [{"reward": 1.0, "reward_norm": 1.0, "source": "feedback",
                  "ts": 1700000012.5, "seq": 3} | null, ...]}  # one per shown arm

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
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO, cast

import numpy as np
import numpy.typing as npt

from bandit_engine import InvalidArgument
from bandit_engine.store import Store

__all__ = [
    "FORMAT",
    "SOURCES",
    "VERSION",
    "BanditLog",
    "SyntheticWorld",
    "from_store",
    "open_store",
    "read_jsonl",
    "uniform_stream",
    "write_jsonl",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FORMAT = "bandit-engine-log"
VERSION = 1
#: ``BanditLog.reward_source`` codes: index into this tuple.
SOURCES = ("", "feedback", "default")


@dataclass(frozen=True, eq=False)
class BanditLog:
    """Logged decisions, one row each; arms are indices into ``arm_ids``.

    ``shown[i]`` holds the ranked shown arms of row ``i`` padded with -1;
    ``propensity[i, j]`` is the logging policy's P(shown[i, j] is ranked first
    | x[i]) and ``reward[i, j]`` its reward mapped to [0, 1] (NaN: none yet).
    The estimators use the first slot: ``action``, ``logged_propensity`` and
    ``logged_reward``.

    Candidate sets are CSR (``cand_ptr``, ``cand_idx``); a row with an empty
    range, or ``cand_ptr=None`` for all rows, means every arm.
    """

    arm_ids: tuple[str, ...]
    x: FloatArray
    shown: IntArray
    propensity: FloatArray
    reward: FloatArray
    event_id: tuple[str, ...]
    timestamp: FloatArray
    cand_ptr: IntArray | None = None
    cand_idx: IntArray | None = None
    scores: FloatArray | None = None
    reward_raw: FloatArray | None = None
    reward_source: npt.NDArray[np.int8] | None = None
    reward_ts: FloatArray | None = None
    reward_seq: IntArray | None = None
    model_version: IntArray | None = None
    deadline: FloatArray | None = None
    position: IntArray | None = None
    arm_features: tuple[dict[str, Any], ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.x.ndim != 2:
            raise InvalidArgument(f"x has shape {self.x.shape}; expected (rows, dim)")
        k = self.shown.shape[1] if self.shown.ndim == 2 else -1
        for name in (
            "shown",
            "propensity",
            "reward",
            "scores",
            "reward_raw",
            "reward_source",
            "reward_ts",
            "reward_seq",
        ):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n, k):
                raise InvalidArgument(f"{name} has shape {arr.shape}; expected ({n}, {k})")
        for name in ("timestamp", "model_version", "deadline", "position"):
            arr = getattr(self, name)
            if arr is not None and arr.shape != (n,):
                raise InvalidArgument(f"{name} has shape {arr.shape}; expected ({n},)")
        if len(self.event_id) != n:
            raise InvalidArgument(f"{len(self.event_id)} event ids for {n} rows")
        if n and k < 1:
            raise InvalidArgument("every row needs at least one shown arm")
        if n and (self.shown[:, 0] < 0).any():
            raise InvalidArgument("every row needs a first shown arm")
        if n and self.shown.max() >= len(self.arm_ids):
            raise InvalidArgument(f"arm index {int(self.shown.max())} >= {len(self.arm_ids)} arms")
        if (self.cand_ptr is None) != (self.cand_idx is None):
            raise InvalidArgument("cand_ptr and cand_idx go together")
        if self.cand_ptr is not None and self.cand_ptr.shape != (n + 1,):
            raise InvalidArgument(f"cand_ptr has shape {self.cand_ptr.shape}; expected ({n + 1},)")
        if self.arm_features is not None and len(self.arm_features) != len(self.arm_ids):
            raise InvalidArgument(
                f"{len(self.arm_features)} arm feature sets for {len(self.arm_ids)} arms"
            )

    # ------------------------------------------------------------- shape
    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def __len__(self) -> int:
        return self.n

    @property
    def dim(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_arms(self) -> int:
        return len(self.arm_ids)

    @property
    def action(self) -> IntArray:
        """First shown arm of each row (the arm the estimators evaluate)."""
        return self.shown[:, 0]

    @property
    def logged_propensity(self) -> FloatArray:
        return self.propensity[:, 0]

    @property
    def logged_reward(self) -> FloatArray:
        return self.reward[:, 0]

    def candidate_csr(self) -> tuple[IntArray, IntArray]:
        """Candidate sets with "every arm" rows expanded: (ptr, idx)."""
        k_all = self.n_arms
        if self.cand_ptr is None or self.cand_idx is None:
            ptr = np.arange(self.n + 1, dtype=np.int64) * k_all
            return ptr, np.tile(np.arange(k_all, dtype=np.int64), self.n)
        sizes = np.diff(self.cand_ptr)
        if (sizes > 0).all():
            return self.cand_ptr, self.cand_idx
        full = np.where(sizes == 0, k_all, sizes)
        ptr = np.concatenate([[0], np.cumsum(full)]).astype(np.int64)
        idx = np.empty(int(ptr[-1]), dtype=np.int64)
        every = np.arange(k_all, dtype=np.int64)
        for i in range(self.n):
            lo, hi = self.cand_ptr[i], self.cand_ptr[i + 1]
            idx[ptr[i] : ptr[i + 1]] = self.cand_idx[lo:hi] if hi > lo else every
        return ptr, idx

    def candidates(self, i: int) -> IntArray:
        """Candidate arm indices of row ``i``."""
        if self.cand_ptr is None or self.cand_idx is None:
            return np.arange(self.n_arms, dtype=np.int64)
        lo, hi = int(self.cand_ptr[i]), int(self.cand_ptr[i + 1])
        if hi == lo:
            return np.arange(self.n_arms, dtype=np.int64)
        return self.cand_idx[lo:hi]

    def n_candidates(self) -> IntArray:
        if self.cand_ptr is None:
            return np.full(self.n, self.n_arms, dtype=np.int64)
        sizes = np.diff(self.cand_ptr)
        return np.where(sizes == 0, self.n_arms, sizes).astype(np.int64)

    # ------------------------------------------------------------ subsets
    def select(self, rows: npt.ArrayLike) -> BanditLog:
        """The rows given by a boolean mask or an index array, in that order."""
        idx = np.asarray(rows)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)

        def take(a: np.ndarray | None) -> Any:
            return None if a is None else a[idx]

        cand_ptr = cand_idx = None
        if self.cand_ptr is not None and self.cand_idx is not None:
            sizes = np.diff(self.cand_ptr)[idx]
            cand_ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            parts = [self.cand_idx[self.cand_ptr[i] : self.cand_ptr[i + 1]] for i in idx]
            cand_idx = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return replace(
            self,
            x=self.x[idx],
            shown=self.shown[idx],
            propensity=self.propensity[idx],
            reward=self.reward[idx],
            event_id=tuple(self.event_id[i] for i in idx),
            timestamp=self.timestamp[idx],
            cand_ptr=cand_ptr,
            cand_idx=cand_idx,
            scores=take(self.scores),
            reward_raw=take(self.reward_raw),
            reward_source=take(self.reward_source),
            reward_ts=take(self.reward_ts),
            reward_seq=take(self.reward_seq),
            model_version=take(self.model_version),
            deadline=take(self.deadline),
            position=take(self.position),
            meta=dict(self.meta),
        )

    def complete(self) -> BanditLog:
        """Rows whose first shown arm has its reward (closed decisions)."""
        ok = ~np.isnan(self.logged_reward)
        return self if ok.all() else self.select(ok)

    def split(self, train_frac: float) -> tuple[BanditLog, BanditLog]:
        """(first ``train_frac`` of the rows, the rest), in log order."""
        if not 0.0 <= train_frac < 1.0:
            raise InvalidArgument(f"train_frac={train_frac!r} must be in [0, 1)")
        cut = round(train_frac * self.n)
        return self.select(np.arange(cut)), self.select(np.arange(cut, self.n))

    def is_uniform(self, rtol: float = 1e-6) -> bool:
        """Whether the first-slot propensities are 1 / (number of candidates)."""
        if self.n == 0:
            return True
        expect = 1.0 / self.n_candidates()
        return bool(np.allclose(self.logged_propensity, expect, rtol=rtol, atol=0.0))

    def training_events(self) -> tuple[IntArray, FloatArray, FloatArray]:
        """Every rewarded shown slot as (arm, x, reward): what the engine learned from."""
        rows, slots = np.nonzero((self.shown >= 0) & ~np.isnan(self.reward))
        return self.shown[rows, slots], self.x[rows], self.reward[rows, slots]

    def summary(self) -> dict[str, Any]:
        r = self.logged_reward
        known = ~np.isnan(r)
        return {
            "rows": self.n,
            "rows_rewarded": int(known.sum()),
            "arms": self.n_arms,
            "dim": self.dim,
            "slots": int(self.shown.shape[1]),
            "mean_reward": float(r[known].mean()) if known.any() else float("nan"),
            "uniform_logging": self.is_uniform(),
            "min_propensity": float(np.nanmin(self.logged_propensity)) if self.n else float("nan"),
        }


# -------------------------------------------------------------------- JSONL
def _open_text(path: str | Path, mode: str) -> TextIO:
    p = str(path)
    if p == "-":
        import sys

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
            "rewards": rewards,
        }
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
    scores = np.full((n, k), np.nan)
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
    )


# ------------------------------------------------------------------ stores
def open_store(path: str | Path) -> Store:
    """The engine's store: ``mysql://...`` (MySQL/MariaDB), a state dir
    (``DIR/state.db``) or a SQLite file."""
    if str(path).startswith("mysql://"):
        from bandit_engine.store import MySQLStore

        return MySQLStore(str(path))
    from bandit_engine.store import SQLiteStore

    p = Path(path)
    db = p / "state.db" if p.is_dir() else p
    if not db.exists():
        raise InvalidArgument(f"no engine state at {str(path)!r} (looked for {str(db)!r})")
    return SQLiteStore(db)


def from_store(store: Store, experiment_id: str, *, source: str = "") -> BanditLog:
    """An experiment's decisions joined with every committed reward, per shown arm."""
    exps = {e: (cfg, changes) for e, cfg, changes in store.load_experiments()}
    if experiment_id not in exps:
        raise InvalidArgument(
            f"experiment {experiment_id!r} not in the store; it has {sorted(exps) or 'none'}"
        )
    arms = store.load_arms(experiment_id)
    by_key: dict[tuple[str, str], Any] = {}
    for row in store.rewards(experiment_id):
        by_key[(row.event_id, row.arm_id)] = row
    recs: list[dict[str, Any]] = [
        {
            "type": "header",
            "experiment_id": experiment_id,
            "config": exps[experiment_id][0],
            "arms": [
                {"arm_id": a.arm_id, "features": a.features, "active": a.active} for a in arms
            ],
            "source": source,
        }
    ]
    for dec in store.decisions(experiment_id):
        rewards: list[dict[str, Any] | None] = []
        for a in dec.arms:
            rw = by_key.get((dec.event_id, a))
            rewards.append(
                None
                if rw is None
                else {
                    "reward": rw.reward,
                    "reward_norm": rw.reward_norm,
                    "source": rw.source,
                    "ts": rw.ts,
                    "seq": rw.seq,
                }
            )
        recs.append(
            {
                "type": "decision",
                "event_id": dec.event_id,
                "experiment_id": dec.experiment_id,
                "created_at": dec.created_at,
                "deadline": dec.deadline,
                "model_version": dec.model_version,
                "x": dec.x,
                "candidates": list(dec.candidates) or None,
                "arms": list(dec.arms),
                "scores": list(dec.scores),
                "propensities": list(dec.propensities),
                "rewards": rewards,
            }
        )
    return from_records(recs)


# --------------------------------------------------------------- synthetic
@dataclass(frozen=True)
class SyntheticWorld:
    """M discrete contexts, K arms, known click probabilities: exact truths.

    ``value(pi)`` is the exact expected reward of a policy given as an (M, K)
    matrix of action probabilities; ``sample`` draws a log from a logging
    policy (uniform by default).
    """

    contexts: FloatArray  # (M, d), x[0] = 1
    weights: FloatArray  # (M,) context frequencies, summing to 1
    mu: FloatArray  # (M, K) P(reward = 1 | context, arm)

    @classmethod
    def make(
        cls,
        n_contexts: int = 20,
        n_arms: int = 5,
        dim: int = 4,
        *,
        seed: int = 0,
        base: float = -1.0,
        spread: float = 1.0,
    ) -> SyntheticWorld:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((n_contexts, dim))
        x[:, 0] = 1.0
        theta = spread * rng.standard_normal((n_arms, dim))
        theta[:, 0] += base
        mu = 1.0 / (1.0 + np.exp(-(x @ theta.T)))
        w = rng.dirichlet(np.full(n_contexts, 5.0))
        return cls(x, w, mu)

    @property
    def n_arms(self) -> int:
        return int(self.mu.shape[1])

    def uniform(self) -> FloatArray:
        return np.full(self.mu.shape, 1.0 / self.n_arms)

    def value(self, pi: FloatArray) -> float:
        """Exact expected reward of the policy with action probabilities ``pi``."""
        return float(self.weights @ np.sum(pi * self.mu, axis=1))

    def sample(
        self, n: int, logging: FloatArray | None = None, *, seed: int = 0
    ) -> tuple[BanditLog, IntArray]:
        """A log of ``n`` rows and each row's context index."""
        rng = np.random.default_rng(seed)
        pi0 = self.uniform() if logging is None else np.asarray(logging, dtype=np.float64)
        m = rng.choice(self.weights.shape[0], size=n, p=self.weights).astype(np.int64)
        cum = np.cumsum(pi0[m], axis=1)
        u = rng.random(n)[:, None]
        a = np.minimum((u >= cum).sum(axis=1), self.n_arms - 1).astype(np.int64)
        r = (rng.random(n) < self.mu[m, a]).astype(np.float64)
        log = BanditLog(
            arm_ids=tuple(f"arm{j}" for j in range(self.n_arms)),
            x=self.contexts[m],
            shown=a[:, None],
            propensity=pi0[m, a][:, None],
            reward=r[:, None],
            event_id=tuple(str(i) for i in range(n)),
            timestamp=np.arange(n, dtype=np.float64),
            meta={"source": f"synthetic:seed={seed}"},
        )
        return log, m


def uniform_stream(n: int, n_arms: int, dim: int, *, seed: int = 0) -> BanditLog:
    """A uniformly logged contextual stream (logistic rewards, continuous x).

    The replay benchmark's data: x[0] = 1, x[1:] ~ N(0, 1/d), one true weight
    vector per arm.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)) / math.sqrt(dim)
    x[:, 0] = 1.0
    theta = rng.standard_normal((n_arms, dim))
    theta[:, 0] = rng.normal(-1.0, 0.5, n_arms)
    a = rng.integers(0, n_arms, n).astype(np.int64)
    logits = np.einsum("nd,nd->n", x, theta[a])
    r = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float64)
    return BanditLog(
        arm_ids=tuple(str(j) for j in range(n_arms)),
        x=x,
        shown=a[:, None],
        propensity=np.full((n, 1), 1.0 / n_arms),
        reward=r[:, None],
        event_id=tuple(map(str, range(n))),
        timestamp=np.arange(n, dtype=np.float64),
        meta={"source": f"uniform_stream:seed={seed}"},
    )
