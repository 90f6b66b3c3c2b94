"""``Report`` (``Engine.challengers.report``) as a ``bandit.v1.Report`` message."""

from __future__ import annotations

from typing import Any

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.core.types import Report
from bandit_engine.server.convert import settings_msg

__all__ = ["report_msg"]


def _estimate(value: float | None, low: float | None, high: float | None) -> pb.Estimate:
    m = pb.Estimate()
    for field, v in (("value", value), ("low", low), ("high", high)):
        if v is not None:
            setattr(m, field, v)
    return m


def _change(ch: Any) -> pb.PolicyChange:
    m = pb.PolicyChange(
        seq=ch.seq,
        action=ch.action,
        name=ch.name,
        actor=ch.actor,
        at=ch.at,
        previous=str(ch.settings.get("previous", "")) if ch.action != "add" else "",
    )
    if ch.action == "add":
        m.settings.CopyFrom(settings_msg(ch.settings))
    return m


def report_msg(r: Report) -> pb.Report:
    return pb.Report(
        experiment_id=r.experiment_id,
        champion=r.champion,
        shadow_rate=r.shadow_rate,
        shadow_window=r.shadow_window,
        estimates=[
            pb.PolicyEstimate(
                name=e.name,
                role=e.role,
                n=e.n,
                ess=e.ess,
                ips=_estimate(e.ips, e.ips_low, e.ips_high),
                snips=_estimate(e.snips, e.snips_low, e.snips_high),
                dr=_estimate(e.dr, e.dr_low, e.dr_high),
            )
            for e in r.estimates
        ],
        changes=[_change(c) for c in r.changes],
    )
