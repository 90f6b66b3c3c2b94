"""The settings ``tune`` evaluates: ``--grid`` parsing, validation, default grids.

A setting is a policy kind and every constructor argument but ``dim`` (which
the log's contexts fix). Each kind starts from a base setting: the served
experiment's own settings when the kind is the served one, else the kind's
defaults, with the ``--policy KIND:key=value`` overrides on top. The grid
varies some arguments around that base.
"""

from __future__ import annotations

import inspect
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bandit_engine import ExperimentConfig, InvalidArgument
from bandit_engine.policies import POLICIES, make_policy

__all__ = [
    "DEFAULT_GRIDS",
    "MAX_SETTINGS",
    "Setting",
    "build_settings",
    "parse_grid",
    "served_setting",
    "tunable",
]

#: Per kind, the grid used when no ``--grid`` is given. A parameter that the
#: kind's constructor does not take is left out.
DEFAULT_GRIDS: dict[str, dict[str, tuple[Any, ...]]] = {
    "lin_ts_disjoint": {
        "exploration": (0.1, 0.25, 0.5, 1.0),
        "prior_precision": (0.1, 1.0, 10.0),
    },
    "lin_ts_shared": {
        "noise_scale": (0.05, 0.1, 0.25, 0.5),
        "prior_precision": (1.0, 10.0),
    },
    "logistic_ts": {
        "exploration": (0.1, 0.25, 0.5, 1.0),
        "prior_precision": (0.1, 1.0, 10.0),
    },
    "beta_ts": {"decay": (1.0, 0.999, 0.99), "prior_beta": (1.0, 3.0, 10.0)},
}

#: More settings than this are refused unless ``max_settings`` is raised.
MAX_SETTINGS = 200


@dataclass(frozen=True)
class Setting:
    """One point of the grid: a policy kind and its constructor arguments."""

    kind: str
    params: dict[str, Any]  # every constructor argument but dim
    varied: tuple[str, ...] = ()  # the arguments the grid (or the base) sets
    current: bool = False

    def label(self, with_kind: bool = False) -> str:
        shown = self.varied or tuple(sorted(self.params))
        text = " ".join(f"{k}={_fmt(self.params[k])}" for k in shown)
        return f"{self.kind} {text}".strip() if with_kind else (text or "defaults")

    def values(self) -> dict[str, Any]:
        return {k: self.params[k] for k in self.varied}


def _fmt(v: Any) -> str:
    if isinstance(v, float) and math.isfinite(v):
        return f"{v:g}"
    return str(v)


def tunable(kind: str) -> tuple[str, ...]:
    """The constructor arguments of a policy kind that a grid may set."""
    if kind not in POLICIES:
        raise InvalidArgument(f"unknown policy kind {kind!r}; expected one of {sorted(POLICIES)}")
    sig = inspect.signature(POLICIES[kind])
    return tuple(
        sorted(
            name
            for name, p in sig.parameters.items()
            if name != "dim" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        )
    )


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_grid(texts: Sequence[str]) -> dict[str, tuple[Any, ...]]:
    """``["noise_scale=0.05,0.1", "prior_precision=1,10"]`` -> {name: values}."""
    grid: dict[str, tuple[Any, ...]] = {}
    for text in texts:
        name, eq, raw = text.partition("=")
        name = name.strip()
        if not eq or not name:
            raise InvalidArgument(
                f"--grid {text!r} must be NAME=V1,V2,..., e.g. noise_scale=0.05,0.1,0.25"
            )
        if name in grid:
            raise InvalidArgument(f"--grid {name} is given twice; give its values once")
        items = [t.strip() for t in raw.split(",")]
        if not any(items):
            raise InvalidArgument(f"--grid {text!r}: no values for {name}")
        if not all(items):
            raise InvalidArgument(f"--grid {text!r}: an empty value in the list for {name}")
        values: list[Any] = []
        for item in items:
            v = _value(item)
            if v not in values:
                values.append(v)
        grid[name] = tuple(values)
    return grid


def _check(kind: str, dim: int, params: Mapping[str, Any], what: str) -> dict[str, Any]:
    """Build the policy once: its own checks name the bad value; return its settings."""
    args = dict(params)
    if kind != "beta_ts":
        args["dim"] = dim
    try:
        policy = make_policy(kind, **args)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{what}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{what}: not a valid setting of {kind} ({exc})") from None
    out = policy.params()
    out.pop("dim", None)
    return out


def served_setting(config: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]] | None:
    """(kind, settings) of the policy an experiment config serves, if any."""
    if not config:
        return None
    policy = ExperimentConfig.from_dict(dict(config)).make_policy()
    params = policy.params()
    params.pop("dim", None)
    return policy.kind, params


def build_settings(
    specs: Sequence[tuple[str, dict[str, Any]]],
    grid: Mapping[str, tuple[Any, ...]],
    *,
    dim: int,
    served: tuple[str, dict[str, Any]] | None = None,
    max_settings: int = MAX_SETTINGS,
) -> tuple[list[Setting], dict[str, dict[str, tuple[Any, ...]]]]:
    """Every setting to evaluate, current one first, and the grid used per kind.

    ``specs``: (kind, overrides) per ``--policy``. A grid parameter applies
    to the kinds that take it and must belong to at least one of them; with
    no grid, each kind gets its ``DEFAULT_GRIDS`` entry.
    """
    if "dim" in grid:
        raise InvalidArgument(
            f"--grid dim: dim is fixed by the log's contexts ({dim}) and cannot be tuned"
        )
    for name in grid:
        if not any(name in tunable(kind) for kind, _ in specs):
            kinds = ", ".join(f"{k} ({', '.join(tunable(k))})" for k, _ in specs)
            raise InvalidArgument(
                f"--grid {name}: no parameter {name!r} in the policies tuned; "
                f"their parameters: {kinds}"
            )
    bases: list[Setting] = []
    used: dict[str, dict[str, tuple[Any, ...]]] = {}
    for kind, overrides in specs:
        known = tunable(kind)
        for k in overrides:
            if k not in known:
                raise InvalidArgument(
                    f"--policy {kind}:{k}=...: {kind} has no parameter {k!r}; "
                    f"its parameters: {', '.join(known)}"
                )
        start = dict(served[1]) if served and served[0] == kind else {}
        params = _check(kind, dim, {**start, **overrides}, f"--policy {kind}")
        bases.append(Setting(kind, params, tuple(sorted(overrides))))
        if grid:
            used[kind] = {k: v for k, v in grid.items() if k in known}
        else:
            used[kind] = {k: v for k, v in DEFAULT_GRIDS.get(kind, {}).items() if k in known}
        for name, values in used[kind].items():
            for v in values:
                _check(kind, dim, {**params, name: v}, f"--grid {name}={_fmt(v)}")
    current = _current(bases, served, dim)
    out: list[Setting] = [current]
    seen = {_key(current)}
    for base in bases:
        names = tuple(used[base.kind])
        combos = list(itertools.product(*(used[base.kind][n] for n in names))) or [()]
        if len(out) + len(combos) > max_settings + 1:
            raise InvalidArgument(
                f"the grid has more than {max_settings} settings "
                f"({base.kind}: {len(combos)}); narrow it or raise --max-settings"
            )
        for combo in combos:
            point = {**base.params, **dict(zip(names, combo, strict=True))}
            params = _check(base.kind, dim, point, "grid")
            varied = tuple(dict.fromkeys((*names, *base.varied)))
            s = Setting(base.kind, params, varied)
            if _key(s) not in seen:
                seen.add(_key(s))
                out.append(s)
    labels = tuple(dict.fromkeys(n for s in out for n in s.varied))
    out = [_with_varied(s, labels) for s in out]
    return out, used


def _with_varied(s: Setting, names: tuple[str, ...]) -> Setting:
    varied = tuple(n for n in names if n in s.params)
    return Setting(s.kind, s.params, varied, s.current)


def _current(bases: list[Setting], served: tuple[str, dict[str, Any]] | None, dim: int) -> Setting:
    """The served experiment's setting if the log has one, else the first base."""
    if served is not None:
        params = _check(served[0], dim, served[1], "the served experiment's policy")
        return Setting(served[0], params, (), True)
    b = bases[0]
    return Setting(b.kind, b.params, b.varied, True)


def _key(s: Setting) -> tuple[Any, ...]:
    return (s.kind, tuple(sorted((k, repr(v)) for k, v in s.params.items())))
