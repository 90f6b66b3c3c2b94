"""Position bias from a decision log: the examination curve of the
position-based click model, estimated by EM.

The position-based model (PBM; Richardson et al. 2007; Chuklin, Markov & de
Rijke 2015, "Click Models for Web Search", ch. 3) says an impression of item
``i`` at slot ``p`` is clicked with probability ``theta[p] * gamma[i]``: the
slot is examined (``theta[p]``) and, independently, the item is attractive
(``gamma[i]``). Neither is observed, only the click; EM (Wang, Golbandi,
Bendersky, Metzler & Najork 2018, "Position Bias Estimation for Unbiased
Learning to Rank in Personal Search", section 4) alternates

- E: for a non-click at slot ``p`` of item ``i``, the posterior chances that
  the slot was examined and the item not attractive, ``theta (1 - gamma) /
  (1 - theta gamma)``, and that the item was attractive but the slot not
  examined, ``(1 - theta) gamma / (1 - theta gamma)`` (a click: both 1);
- M: ``theta[p]`` the mean posterior examination of the impressions at slot
  ``p``, ``gamma[i]`` the mean posterior attractiveness of item ``i``'s.

An *item* is an arm, or an arm in a context bucket (``context_bits`` > 0:
contexts hashed by the signs of their projections on random directions,
SimHash), so that a logging policy that ranks an arm higher in the contexts
where it is more attractive does not pass for position bias. With
``relevance="logistic"`` each arm's relevance is a logistic function of the
context vector instead (regression EM, ``pbm_regression_em``): the choice
for the logs of a contextual policy, whose rankings follow the context
closely. The curve is
identified only up to scale (``theta c``, ``gamma / c`` fit alike), and only
when slots share items: a log whose ranking never moves an item between
slots cannot tell position from relevance (a randomised logging policy,
such as Thompson sampling or a shuffled list, can). The result is
normalised so that slot 0 is 1 and is ready to paste as an experiment's
``examination`` (``click_model="position_based"``)::

    python -m simulators position-bias --log decisions.jsonl --slots 10
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from bandit_engine.policies import FloatArray, IntArray
from simulators.logs import BanditLog
from simulators.worlds import World

__all__ = [
    "PositionBias",
    "add_position_bias_parser",
    "context_buckets",
    "estimate_examination",
    "events_from_log",
    "pbm_em",
    "random_ranking_log",
]

#: The smallest examination value reported (a slot without a click estimates 0,
#: which no experiment accepts).
MIN_EXAMINATION = 1e-4
MAX_CONTEXT_BITS = 16
_EPS = 1e-9


@dataclass(frozen=True)
class PositionBias:
    """An estimated examination curve and how it was reached."""

    examination: tuple[float, ...]  # slot 0 = 1
    impressions: tuple[int, ...]  # per slot
    clicks: tuple[int, ...]  # per slot
    items: int  # relevance parameters: arms, or arm x context bucket
    iterations: int
    converged: bool
    log_likelihood: float

    def experiment_settings(self, digits: int = 4) -> dict[str, Any]:
        """The experiment's click settings, ``examination`` rounded to ``digits``."""
        curve = [max(MIN_EXAMINATION, min(1.0, round(v, digits))) for v in self.examination]
        return {"click_model": "position_based", "examination": curve}

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# ----------------------------------------------------------------------- EM
def pbm_em(
    impressions: FloatArray, clicks: FloatArray, *, max_iter: int = 5000, tol: float = 1e-7
) -> tuple[FloatArray, FloatArray, int, bool, float]:
    """EM for the position-based model on counts per (slot, item).

    ``impressions[p, i]`` and ``clicks[p, i]``: impressions and clicks of
    item ``i`` at slot ``p``. Returns ``(theta, gamma, iterations,
    converged, log_likelihood)``; ``theta`` is normalised to ``theta[0] =
    1`` (and ``gamma`` scaled the other way). Converged: the normalised curve
    moved less than ``tol`` (largest change) in an iteration."""
    n = np.asarray(impressions, dtype=np.float64)
    c = np.asarray(clicks, dtype=np.float64)
    if n.ndim != 2 or n.shape != c.shape:
        raise InvalidArgument(
            f"impressions {n.shape} and clicks {c.shape} must be equal 2-d shapes"
        )
    if (n < 0).any() or (c < 0).any() or (c > n).any():
        raise InvalidArgument("counts must satisfy 0 <= clicks <= impressions")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise InvalidArgument(f"max_iter={max_iter!r} must be a positive integer")
    if not (math.isfinite(tol) and tol > 0):
        raise InvalidArgument(f"tol={tol!r} must be a positive number")
    per_slot, per_item = n.sum(axis=1), n.sum(axis=0)
    empty = np.flatnonzero(per_slot == 0)
    if empty.size:
        raise InvalidArgument(f"slot {int(empty[0])} has no impressions")
    if c[0].sum() == 0:
        raise InvalidArgument("slot 0 has no clicks: the curve cannot be normalised to it")
    _check_connected(n)
    miss = n - c
    # start: the slots' click-through rates relative to slot 0; items' rates under it
    ctr = c.sum(axis=1) / per_slot
    theta = np.clip(ctr / ctr[0], _EPS, 1.0)
    gamma = np.clip(c.sum(axis=0) / np.maximum(theta @ n, _EPS), _EPS, 1.0 - _EPS)
    curve = theta / theta[0]
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 - the count is reported
        th, ga = theta[:, None], gamma[None, :]
        denom = np.maximum(1.0 - th * ga, _EPS)
        theta = (c + miss * th * (1.0 - ga) / denom).sum(axis=1) / per_slot
        gamma = (c + miss * (1.0 - th) * ga / denom).sum(axis=0) / np.maximum(per_item, _EPS)
        theta = np.clip(theta, _EPS, 1.0)
        gamma = np.clip(gamma, _EPS, 1.0 - _EPS)
        new = theta / theta[0]
        step = float(np.max(np.abs(new - curve)))
        curve = new
        if step < tol:
            converged = True
            break
    p = np.clip(theta[:, None] * gamma[None, :], _EPS, 1.0 - _EPS)
    loglik = float((c * np.log(p) + miss * np.log1p(-p)).sum())
    return curve, gamma * theta[0], it, converged, loglik


def pbm_regression_em(
    slot: IntArray,
    item: IntArray,
    x: FloatArray,
    click: FloatArray,
    *,
    ridge: float = 1.0,
    max_iter: int = 5000,
    tol: float = 1e-7,
) -> tuple[FloatArray, FloatArray, int, bool, float]:
    """Regression EM (Wang et al. 2018, section 4.3): the position-based model
    with a logistic relevance per item over the context, ``gamma = sigmoid(w[item]
    . x)``, fitted in each M-step by one step of an L2-penalised (``ridge``)
    logistic regression on the E-step's soft labels. The step uses the
    logistic loss's fixed curvature bound ``X^T X / 4`` (Boehning & Lindsay
    1988), factorised once, so every step decreases the loss.

    Returns ``(theta, w, iterations, converged, log_likelihood)``, ``theta``
    normalised to ``theta[0] = 1``."""
    slot = np.asarray(slot, dtype=np.int64)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] != slot.shape[0] or not np.isfinite(x).all():
        raise InvalidArgument(f"contexts {x.shape} must be finite, one row per impression")
    if not (math.isfinite(ridge) and ridge > 0):
        raise InvalidArgument(f"ridge={ridge!r} must be a positive number")
    k = int(slot.max()) + 1
    ids, col = np.unique(np.asarray(item, dtype=np.int64), return_inverse=True)
    n = np.zeros((k, ids.shape[0]))
    np.add.at(n, (slot, col), 1.0)
    clicks_at = np.bincount(slot, weights=click, minlength=k)
    if clicks_at[0] == 0:
        raise InvalidArgument("slot 0 has no clicks: the curve cannot be normalised to it")
    _check_connected(n)
    per_slot = n.sum(axis=1)
    order = np.argsort(col, kind="stable")  # impressions grouped by item, for the sums
    starts = np.searchsorted(col[order], np.arange(ids.shape[0]))
    xs = x[order]
    eye = ridge * np.eye(x.shape[1])
    bound = np.add.reduceat(xs[:, :, None] * xs[:, None, :], starts) / 4.0 + eye
    inv = np.linalg.inv(bound)
    ctr = clicks_at / per_slot
    theta = np.clip(ctr / ctr[0], _EPS, 1.0)
    w = np.zeros((ids.shape[0], x.shape[1]))
    curve = theta.copy()
    converged = False
    it = 0
    for it in range(1, max_iter + 1):
        gamma = np.clip(_sigmoid(np.einsum("ij,ij->i", x, w[col])), _EPS, 1.0 - _EPS)
        th = theta[slot]
        denom = np.maximum(1.0 - th * gamma, _EPS)
        seen = np.where(click > 0, 1.0, th * (1.0 - gamma) / denom)
        liked = np.where(click > 0, 1.0, (1.0 - th) * gamma / denom)
        theta = np.clip(np.bincount(slot, weights=seen, minlength=k) / per_slot, _EPS, 1.0)
        # one bounded-curvature step of each item's logistic regression on the soft labels
        grad = np.add.reduceat(xs * (gamma - liked)[order][:, None], starts) + ridge * w
        w = w - np.einsum("ijk,ik->ij", inv, grad)
        new = theta / theta[0]
        step = float(np.max(np.abs(new - curve)))
        curve = new
        if step < tol and it > 1:
            converged = True
            break
    p = np.clip(theta[slot] * _sigmoid(np.einsum("ij,ij->i", x, w[col])), _EPS, 1.0 - _EPS)
    loglik = float((click * np.log(p) + (1.0 - click) * np.log1p(-p)).sum())
    return curve, w, it, converged, loglik


def _sigmoid(z: FloatArray) -> FloatArray:
    out: FloatArray = 1.0 / (1.0 + np.exp(-np.clip(z, -500.0, 500.0)))
    return out


def _check_connected(n: FloatArray) -> None:
    """Every slot must reach slot 0 through items shown at both (else its scale
    is free): raise naming the first slot that does not."""
    shown = n > 0
    k = shown.shape[0]
    reached = np.zeros(k, dtype=bool)
    reached[0] = True
    items = shown[0].copy()
    while True:
        more = shown[:, items].any(axis=1) & ~reached
        if not more.any():
            break
        reached |= more
        items |= shown[more].any(axis=0)
    if not reached.all():
        p = int(np.flatnonzero(~reached)[0])
        raise InvalidArgument(
            f"slot {p} shares no item with slot 0 (directly or through other slots): the log "
            "cannot tell its position bias from its items' relevance; estimate from decisions "
            "of a randomised ranking policy, or with fewer context bits"
        )


# ------------------------------------------------------------------- inputs
def context_buckets(x: FloatArray, bits: int, seed: int = 0) -> IntArray:
    """A bucket of ``2 ** bits`` per context row: the signs of its projections on
    ``bits`` random directions (seeded) after centring each column (SimHash)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 0 <= bits <= MAX_CONTEXT_BITS:
        raise InvalidArgument(
            f"context_bits={bits!r} must be an integer in [0, {MAX_CONTEXT_BITS}]"
        )
    x = np.asarray(x, dtype=np.float64)
    if bits == 0 or x.shape[0] == 0:
        return np.zeros(x.shape[0], dtype=np.int64)
    planes = np.random.default_rng(seed).standard_normal((x.shape[1], bits))
    signs = ((x - x.mean(axis=0)) @ planes) > 0.0
    out: IntArray = (signs.astype(np.int64) << np.arange(bits, dtype=np.int64)).sum(axis=1)
    return out


def estimate_examination(
    slot: IntArray,
    item: IntArray,
    click: FloatArray,
    *,
    x: FloatArray | None = None,
    slots: int | None = None,
    ridge: float = 1.0,
    max_iter: int = 5000,
    tol: float = 1e-7,
) -> PositionBias:
    """The examination curve from impressions: ``slot`` (0-based), ``item``
    (any integer id: an arm, or an arm x context bucket) and ``click`` (0 or
    1) of each. Without ``x``, one relevance per item (``pbm_em``); with
    ``x`` (the context of each impression, one row each), a logistic
    relevance per item over it (``pbm_regression_em``). ``slots``: estimate
    slots 0..slots-1 (default: every slot in the data; impressions further
    down are left out)."""
    slot = np.asarray(slot, dtype=np.int64)
    item = np.asarray(item, dtype=np.int64)
    click = np.asarray(click, dtype=np.float64)
    if not slot.shape == item.shape == click.shape or slot.ndim != 1:
        raise InvalidArgument(
            f"slot {slot.shape}, item {item.shape} and click {click.shape} must be equal 1-d shapes"
        )
    if x is not None:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != slot.shape[0]:
            raise InvalidArgument(f"x has shape {x.shape}; expected ({slot.shape[0]}, dim)")
    if slot.size == 0:
        raise InvalidArgument("no impressions with a reward: nothing to estimate from")
    if (slot < 0).any():
        raise InvalidArgument(f"slot {int(slot.min())} must be >= 0")
    if not np.isin(click, (0.0, 1.0)).all():
        bad = float(click[~np.isin(click, (0.0, 1.0))][0])
        raise InvalidArgument(f"click {bad!r} must be 0 or 1")
    if slots is not None:
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise InvalidArgument(f"slots={slots!r} must be a positive integer")
        if slots > int(slot.max()) + 1:
            raise InvalidArgument(
                f"slots={slots} but the log shows at most {int(slot.max()) + 1} slots"
            )
        keep = slot < slots
        slot, item, click = slot[keep], item[keep], click[keep]
        x = None if x is None else x[keep]
    k = int(slot.max()) + 1
    ids, col = np.unique(item, return_inverse=True)
    n = np.zeros((k, ids.shape[0]))
    c = np.zeros((k, ids.shape[0]))
    np.add.at(n, (slot, col), 1.0)
    np.add.at(c, (slot, col), click)
    if x is None:
        curve, _, iters, converged, loglik = pbm_em(n, c, max_iter=max_iter, tol=tol)
    else:
        curve, _, iters, converged, loglik = pbm_regression_em(
            slot, col, x, click, ridge=ridge, max_iter=max_iter, tol=tol
        )
    return PositionBias(
        examination=tuple(float(v) for v in curve),
        impressions=tuple(int(v) for v in n.sum(axis=1)),
        clicks=tuple(int(v) for v in c.sum(axis=1)),
        items=int(ids.shape[0]),
        iterations=iters,
        converged=converged,
        log_likelihood=loglik,
    )


def events_from_log(
    log: BanditLog, *, context_bits: int = 0
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """(slot, item, click, context) of every rewarded impression of ``log``.

    A click is a reward above the experiment's default reward (from the
    log header's config; 0 without one). Rows of one shown arm that carry a
    ``position`` (one impression per row, as the Open Bandit Dataset) take
    their slot from it. Items are arms, or arms x context buckets
    (``context_buckets``) with ``context_bits`` > 0."""
    if log.n == 0:
        raise InvalidArgument("the log has no decisions")
    bucket = context_buckets(log.x, context_bits)
    shown, reward = log.shown, log.reward
    if shown.shape[1] == 1 and log.position is not None and (log.position >= 0).all():
        slots = log.position[:, None].astype(np.int64)
    else:
        slots = np.broadcast_to(np.arange(shown.shape[1], dtype=np.int64), shown.shape)
    ok = (shown >= 0) & ~np.isnan(reward)
    rows = np.nonzero(ok)[0]
    items = shown[ok] * (1 << context_bits) + bucket[rows]
    click = (reward[ok] > _default_reward(log.meta.get("config")) + 1e-12).astype(np.float64)
    return slots[ok], items, click, log.x[rows]


def _default_reward(config: object) -> float:
    """The default reward on the normalised [0, 1] scale the log's rewards use."""
    if not isinstance(config, Mapping):
        return 0.0
    lo, hi = float(config.get("reward_min", 0.0)), float(config.get("reward_max", 1.0))
    d = config.get("default_reward")
    return 0.0 if d is None or hi <= lo else (float(d) - lo) / (hi - lo)


def random_ranking_log(world: World, rounds: int, k: int, seed: int) -> BanditLog:
    """The world's first ``rounds`` rounds under a uniformly random ranking of
    ``k`` eligible arms (a randomised logging policy), as a ``BanditLog``:
    propensities are per slot (``1 / eligible`` for every slot)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= world.min_eligible():
        raise InvalidArgument(f"k={k!r} must be between 1 and {world.min_eligible()}")
    rng = np.random.default_rng(seed)
    x, shown, reward, prop = [], [], [], []
    for rnd in world.rounds(rounds):
        order = rng.permutation(rnd.arms.shape[0])[:k]
        x.append(rnd.x)
        shown.append(rnd.arms[order])
        reward.append(rnd.rewards(order))
        prop.append(np.full(k, 1.0 / rnd.arms.shape[0]))
    return BanditLog(
        arm_ids=tuple(world.arm(i).arm_id for i in range(world.n_arms)),
        x=np.asarray(x),
        shown=np.asarray(shown, dtype=np.int64),
        propensity=np.asarray(prop),
        reward=np.asarray(reward),
        event_id=tuple(f"r{t}" for t in range(rounds)),
        timestamp=np.arange(rounds, dtype=np.float64) * world.seconds_per_round,
        meta={"experiment_id": "random-ranking", "world": world.describe()},
        propensity_kind="per_slot",
    )


# ---------------------------------------------------------------------- CLI
DESCRIPTION = """\
Estimate the examination curve of the position-based click model from a
decision log by EM (Wang et al. 2018), normalised so slot 0 is 1. Prints the
experiment settings as JSON (click_model and examination) on stdout and the
estimate's diagnostics on stderr:

  python -m simulators position-bias --log decisions.jsonl --slots 10

The log must move items between slots (a randomised ranking policy, such as
Thompson sampling). The relevance of an arm is one number (--relevance arm,
the default), one per context bucket (--context-bits B: 2^B buckets), or a
logistic function of the context vector (--relevance logistic, regression EM):
for the logs of a contextual policy, whose rankings follow the context.
"""


def add_position_bias_parser(subparsers: Any) -> None:
    """Register ``position-bias`` on an argparse subparsers object."""
    from simulators.offline_cli.sources import add_source  # here: it imports this package

    p = subparsers.add_parser(
        "position-bias",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="estimate the examination curve (position bias) of a ranking from its log, by EM",
        description=DESCRIPTION,
    )
    add_source(p)
    p.add_argument("--slots", type=int, help="estimate the first K slots (default: all)")
    p.add_argument(
        "--context-bits", type=int, default=0, metavar="B",
        help="relevance per arm and context bucket, 2^B buckets (default 0: per arm)",
    )  # fmt: skip
    p.add_argument(
        "--relevance", choices=("arm", "logistic"), default="arm",
        help="an arm's relevance: one value (per context bucket), or logistic in the "
        "context (regression EM); default arm",
    )  # fmt: skip
    p.add_argument("--max-iter", type=int, default=5000, help="EM iterations at most (5000)")
    p.add_argument("--tol", type=float, default=1e-7, help="convergence tolerance (1e-7)")
    p.add_argument("--out", type=Path, metavar="JSON", help="also write the full estimate here")
    p.set_defaults(func=cmd_position_bias)


def cmd_position_bias(args: argparse.Namespace) -> int:
    from simulators.offline_cli.sources import load_source

    try:
        log, name = load_source(args)
    except OSError as exc:  # a missing or unreadable file: bad input, not a crash
        raise InvalidArgument(f"cannot read the log: {exc}") from exc
    slot, item, click, x = events_from_log(log, context_bits=args.context_bits)
    est = estimate_examination(
        slot, item, click, x=x if args.relevance == "logistic" else None,
        slots=args.slots, max_iter=args.max_iter, tol=args.tol,
    )  # fmt: skip
    settings = est.experiment_settings()
    print(json.dumps(settings))
    print(
        f"{name}: {log.n} decisions, {sum(est.impressions)} impressions, {est.items} items; "
        f"EM {'converged' if est.converged else 'did NOT converge'} in {est.iterations} "
        f"iterations",
        file=sys.stderr,
    )
    for p, (imp, clk) in enumerate(zip(est.impressions, est.clicks, strict=True)):
        raw = est.examination[p]
        note = "" if MIN_EXAMINATION <= raw <= 1.0 else f" (estimate {raw:.4f}, clipped)"
        print(
            f"  slot {p}: {imp} impressions, {clk} clicks, examination "
            f"{settings['examination'][p]:.4f}{note}",
            file=sys.stderr,
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({**settings, "estimate": est.to_dict()}, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    return 0 if est.converged else 1
