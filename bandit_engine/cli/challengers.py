"""Shell commands for challengers: add-challenger, remove-challenger,
promote, rollback and report (a table, or ``--json``)."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from typing import Any

__all__ = ["CHALLENGER_COMMANDS", "add_challenger_commands", "challenger_call", "format_report"]

CHALLENGER_COMMANDS = ("add-challenger", "remove-challenger", "promote", "rollback", "report")
_POLICIES = ["beta_ts", "lin_ts_disjoint", "lin_ts_shared", "logistic_ts"]
#: PolicySettings fields settable from the command line, and their types
_SETTINGS: dict[str, type] = {
    "joint_dim": int,
    "decay": float,
    "half_life_seconds": float,
    "prior_precision": float,
    "noise_scale": float,
    "exploration": float,
    "prior_alpha": float,
    "prior_beta": float,
    "propensity_draws": int,
}


def add_challenger_commands(client: Callable[[str, str], argparse.ArgumentParser]) -> None:
    c = client("add-challenger", "add a challenger policy to an experiment (docs/challengers.md)")
    c.add_argument("experiment_id")
    c.add_argument("name", help="1-64 letters, digits, '_' or '-'")
    c.add_argument("--policy", choices=_POLICIES, required=True)
    for name, typ in _SETTINGS.items():
        c.add_argument("--" + name.replace("_", "-"), type=typ, help="default: the policy's")
    c = client("remove-challenger", "remove a challenger and its state")
    c.add_argument("experiment_id")
    c.add_argument("name")
    c = client("promote", "make a challenger the champion (the champion becomes a challenger)")
    c.add_argument("experiment_id")
    c.add_argument("name")
    c = client("rollback", "undo the last promotion: its previous champion serves again")
    c.add_argument("experiment_id")
    c = client("report", "the champion's and challengers' estimates, and the policy changes")
    c.add_argument("experiment_id")
    c.add_argument("--json", action="store_true", help="the Report message as JSON")


def challenger_call(args: argparse.Namespace, stub: Any, pb: Any) -> Any:
    """The RPC of challenger command ``args.command``; its reply."""
    cmd, exp, t = args.command, args.experiment_id, args.timeout
    if cmd == "add-challenger":
        settings = pb.PolicySettings(policy=pb.PolicyKind.Value(args.policy.upper()))
        for name in _SETTINGS:
            if getattr(args, name) is not None:
                setattr(settings, name, getattr(args, name))
        req = pb.AddChallengerRequest(experiment_id=exp, name=args.name, settings=settings)
        return stub.AddChallenger(req, timeout=t)
    if cmd == "remove-challenger":
        req = pb.RemoveChallengerRequest(experiment_id=exp, name=args.name)
        return stub.RemoveChallenger(req, timeout=t)
    if cmd == "promote":
        req = pb.PromoteChallengerRequest(experiment_id=exp, name=args.name)
        return stub.PromoteChallenger(req, timeout=t)
    if cmd == "rollback":
        return stub.RollbackChampion(pb.RollbackChampionRequest(experiment_id=exp), timeout=t)
    return stub.GetReport(pb.GetReportRequest(experiment_id=exp), timeout=t)


def _interval(e: Any) -> str:
    if not e.HasField("value"):
        return "-"
    if not e.HasField("low"):
        return f"{e.value:.4f}"
    return f"{e.value:.4f} [{e.low:.4f}, {e.high:.4f}]"


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


def format_report(r: Any) -> str:
    """A ``Report`` message as text tables: estimates, then changes."""
    lines = [
        f"experiment {r.experiment_id}  champion {r.champion}  shadow_rate {r.shadow_rate:g}  "
        f"shadow_window {r.shadow_window}",
        "",
    ]
    rows = [["policy", "role", "n", "ess", "IPS [95%]", "SNIPS [95%]", "DR [95%]"]]
    for e in r.estimates:
        rows.append(
            [
                e.name,
                e.role,
                str(e.n),
                f"{e.ess:.1f}",
                _interval(e.ips),
                _interval(e.snips),
                _interval(e.dr),
            ]
        )
    lines += _table(rows)
    if r.changes:
        lines += ["", "changes"]
        rows = [["seq", "at (UTC)", "actor", "action", "name", "detail"]]
        for ch in r.changes:
            at = dt.datetime.fromtimestamp(ch.at, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
            detail = f"previous champion {ch.previous}" if ch.previous else ""
            if ch.action == "add":
                kind = ch.settings.DESCRIPTOR.fields_by_name["policy"].enum_type
                detail = "policy " + kind.values_by_number[ch.settings.policy].name.lower()
            rows.append([str(ch.seq), at, ch.actor, ch.action, ch.name, detail])
        lines += _table(rows)
    return "\n".join(lines)
