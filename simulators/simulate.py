"""The simulation runner: policies on a world's stream, over seeds, with regret.

A *contender* is a named way to choose arms: an engine policy (the very
classes the server runs, built through ``ExperimentConfig.make_policy``), a
baseline (``simulators.baselines``), a peer library (``simulators.peers``),
a live server (``simulators.live``) or the Numba fast path ``beta_ts_fast``.
Contenders are given as strings, ``kind`` or ``kind:key=value:key=value``
(values are parsed as JSON, else taken as strings), e.g. ``beta_ts``,
``epsilon_greedy:epsilon=0.05``, ``lin_ts_shared:joint_dim=256``.

For each seed the runner builds the world once from
``numpy.random.default_rng(seed)`` and runs every contender on its stream:
same contexts, same eligible arms, same reward draw per (round, arm), so
differences between contenders are paired. A contender's own randomness
comes from ``default_rng([seed, feature_hash(label)])``: the same seed gives
the same result, whatever other contenders run alongside.

Per round the runner records the sampled reward (summed over the ``k``
slots) and the expected regret of the shown list against the best list
(``Round.regret``); it reports cumulative reward and regret, CTR (reward per
shown slot) and their 95% confidence intervals across seeds (Student t),
and, on the Bernoulli world with ``k = 1``, the Lai-Robbins lower bound.
"""

from __future__ import annotations

import json
import math
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import numpy as np
import numpy.typing as npt

from bandit_engine import ArmFeatures, ExperimentConfig, InvalidArgument, feature_hash
from bandit_engine.policies import POLICIES, Ranking
from simulators import baselines, peers
from simulators._simkernels import beta_ts_bernoulli
from simulators.worlds import BernoulliWorld, Round, World, make_world

__all__ = [
    "Agent",
    "Contender",
    "ContenderResult",
    "ContenderSpec",
    "PolicyAgent",
    "PolicyLike",
    "Progress",
    "SimulationResult",
    "Trace",
    "contender_kinds",
    "make_contender",
    "mean_ci",
    "render_table",
    "run_agent",
    "simulate",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FAST_BETA_TS = "beta_ts_fast"
LIVE = "live"


# ---------------------------------------------------------------- progress
class Progress:
    """A throttled progress line on stderr, shown only once a run passes ``delay`` s.

    On a terminal the line is redrawn in place; otherwise a line is printed
    every ``every`` seconds. ``advance(n)`` is cheap enough to call often.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        delay: float = 2.0,
        every: float = 5.0,
    ) -> None:
        self.total = max(int(total), 1)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.delay = delay
        self.label = ""
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._every = 0.25 if self._tty else every
        self._done = 0
        self._t0 = time.monotonic()
        self._last = self._t0
        self._shown = False

    def advance(self, n: int, label: str | None = None) -> None:
        self._done += n
        if label is not None:
            self.label = label
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._t0 < self.delay or now - self._last < self._every:
            return
        self._last = now
        elapsed = now - self._t0
        frac = min(self._done / self.total, 1.0)
        eta = elapsed * (1.0 - frac) / frac if frac > 0 else float("nan")
        msg = (
            f"[simulate {elapsed:6.1f}s] {100 * frac:5.1f}%  {self.label}  (about {eta:.0f}s left)"
        )
        if self._tty:
            self.stream.write("\r" + msg.ljust(100)[:100])
        else:
            self.stream.write(msg + "\n")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        if self._shown and self._tty:
            self.stream.write("\n")
            self.stream.flush()


# ------------------------------------------------------------------ agents
class PolicyLike(Protocol):
    """The part of the ``Policy`` contract a simulation needs."""

    def add_arm(self, features: ArmFeatures | None = None) -> int: ...

    def rank(
        self, arms: IntArray, x: FloatArray | None, k: int, rng: np.random.Generator
    ) -> Ranking: ...

    def update_batch(self, arms: IntArray, xs: FloatArray | None, rewards: FloatArray) -> None: ...


class Agent(ABC):
    """What the runner drives: arms in, a ranking out, rewards back."""

    @abstractmethod
    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        """Make world arms ``indices`` (in order, next in line) available."""

    @abstractmethod
    def choose(self, rnd: Round, k: int) -> IntArray:
        """Positions into ``rnd.arms`` of the ``k`` arms to show, top slot first."""

    @abstractmethod
    def learn(self, rnd: Round, order: IntArray, rewards: FloatArray) -> None:
        """The reward of each shown slot of ``rnd`` (after ``choose``)."""

    def close(self) -> None:  # noqa: B027 - most agents hold nothing to release
        """Release what the agent holds (connections, native handles)."""


class PolicyAgent(Agent):
    """Drives any ``PolicyLike`` (engine policy, baseline, peer) in process.

    World arm ``i`` is policy arm ``i`` (arms are added in world order).
    Rewards are applied every ``update_every`` rounds, in order, as the
    engine's learner applies batches.
    """

    def __init__(self, policy: PolicyLike, rng: np.random.Generator, update_every: int = 1) -> None:
        if not isinstance(update_every, int) or update_every < 1:
            raise InvalidArgument(f"update_every={update_every!r} must be a positive integer")
        self.policy = policy
        self.rng = rng
        self.update_every = update_every
        self._buf: list[tuple[IntArray, FloatArray, FloatArray]] = []

    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        for i in indices:
            got = self.policy.add_arm(world.arm(i).features())
            if got != i:
                raise RuntimeError(f"policy numbered world arm {i} as {got}; arms out of order")

    def choose(self, rnd: Round, k: int) -> IntArray:
        return self.policy.rank(rnd.arms, rnd.x, k, self.rng).order

    def learn(self, rnd: Round, order: IntArray, rewards: FloatArray) -> None:
        shown = rnd.arms[order]
        xs = rnd.x[None, :] if shown.shape[0] == 1 else np.repeat(rnd.x[None, :], shown.shape[0], 0)
        if self.update_every == 1:
            self.policy.update_batch(shown, xs, rewards)
            return
        self._buf.append((shown, xs, rewards))
        if len(self._buf) >= self.update_every:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            arms = np.concatenate([b[0] for b in self._buf])
            xs = np.concatenate([b[1] for b in self._buf])
            rewards = np.concatenate([b[2] for b in self._buf])
            self._buf.clear()
            self.policy.update_batch(arms, xs, rewards)

    def close(self) -> None:
        self.flush()
        close = getattr(self.policy, "close", None)
        if close is not None:
            close()


# ------------------------------------------------------------------ traces
@dataclass(frozen=True, eq=False)
class Trace:
    """One run: per-round reward (sum over slots) and expected regret."""

    rewards: FloatArray
    regrets: FloatArray
    seconds: float


def run_agent(
    agent: Agent,
    world: World,
    rounds: int,
    k: int,
    progress: Progress | None = None,
) -> Trace:
    """Run ``agent`` on the first ``rounds`` rounds of ``world``, showing ``k`` arms each."""
    _check_rounds(rounds)
    _check_k(world, k)
    rewards = np.empty(rounds)
    regrets = np.empty(rounds)
    t0 = time.perf_counter()
    try:
        for rnd in world.rounds(rounds):
            if rnd.new_arms:
                agent.add_arms(world, rnd.new_arms)
            order = agent.choose(rnd, k)
            r, regret = rnd.play(order)
            agent.learn(rnd, order, r)
            rewards[rnd.t] = r.sum()
            regrets[rnd.t] = regret
            if progress is not None and rnd.t & 255 == 255:
                progress.advance(256)
    finally:
        agent.close()
    if progress is not None:
        progress.advance(rounds & 255)
    return Trace(rewards, regrets, time.perf_counter() - t0)


def _check_rounds(rounds: int) -> None:
    if not isinstance(rounds, int) or rounds < 1:
        raise InvalidArgument(f"rounds={rounds!r} must be a positive integer")


def _check_k(world: World, k: int) -> None:
    if not isinstance(k, int) or k < 1:
        raise InvalidArgument(f"k={k!r} must be a positive integer")
    m = world.min_eligible()
    if k > m:
        raise InvalidArgument(
            f"k={k} is larger than the {m} arms eligible in some rounds of world {world.name!r}"
        )


# -------------------------------------------------------------- contenders
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
        _check_k(world, k)
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
        _check_rounds(rounds)
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
            return PolicyAgent(engine_policy(kind, world, params), rng, update_every)

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


# ----------------------------------------------------------------- results
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise InvalidArgument(f"df={df!r} must be >= 1")
    return _T975[df - 1] if df <= 30 else 1.96 + 2.5 / df


def mean_ci(values: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Mean over axis 0 and its 95% Student-t interval (zero width for one row)."""
    v = np.asarray(values, dtype=np.float64)
    mean = v.mean(axis=0)
    n = v.shape[0]
    if n < 2:
        return mean, mean.copy(), mean.copy()
    half = t975(n - 1) * v.std(axis=0, ddof=1) / math.sqrt(n)
    return mean, mean - half, mean + half


@dataclass
class ContenderResult:
    """One contender's traces, one per seed."""

    spec: ContenderSpec
    traces: list[Trace] = field(default_factory=list)


@dataclass
class SimulationResult:
    """Everything a simulation produced, and its summaries."""

    world: dict[str, Any]
    rounds: int
    k: int
    seeds: list[int]
    update_every: int
    contenders: list[ContenderResult]
    bound: FloatArray | None  # mean Lai-Robbins bound at t = 1..rounds, if it applies

    def checkpoints(self, points: int = 100) -> IntArray:
        """Round counts 1..rounds at which curves are reported (about ``points`` of them)."""
        n = max(1, min(points, self.rounds))
        out: IntArray = np.unique(np.linspace(0, self.rounds, n + 1).round().astype(np.int64))[1:]
        return out

    def summary(
        self, points: int = 100, ctr_points: int = 25, timing: bool = False
    ) -> dict[str, Any]:
        """JSON-ready results; without ``timing`` the same seed gives the same dict.

        Regret curves are cumulative, at ``checkpoints`` (about ``points``);
        CTR curves are per window between ``ctr_checkpoints`` (about
        ``ctr_points``: fewer, longer windows, since a window's CTR is noisy).
        """
        ts = self.checkpoints(points)
        ctr_ts = self.checkpoints(ctr_points)
        out: dict[str, Any] = {
            "schema": "bandit-engine/simulation/1",
            "world": self.world,
            "rounds": self.rounds,
            "k": self.k,
            "seeds": self.seeds,
            "update_every": self.update_every,
            "checkpoints": ts.tolist(),
            "ctr_checkpoints": ctr_ts.tolist(),
            "contenders": [],
            "lai_robbins": None,
        }
        if self.bound is not None:
            out["lai_robbins"] = {
                "bound": self.bound[ts - 1].tolist(),
                "final": float(self.bound[-1]),
            }
        for c in self.contenders:
            out["contenders"].append(self._contender_summary(c, ts, ctr_ts, timing))
        return out

    def _contender_summary(
        self, c: ContenderResult, ts: IntArray, ctr_ts: IntArray, timing: bool
    ) -> dict[str, Any]:
        rewards = np.stack([tr.rewards for tr in c.traces])
        regrets = np.stack([tr.regrets for tr in c.traces])
        zero = np.zeros((rewards.shape[0], 1))
        cum_reward = np.concatenate([zero, rewards.cumsum(axis=1)], axis=1)  # [:, t]: rounds < t
        cum_regret = regrets.cumsum(axis=1)
        prev = np.concatenate([[0], ctr_ts[:-1]])
        ctr_curve = (cum_reward[:, ctr_ts] - cum_reward[:, prev]) / ((ctr_ts - prev) * self.k)
        final_reward = cum_reward[:, -1]
        final_regret = cum_regret[:, -1]
        final_ctr = final_reward / (self.rounds * self.k)

        def stat(v: FloatArray) -> dict[str, Any]:
            m, lo, hi = mean_ci(v)
            return {"mean": float(m), "ci95": [float(lo), float(hi)], "per_seed": v.tolist()}

        reg_m, reg_lo, reg_hi = mean_ci(cum_regret[:, ts - 1])
        ctr_m, ctr_lo, ctr_hi = mean_ci(ctr_curve)
        d: dict[str, Any] = {
            "label": c.spec.label,
            "kind": c.spec.kind,
            "params": c.spec.params,
            "cumulative_reward": stat(final_reward),
            "cumulative_regret": stat(final_regret),
            "ctr": stat(final_ctr),
            "regret_vs_lai_robbins": (
                float(final_regret.mean() / self.bound[-1])
                if self.bound is not None and self.bound[-1] > 0
                else None
            ),
            "curves": {
                "regret_mean": reg_m.tolist(),
                "regret_lo": reg_lo.tolist(),
                "regret_hi": reg_hi.tolist(),
                "ctr_mean": ctr_m.tolist(),
                "ctr_lo": ctr_lo.tolist(),
                "ctr_hi": ctr_hi.tolist(),
            },
        }
        if timing:
            secs = [tr.seconds for tr in c.traces]
            d["timing"] = {
                "seconds_per_seed": secs,
                "rounds_per_s": float(self.rounds * len(secs) / max(sum(secs), 1e-12)),
            }
        return d


def simulate(
    world: str,
    contenders: Sequence[ContenderSpec | str],
    *,
    rounds: int,
    seeds: Sequence[int],
    k: int = 1,
    world_params: dict[str, Any] | None = None,
    update_every: int = 1,
    target: str | None = None,
    progress: bool | Progress = False,
) -> SimulationResult:
    """Run every contender on ``world`` for each seed; see the module docstring.

    >>> r = simulate("bernoulli", ["beta_ts", "uniform"], rounds=200, seeds=[0, 1],
    ...              world_params={"probs": [0.2, 0.5]})
    >>> [c["label"] for c in r.summary()["contenders"]]
    ['beta_ts', 'uniform']
    """
    _check_rounds(rounds)
    seeds = list(seeds)
    if not seeds:
        raise InvalidArgument("no seeds given")
    for s in seeds:
        if not isinstance(s, int) or s < 0:
            raise InvalidArgument(f"seed {s!r} must be a non-negative integer")
    if not contenders:
        raise InvalidArgument("no contenders given")
    built = [make_contender(c, update_every=update_every, target=target) for c in contenders]
    labels = [c.spec.label for c in built]
    dup = next((lb for i, lb in enumerate(labels) if lb in labels[:i]), None)
    if dup is not None:
        raise InvalidArgument(f"contender {dup!r} given twice")
    params = dict(world_params or {})
    prog = (
        progress
        if isinstance(progress, Progress)
        else Progress(rounds * len(seeds) * len(built), enabled=bool(progress))
    )
    results = [ContenderResult(c.spec) for c in built]
    bounds: list[FloatArray] = []
    desc: dict[str, Any] | None = None
    t_axis = np.arange(1, rounds + 1, dtype=np.float64)
    try:
        for si, seed in enumerate(seeds):
            w = make_world(world, np.random.default_rng(seed), **params)
            _check_k(w, k)
            if desc is None:
                desc = w.describe()
            b = w.regret_lower_bound(t_axis, k)
            if b is not None:
                bounds.append(b)
            for c, res in zip(built, results, strict=True):
                prog.label = f"{c.spec.label}, seed {seed} ({si + 1}/{len(seeds)})"
                res.traces.append(c.run(w, rounds, k, seed, prog))
    finally:
        prog.close()
    assert desc is not None
    bound = np.mean(bounds, axis=0) if len(bounds) == len(seeds) else None
    return SimulationResult(desc, rounds, k, seeds, update_every, results, bound)


# ------------------------------------------------------------------- table
def render_table(result: SimulationResult, timing: bool = True) -> str:
    """A plain-text table of the final figures, one row per contender."""
    s = result.summary(points=1, ctr_points=1, timing=True)
    seeds = result.seeds
    span = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}..{seeds[-1]}"
    world = ", ".join(
        f"{k}={_short(v)}" for k, v in result.world.items() if k != "name" and v is not None
    )
    head = (
        f"world {result.world['name']} ({world})\n"
        f"k={result.k}, {result.rounds} rounds x {len(seeds)} seeds ({span}), "
        f"update every {result.update_every} round(s)"
        + ("; ± is a 95% CI across seeds" if len(seeds) > 1 else "")
    )
    cols = ["contender", "CTR", "cum. reward", "cum. regret"]
    if s["lai_robbins"] is not None:
        cols.append("regret/LR")
    if timing:
        cols += ["s/seed", "rounds/s"]
    rows = [cols]
    for c in s["contenders"]:
        row = [
            c["label"],
            _pm(c["ctr"], 4),
            _pm(c["cumulative_reward"], 1),
            _pm(c["cumulative_regret"], 1),
        ]
        if s["lai_robbins"] is not None:
            ratio = c["regret_vs_lai_robbins"]
            row.append("-" if ratio is None else f"{ratio:.2f}")
        if timing:
            secs = c["timing"]["seconds_per_seed"]
            row += [f"{sum(secs) / len(secs):.2f}", f"{c['timing']['rounds_per_s']:,.0f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head, ""]
    for n, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    if s["lai_robbins"] is not None:
        lines.append(
            f"\nLai-Robbins lower bound on cumulative regret at t={result.rounds}: "
            f"{s['lai_robbins']['final']:.1f} (asymptotic; regret/LR near or below 1 is "
            "as good as a consistent policy can do)"
        )
    return "\n".join(lines)


def _pm(stat: dict[str, Any], digits: int) -> str:
    m = stat["mean"]
    if len(stat["per_seed"]) < 2:
        return f"{m:.{digits}f}"
    lo, hi = stat["ci95"]
    return f"{m:.{digits}f} ± {(hi - lo) / 2:.{digits}f}"


def _short(v: Any) -> str:
    if isinstance(v, list) and len(v) > 4:
        return f"[{', '.join(f'{x:g}' for x in v[:3])}, ... {len(v)} values]"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:g}" if isinstance(x, float) else str(x) for x in v) + "]"
    return str(v)
