"""``python -m simulators slate-evaluate``: slate estimates of target policies on a log.

    python -m simulators slate-evaluate --obd random/all --target uniform \\
        --target popular:epsilon=0.1
    python -m simulators slate-evaluate --log export.jsonl --slots 3 \\
        --target uniform --target ranking:order=a|b|c,epsilon=0.2

Engine exports need ``propensity_kind`` ``per_slot``; the OBD sample holds
impressions only, so on it IIPS is the one estimator that applies (the others
are listed as n/a with the reason). See ``simulators.slate.logs``.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bandit_engine import InvalidArgument
from simulators.slate.estimators import (
    SlateEstimate,
    impression_iips,
    ratio_estimate,
    slate_iips,
    slate_ips,
    slate_rips,
)
from simulators.slate.logs import Impressions, LoggedSlates, obd_impressions, read_slate_jsonl
from simulators.slate.pseudo_inverse import slate_pi_independent
from simulators.slate.targets import (
    SlateTarget,
    parse_target,
    popular_order,
    ranking_impressions,
    ranking_slates,
    uniform_impressions,
    uniform_slates,
)

__all__ = ["add_slate_parser", "cmd_slate_evaluate", "evaluate_impressions", "evaluate_slates"]

COLUMNS = ("target", "estimator", "value", "ci_low", "ci_high", "se", "n", "note")
NO_SLATES = "needs whole slates; the OBD sample holds impressions only"
NO_PREFIX = "needs prefix_propensities (joint and prefix probabilities); the log has none"


def _row(target: str, e: SlateEstimate, note: str = "") -> dict[str, Any]:
    return {"target": target, **e.to_dict(), "note": note}


def _ess(weights: Any) -> str:
    """Overlap of target and logging policy, on the worst slot: the effective
    sample size (sum w)^2 / sum w^2 (few effective rows: the normal interval
    understates the uncertainty) and the mean weight (near 1 with good overlap;
    well below 1: the target shows what the logging policy (almost) never did,
    and every estimator is biased down)."""
    if isinstance(weights, np.ndarray):
        w = weights[:, None] if weights.ndim == 1 else weights
        weights = [w[:, k] for k in range(w.shape[1])]
    ess, mean = [], []
    for col in weights:
        sq = float(col @ col)
        ess.append(float(col.sum()) ** 2 / sq if sq > 0 else 0.0)
        mean.append(float(col.mean()))
    return f"ess {min(ess):,.0f}, mean w {min(mean):.2g}"


def _na(target: str, name: str, n: int, note: str) -> dict[str, Any]:
    nan = math.nan
    return {
        "target": target, "estimator": name, "value": nan, "ci_low": nan, "ci_high": nan,
        "se": nan, "n": n, "note": f"n/a: {note}",
    }  # fmt: skip


def evaluate_slates(
    data: LoggedSlates,
    target: SlateTarget,
    *,
    alpha: float = 0.05,
    interval: str = "normal",
    n_boot: int = 1000,
    seed: int = 0,
    self_normalized: bool = False,
) -> list[dict[str, Any]]:
    """ips, iips, rips (and their self-normalised forms) and pi (independent-slot
    form; n/a otherwise) of ``target`` on ``data``; ips, rips and pi are n/a
    on a log without prefix propensities."""
    kw: dict[str, Any] = {"alpha": alpha, "interval": interval, "n_boot": n_boot, "seed": seed}
    r, name = data.slot_rewards, target.name
    joint, prefix = data.logging_joint, data.logging_prefix
    sn = (False, True) if self_normalized else (False,)
    out: list[dict[str, Any]] = []
    for flag in sn:
        if joint is None or prefix is None:
            out.append(_na(name, "ips", data.n, NO_PREFIX))
        else:
            e = slate_ips(r, target.joint, joint, **kw, self_normalized=flag)
            out.append(_row(name, e, f"no assumption; {_ess(target.joint / joint)}"))
        w = target.marginal / data.logging_marginal
        e = slate_iips(r, target.marginal, data.logging_marginal, **kw, self_normalized=flag)
        out.append(_row(name, e, f"slot-wise; {_ess(w)}"))
        if prefix is None:
            out.append(_na(name, "rips", data.n, NO_PREFIX))
        else:
            e = slate_rips(r, target.prefix, prefix, **kw, self_normalized=flag)
            out.append(_row(name, e, f"top-down; {_ess(target.prefix / prefix)}"))
    if joint is None:
        out.append(_na(name, "pi", data.n, NO_PREFIX))
        return out
    try:
        pi = slate_pi_independent(
            r, target.marginal, data.logging_marginal, logging_joint=joint, **kw
        )
        out.append(_row(name, pi, "additive; independent logging slots"))
    except InvalidArgument as exc:
        out.append(_na(name, "pi", data.n, str(exc).split(":", 1)[-1].strip()))
    return out


def evaluate_impressions(
    imp: Impressions, marginal: Any, name: str, *, alpha: float = 0.05
) -> list[dict[str, Any]]:
    """IIPS of a target (its marginals at the logged items) on impressions; the rest n/a."""
    e = impression_iips(
        imp.position, imp.reward, marginal, imp.logging_marginal, imp.n_slots, alpha=alpha
    )
    return [
        _na(name, "ips", imp.n, NO_SLATES),
        _row(name, e, f"slot-wise; impressions; {_ess(_by_slot(imp, marginal))}"),
        _na(name, "rips", imp.n, NO_SLATES),
        _na(name, "pi", imp.n, NO_SLATES),
    ]


def _by_slot(imp: Impressions, marginal: Any) -> list[Any]:
    """Impression weights, one array per slot."""
    w = np.asarray(marginal, dtype=np.float64) / imp.logging_marginal
    return [w[imp.position == k] for k in range(imp.n_slots)]


def _obd(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    from simulators import obd

    behavior, campaign = obd.parse_spec(args.obd)
    imp = obd_impressions(behavior, campaign, args.obd_dir)
    logged = impression_iips(
        imp.position, imp.reward, imp.logging_marginal, imp.logging_marginal, imp.n_slots,
        alpha=args.alpha,
    )  # fmt: skip
    logged = dataclasses.replace(logged, estimator="on-policy")
    rows = [_row("logging policy", logged, "sum of the per-slot CTRs")]
    for spec in args.target or ["uniform"]:
        kind, params = parse_target(spec)
        eps = params.get("epsilon", 0.1)
        if kind == "uniform":
            rows += evaluate_impressions(imp, uniform_impressions(imp), "uniform", alpha=args.alpha)
            continue
        if kind == "popular":
            other = "bts" if behavior == "random" else "random"
            order = popular_order(obd_impressions(other, campaign, args.obd_dir), imp.n_slots)
            label = f"popular(from {other}, epsilon={eps:g}, order={'|'.join(map(str, order))})"
        else:
            try:
                order = [int(a) for a in params["order"]]
            except ValueError:
                raise InvalidArgument("OBD items are numbered: order=ITEM|ITEM|...") from None
            label = f"ranking(epsilon={eps:g})"
        marg = ranking_impressions(imp, order, eps)
        rows += evaluate_impressions(imp, marg, label, alpha=args.alpha)
    return f"{imp.name}: {imp.n} impressions, {imp.n_items} items, {imp.n_slots} slots", rows


def _engine(args: argparse.Namespace) -> tuple[str, list[dict[str, Any]]]:
    data = read_slate_jsonl(args.log, slots=args.slots)
    logged = ratio_estimate("on-policy", data.slot_rewards, alpha=args.alpha)
    rows = [_row("logging policy", logged, "mean slate reward")]
    for spec in args.target or ["uniform"]:
        kind, params = parse_target(spec)
        if kind == "popular":
            raise InvalidArgument("target popular is for --obd; use ranking:order=... on a log")
        target = (
            uniform_slates(data)
            if kind == "uniform"
            else ranking_slates(data, params["order"], params.get("epsilon", 0.1))
        )
        rows += evaluate_slates(
            data, target, alpha=args.alpha, interval=args.interval, n_boot=args.n_boot,
            seed=args.seed, self_normalized=args.self_normalized,
        )  # fmt: skip
    drop = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in data.dropped.items() if v)
    head = f"{args.log}: {data.n} slates of {data.n_slots} slots" + (
        f" (left out: {drop})" if drop else ""
    )
    return head, rows


def cmd_slate_evaluate(args: argparse.Namespace) -> int:
    from simulators.offline_cli.output import clean, format_table, write_json

    if bool(args.obd) == bool(args.log):
        raise InvalidArgument("give exactly one data source: --obd or --log")
    head, rows = _obd(args) if args.obd else _engine(args)
    print(head)
    print(format_table(COLUMNS, [[r[c] for c in COLUMNS] for r in rows]))
    level = f"{100 * (1 - args.alpha):g}%"
    method = "percentile bootstrap" if args.interval == "bootstrap" and args.log else "normal"
    print(
        f"\n{level} {method} intervals; each holds only under its estimator's assumption "
        "(note column), and is asymptotic"
    )
    if args.out:
        write_json(args.out, {"source": head, "alpha": args.alpha, "results": clean(rows)})
    return 0


def add_slate_parser(subparsers: Any, guarded: Callable[[Any], Any]) -> None:
    """Register ``slate-evaluate`` on an argparse subparsers object."""
    p = subparsers.add_parser(
        "slate-evaluate",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="slate off-policy estimates (standard IPS, IIPS, RIPS, PI) of target slate policies",
        description=__doc__,
    )
    g = p.add_argument_group("data source (one of)")
    g.add_argument("--obd", metavar="BEHAVIOUR/CAMPAIGN", help="OBD sample, e.g. random/all")
    g.add_argument("--log", metavar="FILE", help="an engine export (.jsonl[.gz]), per_slot")
    p.add_argument("--obd-dir", default=None, help="where the OBD sample is (default data/obd)")
    p.add_argument(
        "--target", action="append", metavar="SPEC",
        help="uniform | ranking:order=A|B|C,epsilon=E | popular:epsilon=E (OBD: items by "
        "clicks in the other behaviour's log); repeatable (default uniform)",
    )  # fmt: skip
    p.add_argument("--slots", type=int, help="cut slates to this many slots (default: fewest)")
    p.add_argument("--alpha", type=float, default=0.05, help="1 - interval level (0.05)")
    p.add_argument("--interval", choices=("normal", "bootstrap"), default="normal")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    p.add_argument("--self-normalized", action="store_true", help="also the self-normalised forms")
    p.add_argument("--out", metavar="JSON", help="write the results as JSON")
    p.set_defaults(func=guarded(cmd_slate_evaluate))
