"""``python -m simulators``: simulate (and, when installed, the offline commands).

Examples::

    python -m simulators simulate --world bernoulli --rounds 5000 --seeds 5 \\
        --out results.json --plot-dir plots
    python -m simulators simulate --world destinations -w n_arms=200 -w new_arms=50 \\
        --k 3 --policies lin_ts_disjoint,lin_ts_shared,lin_ucb,uniform
    python -m simulators simulate --world destinations --target 127.0.0.1:50051
    python -m simulators list

Each subcommand's parser sets ``func(args) -> int``; the offline half
(``simulators.offline_cli``, when present) adds its own subcommands through
``add_parsers(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bandit_engine import BanditError, InvalidArgument
from simulators.simulate import ContenderSpec, contender_kinds, parse_value, render_table, simulate
from simulators.worlds import WORLDS, world_parameters

__all__ = ["build_parser", "main"]

DEFAULT_CONTENDERS = {
    "bernoulli": "beta_ts,epsilon_greedy,ucb1,uniform",
    "destinations": "lin_ts_disjoint,lin_ts_shared,logistic_ts,lin_ucb,epsilon_greedy,uniform",
    "supervised": "lin_ts_disjoint,logistic_ts,lin_ucb,epsilon_greedy,uniform",
    "ranking": "lin_ts_disjoint,lin_ts_disjoint:click_model=position_based,"
    "lin_ts_disjoint:click_model=cascade,beta_ts,uniform",
}
DEFAULTS = {"rounds": 5000, "seeds": 5}
QUICK = {"rounds": 1000, "seeds": 3}


def _world_param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r} must be KEY=VALUE, e.g. n_arms=200")
    return key, parse_value(value)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m simulators",
        description="Simulate bandit policies on synthetic worlds; evaluate them offline.",
    )
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sim = sub.add_parser(
        "simulate",
        help="run policies on a synthetic world over seeds: regret, CTR, plots",
        description="Run contenders on one world's stream for several seeds (paired: same "
        "contexts and reward draws for every contender). Prints a table; --out writes JSON, "
        "--plot-dir PNGs.",
    )
    sim.add_argument("--world", choices=sorted(WORLDS), default="bernoulli")
    sim.add_argument(
        "-w", "--world-param", type=_world_param, action="append", default=[],
        metavar="KEY=VALUE",
        help="world parameter (repeatable), e.g. -w n_arms=200 -w probs=0.1,0.2,0.5; "
        "see `python -m simulators list`",
    )  # fmt: skip
    sim.add_argument(
        "--policies", metavar="LIST",
        help="comma-separated contenders, each KIND or KIND:key=value:..., e.g. "
        "beta_ts,epsilon_greedy:epsilon=0.05 (default depends on the world)",
    )  # fmt: skip
    sim.add_argument("--rounds", type=int, help=f"rounds per run (default {DEFAULTS['rounds']})")
    sim.add_argument("--seeds", type=int, help=f"number of seeds (default {DEFAULTS['seeds']})")
    sim.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    sim.add_argument("--k", type=int, default=1, help="arms shown per round (default 1)")
    sim.add_argument(
        "--update-every", type=int, default=1, metavar="N",
        help="apply rewards in batches every N rounds (default 1)",
    )  # fmt: skip
    sim.add_argument(
        "--target", metavar="HOST:PORT",
        help="also drive a live server through Recommend/Feedback (contender live:...)",
    )  # fmt: skip
    sim.add_argument(
        "--live-policy", default="lin_ts_disjoint", metavar="KIND[:key=value...]",
        help="the live experiment's policy and settings (default lin_ts_disjoint)",
    )  # fmt: skip
    sim.add_argument("--experiment", help="live: use (or create) this experiment id")
    sim.add_argument("--out", type=Path, help="write JSON results here")
    sim.add_argument("--plot-dir", type=Path, help="write regret.png and ctr.png here")
    sim.add_argument(
        "--points", type=int, default=100, help="regret curve points in JSON and plots (100)"
    )
    sim.add_argument(
        "--ctr-points", type=int, default=25, help="CTR windows in JSON and plots (25)"
    )
    sim.add_argument(
        "--timing", action="store_true",
        help="put wall times in the JSON (then the same seed no longer gives identical JSON)",
    )  # fmt: skip
    sim.add_argument(
        "--quick", action="store_true",
        help=f"small run: {QUICK['rounds']} rounds x {QUICK['seeds']} seeds unless given",
    )  # fmt: skip
    sim.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    sim.set_defaults(func=cmd_simulate)

    ls = sub.add_parser("list", help="worlds, their parameters, and contender kinds")
    ls.set_defaults(func=cmd_list)

    _add_offline(sub)
    from simulators.position_bias import add_position_bias_parser

    add_position_bias_parser(sub)
    return ap


def _add_offline(sub: Any) -> None:
    """Register the offline subcommands (replay, evaluate, export-log) if that half exists."""
    try:
        from simulators import offline_cli
    except ImportError as exc:
        if exc.name != f"{__package__}.offline_cli":
            # the module exists but cannot import (a missing dependency?): say so, and
            # keep the simulation commands working
            print(f"warning: offline commands unavailable: {exc}", file=sys.stderr)
        return
    offline_cli.add_parsers(sub)


def cmd_simulate(args: argparse.Namespace) -> int:
    base = QUICK if args.quick else DEFAULTS
    rounds = args.rounds if args.rounds is not None else base["rounds"]
    n_seeds = args.seeds if args.seeds is not None else base["seeds"]
    if n_seeds < 1:
        raise InvalidArgument(f"--seeds={n_seeds!r} must be at least 1")
    if args.seed < 0:
        raise InvalidArgument(f"--seed={args.seed!r} must be >= 0")
    text = args.policies if args.policies is not None else DEFAULT_CONTENDERS[args.world]
    specs = [ContenderSpec.parse(t) for t in text.split(",") if t.strip()]
    if args.target:
        live = ContenderSpec.parse(args.live_policy)
        params: dict[str, Any] = {"policy": live.kind, **live.params}
        if args.experiment:
            params["experiment"] = args.experiment
        specs.append(ContenderSpec("live", params))
    result = simulate(
        args.world,
        specs,
        rounds=rounds,
        seeds=list(range(args.seed, args.seed + n_seeds)),
        k=args.k,
        world_params=dict(args.world_param),
        update_every=args.update_every,
        target=args.target,
        progress=not args.quiet,
    )
    print(render_table(result))
    summary = result.summary(points=args.points, ctr_points=args.ctr_points, timing=args.timing)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=1) + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plot_dir is not None:
        from simulators.plots import write_plots

        for p in write_plots(summary, args.plot_dir):
            print(f"wrote {p}", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    print("worlds (python -m simulators simulate --world NAME -w KEY=VALUE ...):")
    for name, cls in sorted(WORLDS.items()):
        params = ", ".join(f"{k}={v!r}" for k, v in world_parameters(cls).items())
        print(f"  {name}: {params}")
    print("\ncontenders (--policies KIND[:key=value...],...):")
    for kind, what in contender_kinds().items():
        print(f"  {kind:18} {what}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except BanditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    raise SystemExit(main())
