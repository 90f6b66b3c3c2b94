"""Argument types and helpers shared by the commands."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from typing import Any

from bandit_engine._exceptions import InvalidArgument

__all__ = ["at_least_one", "cpu_list", "duration", "kafka_settings", "mysql_dsn", "parse_features"]


def parse_features(items: Sequence[str]) -> tuple[dict[str, float], list[str]]:
    """Split ``name=value`` (categorical) and ``name:number`` (numeric) items."""
    numeric: dict[str, float] = {}
    categorical: list[str] = []
    for item in items:
        for part in filter(None, item.split(",")):
            if ":" in part and "=" not in part:
                name, _, value = part.partition(":")
                try:
                    numeric[name] = float(value)
                except ValueError:
                    raise InvalidArgument(f"numeric feature {part!r} must be name:number") from None
            else:
                categorical.append(part)
    return numeric, categorical


def kafka_settings(args: argparse.Namespace) -> Any:
    from bandit_engine.stream import KafkaSettings

    return KafkaSettings.from_env(
        args.kafka_bootstrap,
        partitions=args.partitions,
        group_id=args.group_id,
        decisions_topic=args.decisions_topic,
        feedback_topic=args.feedback_topic,
        deadletter_topic=args.deadletter_topic,
    )


def mysql_dsn(args: argparse.Namespace) -> str | None:
    return args.mysql_dsn or os.environ.get("BANDIT_MYSQL_DSN") or None


def at_least_one(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"k={text!r} is not a whole number") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"k={k} must be at least 1")
    return k


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(text: str) -> float:
    """Seconds from ``"90"``, ``"90s"``, ``"15m"``, ``"12h"`` or ``"7d"``."""
    t = text.strip().lower()
    unit = _UNITS.get(t[-1:], None)
    try:
        value = float(t[:-1] if unit is not None else t)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration (seconds, or a number with s, m, h or d)"
        ) from None
    seconds = value * (unit or 1.0)
    if not (math.isfinite(seconds) and seconds >= 0):
        raise argparse.ArgumentTypeError(f"duration {text!r} must be finite and >= 0")
    return seconds


def cpu_list(text: str) -> tuple[int, ...]:
    """``--cpus``: ``"0"``, ``"0-1"``, ``"0,2"`` (``cpus.parse_cpus``)."""
    from bandit_engine.server import parse_cpus

    try:
        return parse_cpus(text)
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
