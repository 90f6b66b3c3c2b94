"""Contenders: named ways to choose arms, each run on one world for one seed.

A contender is an engine policy (the very classes the server runs, built
through ``ExperimentConfig.make_policy``), a baseline
(``simulators.baselines``), a peer library (``simulators.peers``), a live
server (``simulators.live``) or the Numba fast path ``beta_ts_fast``. It is
given as a string, ``kind`` or ``kind:key=value:key=value`` (values are
parsed as JSON, else taken as strings). A contender's own randomness comes
from ``default_rng([seed, feature_hash(label)])``: the same seed gives the
same result, whatever other contenders run alongside.

An engine policy's parameters are its ``ExperimentConfig``'s, the click
model included: ``lin_ts_disjoint:click_model=cascade`` or
``beta_ts:click_model=position_based:examination=[1,0.5,0.33]`` learn each
ranked list as the engine would with that setting (``ContenderSpec.
click_model``; ``PolicyAgent``).
"""

from __future__ import annotations

import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bandit_engine import ExperimentConfig, InvalidArgument, feature_hash
from bandit_engine.core import ClickModel
from bandit_engine.policies import POLICIES
from simulators import baselines, peers
from simulators._simkernels import beta_ts_bernoulli
from simulators.simulate.agents import Agent, PolicyAgent, Trace, check_k, check_rounds, run_agent
from simulators.simulate.progress import Progress
from simulators.worlds import BernoulliWorld, World

__all__ = [
    "FAST_BETA_TS",
    "LIVE",
    "AgentContender",
    "Contender",
    "ContenderSpec",
    "FastBetaTS",
    "contender_kinds",
    "engine_config",
    "engine_policy",
    "make_contender",
    "parse_value",
]

FAST_BETA_TS = "beta_ts_fast"
LIVE = "live"


@dataclass(frozen=True)
class ContenderSpec:
    """A contender by kind and parameters; ``label`` names it in tables and plots."""

    kind: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if not self.params:
            return self.kind
        return self.kind + "".join(f":{k}={_fmt_value(v)}" for k, v in self.params.items())

    @classmethod
    def parse(cls, text: str) -> ContenderSpec:
        """``kind`` or ``kind:key=value:key=value`` (values JSON, else strings)."""
        parts = [p.strip() for p in text.strip().split(":")]
        if not parts[0]:
            raise InvalidArgument(f"contender {text!r} has no kind")
        params: dict[str, Any] = {}
        for p in parts[1:]:
            key, sep, value = p.partition("=")
            if not sep or not key:
                raise InvalidArgument(f"contender {text!r}: {p!r} must be key=value")
            params[key] = parse_value(value)
        return cls(parts[0], params)

    @property
    def click_model(self) -> ClickModel:
        """The click model an engine contender learns lists by (``click_model``,
        ``examination``; independent unless given)."""
        return ClickModel(
            str(self.params.get("click_model", "independent")),
            self.params.get("examination") or (),
        )


def parse_value(text: str) -> Any:
    """A command-line value: JSON if it parses (3, 0.5, true, null, [1,2]), else
    a comma-separated list of numbers, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        pass
    if "," in text:
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            pass
    return text


def _fmt_value(v: Any) -> str:
    return json.dumps(v) if not isinstance(v, str) else v


class Contender(ABC):
    """Runs one spec on one world for one seed."""

    def __init__(self, spec: ContenderSpec) -> None:
        self.spec = spec

    def rng(self, seed: int) -> np.random.Generator:
        """The contender's own generator for ``seed`` (independent of other contenders)."""
        return np.random.default_rng([seed, feature_hash(self.spec.label)])

    @abstractmethod
    def run(
        self, world: World, rounds: int, k: int, seed: int, progress: Progress | None = None
    ) -> Trace: ...


class AgentContender(Contender):
    """A contender whose ``factory(world, seed, rng)`` builds an ``Agent`` for each run."""

    def __init__(
        self, spec: ContenderSpec, factory: Callable[[World, int, np.random.Generator], Agent]
    ) -> None:
        super().__init__(spec)
        self.factory = factory

    def run(
        self, world: World, rounds: int, k: int, seed: int, progress: Progress | None = None
    ) -> Trace:
        check_k(world, k)
        return run_agent(self.factory(world, seed, self.rng(seed)), world, rounds, k, progress)


class FastBetaTS(Contender):
    """Beta-TS on the Bernoulli world inside one Numba loop (``_simkernels``).

    Same algorithm and same reward stream as the generic runner driving
    ``BetaTS``; its posterior draws come from the kernel's own seeded
    generator, so runs agree in distribution, not draw for draw.
    """

    def __init__(self, spec: ContenderSpec) -> None:
        super().__init__(spec)
        unknown = sorted(set(spec.params) - {"prior_alpha", "prior_beta"})
        if unknown:
            raise InvalidArgument(
                f"{FAST_BETA_TS} has no parameter {unknown[0]!r}; it takes prior_alpha, prior_beta"
            )
        self.prior_alpha = float(spec.params.get("prior_alpha", 1.0))
        self.prior_beta = float(spec.params.get("prior_beta", 1.0))
        for name, v in (("prior_alpha", self.prior_alpha), ("prior_beta", self.prior_beta)):
            if not (math.isfinite(v) and v > 0):
                raise InvalidArgument(f"{name}={v!r} must be a positive finite number")

    def run(
        self, world: World, rounds: int, k: int, seed: int, progress: Progress | None = None
    ) -> Trace:
        if not isinstance(world, BernoulliWorld):
            raise InvalidArgument(
                f"{FAST_BETA_TS} runs on the bernoulli world only, not {world.name!r}"
            )
        if k != 1:
            raise InvalidArgument(f"{FAST_BETA_TS} shows one arm per round; k={k!r} given")
        check_rounds(rounds)
        kernel_seed = int(self.rng(seed).integers(0, 2**63 - 1))
        t0 = time.perf_counter()
        rewards, regrets, _ = beta_ts_bernoulli(
            world.probs, rounds, kernel_seed, world.reward_key(), self.prior_alpha, self.prior_beta
        )
        if progress is not None:
            progress.advance(rounds)
        return Trace(rewards, regrets, time.perf_counter() - t0)


def contender_kinds() -> dict[str, str]:
    """Every contender kind and what it is (peers only when their library is installed)."""
    out = {k: "engine policy" for k in POLICIES}
    out[FAST_BETA_TS] = "engine Beta-TS algorithm in one Numba loop (bernoulli world, k=1)"
    out.update({k: "baseline" for k in baselines.BASELINES})
    out.update({k: f"peer ({lib})" for k, lib in peers.available().items()})
    out[LIVE] = "a live server through Recommend/Feedback (needs a target host:port)"
    return out


def make_contender(
    spec: ContenderSpec | str, *, update_every: int = 1, target: str | None = None
) -> Contender:
    """Build a contender; unknown kinds and parameters raise ``InvalidArgument``."""
    if isinstance(spec, str):
        spec = ContenderSpec.parse(spec)
    kind, params = spec.kind, dict(spec.params)
    if kind == FAST_BETA_TS:
        return FastBetaTS(spec)
    if kind in POLICIES:

        def engine(world: World, seed: int, rng: np.random.Generator) -> Agent:
            cfg = engine_config(kind, world, params)
            return PolicyAgent(cfg.make_policy(), rng, update_every, click_model=cfg.click)

        _validate_engine_params(kind, params)
        return AgentContender(spec, engine)
    if kind in baselines.BASELINES:
        baselines.make_baseline(kind, 1, **params)  # validate now, not mid-run

        def baseline(world: World, seed: int, rng: np.random.Generator) -> Agent:
            return PolicyAgent(
                baselines.make_baseline(kind, world.space.dim, **params), rng, update_every
            )

        return AgentContender(spec, baseline)
    if kind in peers.PEERS:
        peers.check_peer(kind, params)

        def peer(world: World, seed: int, rng: np.random.Generator) -> Agent:
            policy = peers.make_peer(
                kind, world.space.dim, seed=int(rng.integers(0, 2**31 - 1)), **params
            )
            return PolicyAgent(policy, rng, update_every)

        return AgentContender(spec, peer)
    if kind == LIVE:
        if target is None:
            raise InvalidArgument(f"{spec.label} needs a target server (--target host:port)")
        from simulators import live

        return AgentContender(spec, live.agent_factory(target, params))
    raise InvalidArgument(
        f"unknown contender {kind!r}; expected one of {sorted(contender_kinds())}"
    )


_WORLD_SET = ("experiment_id", "policy", "dim", "dense_dim", "intercept")


def _validate_engine_params(kind: str, params: dict[str, Any]) -> None:
    fixed = sorted(set(params) & set(_WORLD_SET))
    if fixed:
        raise InvalidArgument(
            f"{kind}: {fixed[0]!r} is set by the world and the contender, not a parameter"
        )
    ExperimentConfig.from_dict({"experiment_id": "sim", "policy": kind, "dim": 2, **params})


def engine_config(
    kind: str, world: World, params: dict[str, Any], experiment_id: str = "sim"
) -> ExperimentConfig:
    """The ``ExperimentConfig`` of engine policy ``kind`` on ``world``'s feature space."""
    space = world.space
    return ExperimentConfig.from_dict(
        {
            "experiment_id": experiment_id,
            "policy": kind,
            "dim": space.dim,
            "dense_dim": space.dense_dim,
            "intercept": space.intercept,
            **params,
        }
    )


def engine_policy(kind: str, world: World, params: dict[str, Any]) -> Any:
    """An engine policy built exactly as the server builds it (``ExperimentConfig``)."""
    return engine_config(kind, world, params).make_policy()
