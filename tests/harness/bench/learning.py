"""The ``learning`` section: how well the engine's policies learn with their defaults.

``run(quick)`` measures three things (issue 15, "How it will be checked").

**Defaults against peers and against a sweep.** Worlds (``WORLDS``):
scikit-learn's bundled iris, wine and breast_cancer turned into bandits
(``simulators.worlds.SupervisedWorld``: one arm per class, reward 1 for the
right class, features standardised with the dataset's column means and
deviations; rounds = ``PASSES`` x the dataset's rows, rows drawn with
replacement) and three synthetic worlds (a synthetic classification, the
destinations click model, a 10-arm Bernoulli world). On each world and seed
every contender plays the same stream (``simulators.simulate``: same
contexts, same reward draw per round and arm, one arm shown per round; the
rounds are built once per world and seed, ``simulators.worlds.CachedWorld``;
one decision every ``PACE`` seconds, so forgetting by time is at work):

- the engine's ``lin_ts_disjoint`` and ``logistic_ts`` with their defaults,
  and ``lin_ts_shared`` where the world's arms have features;
- the peers (``PEERS``) with their libraries' documented defaults: MABWiser
  ``LinUCB`` and ``LinTS`` (``alpha=1``, ``l2_lambda=1``) and Vowpal Wabbit
  ``--cb_explore_adf --squarecb``; a peer whose library is missing is skipped
  with the reason in the progress output and in ``info["skipped"]``;
- a grid sweep of the engine policies' settings (``SWEEPS``: one list of
  values per parameter, the grid is their product; a grid point equal to the
  policy's default reuses the default's runs).

A contender's figure on a world is its mean *expected* reward per round
(the chosen arm's success probability, averaged over rounds, then seeds;
on the classification worlds it equals the sampled reward). Rewards reach
the policies every ``update_every`` rounds, the same for every contender of
a world.

**Forgetting** (``learning_drift``): two Bernoulli arms whose rates change
halfway; the better arm's share of the last rounds.

**Shared model speed.** The microseconds of one ``LinTSShared.rank`` (100
arms, k=10) right after an update, so a factor the update made stale must be
brought up to date inside the timed call.
"""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.bench import learning_drift
from harness.bench._util import progress
from simulators import peers
from simulators.simulate import ContenderSpec, engine_config, engine_policy, make_contender
from simulators.worlds import (
    CachedWorld,
    DestinationsWorld,
    SupervisedWorld,
    World,
    make_world,
)

__all__ = [
    "DESCRIPTIONS",
    "PEERS",
    "SWEEPS",
    "TARGETS",
    "WORLDS",
    "LearningBench",
    "run",
]

PASSES = 3
#: one decision a minute in every world (``seconds_per_round``): 3,000
#: decisions span two days, two of the default half-lives, so the defaults
#: are measured with forgetting at work (the drift worlds' pace too)
PACE = 60.0
SEEDS = (0, 1, 2)
SHARED_ARMS = 100
SHARED_K = 10


@dataclass(frozen=True)
class WorldSpec:
    """A world of the section: ``world`` built by ``make_world`` with ``params``."""

    name: str
    world: str
    params: dict[str, Any]
    rounds: int = 0  # 0: PASSES x the dataset's rows
    update_every: int = 1
    arm_features: bool = False
    about: str = ""


WORLDS: tuple[WorldSpec, ...] = (
    WorldSpec("iris", "supervised", {"dataset": "iris"}, about="150 rows, 4 features, 3 arms"),
    WorldSpec("wine", "supervised", {"dataset": "wine"}, about="178 rows, 13 features, 3 arms"),
    WorldSpec(
        "breast_cancer",
        "supervised",
        {"dataset": "breast_cancer"},
        about="569 rows, 30 features, 2 arms",
    ),
    WorldSpec(
        "synthetic",
        "supervised",
        {"dataset": "synthetic", "n_samples": 600, "n_features": 8, "n_classes": 5},
        about="Gaussian classes, 600 rows, 8 features, 5 arms",
    ),
    WorldSpec(
        "destinations",
        "destinations",
        {"n_arms": 10, "dim": 32},
        rounds=3_000,
        update_every=10,
        arm_features=True,
        about="10 destinations, hashed context dim 32, logistic clicks",
    ),
    WorldSpec(
        "bernoulli",
        "bernoulli",
        {"n_arms": 10},
        rounds=3_000,
        update_every=10,
        about="10 arms, rates 0.1 to 0.5, no context",
    ),
)

#: The engine policies compared with the peers; ``lin_ts_shared`` runs where arms have features.
ENGINE = ("lin_ts_disjoint", "logistic_ts")
SHARED = "lin_ts_shared"
#: name -> contender; MABWiser's documented defaults are alpha=1, l2_lambda=1
PEERS: dict[str, str] = {
    "mabwiser_linucb": "mabwiser_linucb:alpha=1.0:l2_lambda=1.0",
    "mabwiser_lints": "mabwiser_lints:alpha=1.0:l2_lambda=1.0",
    "vw_squarecb": "vw_squarecb",
}
#: policy -> parameter -> values; the sweep is the product of the lists
#: (lin_ts_disjoint: fixed noise scales v, drawn at exploration 1: the scale
#: of a draw is v itself, as before the noise scale was learned)
SWEEPS: dict[str, dict[str, tuple[float, ...]]] = {
    "lin_ts_disjoint": {
        "noise_scale": (0.05, 0.1, 0.25, 0.5, 1.0),
        "prior_precision": (0.1, 1.0, 10.0),
        "exploration": (1.0,),
    },
    "logistic_ts": {
        "prior_precision": (0.1, 1.0, 10.0),
        "exploration": (0.1, 0.25, 0.5, 1.0),
    },
}
#: figure suffix of each engine policy's ratios
SUFFIX = {"lin_ts_disjoint": "", "logistic_ts": "_logistic"}

TARGETS: dict[str, tuple[str, float]] = {
    "learning_default_vs_best_peer": (">=", 1.0),
    "learning_default_vs_sweep_best": (">=", 0.97),
    "learning_default_vs_best_peer_logistic": (">=", 1.0),
    "learning_default_vs_sweep_best_logistic": (">=", 0.97),
    **learning_drift.TARGETS,
    "shared_rank_us": ("<=", 200.0),
}

_WORLD_LIST = ", ".join(w.name for w in WORLDS)
_SETTING = (
    f"worlds {_WORLD_LIST}; {len(SEEDS)} seeds; one arm per round; peers with their "
    "documented defaults in the same run"
)


def _descriptions() -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, sfx in SUFFIX.items():
        out[f"learning_default_vs_best_peer{sfx}"] = (
            f"mean over the worlds of {kind} (defaults) mean reward / the best peer's on that "
            f"world ({_SETTING})"
        )
        out[f"learning_default_vs_sweep_best{sfx}"] = (
            f"mean over the worlds of {kind} (defaults) mean reward / the best point of its "
            f"sweep on that world (grid {SWEEPS[kind]})"
        )
    out["shared_rank_us"] = (
        f"median us of one LinTSShared.rank ({SHARED_ARMS} arms, k={SHARED_K}, default "
        "joint_dim, destinations arms and contexts, hashed dim 32) right after an update"
    )
    out["shared_rank_us_jd512"] = "shared_rank_us at joint_dim 512"
    out["shared_update_us"] = "median us of the update before each timed rank (default size)"
    out["shared_update_us_jd512"] = "the same at joint_dim 512"
    for w in WORLDS:
        names = [*ENGINE, *([SHARED] if w.arm_features else []), *PEERS]
        for name in names:
            out[f"learning_{w.name}_{name}"] = (
                f"mean expected reward per round of {name} on {w.name} ({w.about})"
            )
        for kind in SWEEPS:
            out[f"learning_{w.name}_{kind}_sweep_best"] = (
                f"the best mean reward of the {kind} sweep on {w.name}"
            )
    out.update(learning_drift.DESCRIPTIONS)
    return out


DESCRIPTIONS = _descriptions()


def sweep_points(kind: str) -> list[dict[str, float]]:
    """Every point of ``SWEEPS[kind]``: the product of its parameter lists."""
    grid = SWEEPS[kind]
    return [dict(zip(grid, vals, strict=True)) for vals in itertools.product(*grid.values())]


def _key(spec: ContenderSpec) -> str:
    return spec.label.replace(":", "_").replace("=", "")


@dataclass
class _Entry:
    name: str
    contender: Any
    values: list[float] = field(default_factory=list)


class LearningBench:
    """Runs the section; ``figures()`` after ``run``; ``info`` holds the details."""

    def __init__(self, quick: bool = False) -> None:
        self.quick = quick
        self.seeds = SEEDS[:1] if quick else SEEDS
        self.passes = 1 if quick else PASSES
        self.info: dict[str, Any] = {"skipped": {}, "failed": {}, "worlds": {}, "sweeps": {}}
        self.figures: dict[str, float] = {}

    # ------------------------------------------------------------ worlds
    def _rounds(self, spec: WorldSpec, world: World) -> int:
        if spec.rounds:
            return max(300, spec.rounds // 5) if self.quick else spec.rounds
        if not isinstance(world, SupervisedWorld):
            raise TypeError(f"world {spec.name!r} needs a number of rounds")
        return self.passes * int(world.X.shape[0])

    def _peers(self) -> dict[str, str]:
        have = peers.available()
        out = {}
        for name, spec in PEERS.items():
            kind = ContenderSpec.parse(spec).kind
            if kind in have:
                out[name] = spec
            else:
                lib = peers.PEERS[kind][0]
                reason = f"{lib} is not installed (pip install 'bandit-engine[bench]')"
                self.info["skipped"][name] = reason
                progress(f"learning: peer {name} skipped: {reason}")
        return out

    def _contenders(self, spec: WorldSpec, world: World, peer_specs: dict[str, str]) -> Any:
        """(defaults and peers, sweep entries by kind, sweep point -> default alias)."""
        main = [*ENGINE, *([SHARED] if spec.arm_features else [])]
        entries = [_Entry(n, make_contender(n, update_every=spec.update_every)) for n in main]
        entries += [
            _Entry(n, make_contender(s, update_every=spec.update_every))
            for n, s in peer_specs.items()
        ]
        sweeps: dict[str, list[_Entry]] = {}
        aliases: dict[str, str] = {}
        for kind in SWEEPS:
            defaults = engine_config(kind, world, {}).make_policy().params()
            sweeps[kind] = []
            for point in sweep_points(kind):
                cs = ContenderSpec(kind, dict(point))
                label = _key(cs)
                if all(defaults.get(p) == v for p, v in point.items()):
                    aliases[label] = kind  # the default's runs stand for this point
                    continue
                try:
                    c = make_contender(cs, update_every=spec.update_every)
                except Exception as exc:  # a parameter the policy no longer takes
                    self.info["skipped"][label] = str(exc)
                    progress(f"learning: sweep point {label} skipped: {exc}")
                    continue
                sweeps[kind].append(_Entry(label, c))
        return entries, sweeps, aliases

    def _world(self, spec: WorldSpec, peer_specs: dict[str, str]) -> None:
        try:
            first = make_world(
                spec.world,
                np.random.default_rng(self.seeds[0]),
                seconds_per_round=PACE,
                **spec.params,
            )
        except Exception as exc:  # scikit-learn missing: say so, go on
            self.info["skipped"][spec.name] = str(exc)
            progress(f"learning: world {spec.name} skipped: {exc}")
            return
        entries, sweeps, aliases = self._contenders(spec, first, peer_specs)
        everyone = [*entries, *(e for es in sweeps.values() for e in es)]
        rounds = self._rounds(spec, first)
        oracle = []
        for si, seed in enumerate(self.seeds):
            world = CachedWorld(
                make_world(
                    spec.world,
                    np.random.default_rng(seed),
                    seconds_per_round=PACE,
                    **spec.params,
                ),
                rounds,
            )
            best = float(np.mean([r.best_value(1) for r in world.rounds(rounds)]))
            oracle.append(best)
            progress(
                f"learning: {spec.name} seed {seed} ({si + 1}/{len(self.seeds)}): "
                f"{len(everyone)} contenders x {rounds:,} rounds"
            )
            for e in everyone:
                where = f"{spec.name}/{e.name}"
                if where in self.info["failed"]:
                    continue
                try:
                    tr = e.contender.run(world, rounds, 1, seed)
                except Exception as exc:
                    if e.name in ENGINE:
                        raise
                    self.info["failed"][where] = repr(exc)
                    progress(f"learning: {e.name} failed on {spec.name}: {exc!r}")
                    continue
                e.values.append(best - float(tr.regrets.mean()))
        self._world_figures(spec, rounds, entries, sweeps, aliases, peer_specs)
        self.info["worlds"][spec.name]["oracle_mean_reward"] = statistics.fmean(oracle)

    def _world_figures(
        self,
        spec: WorldSpec,
        rounds: int,
        entries: list[_Entry],
        sweeps: dict[str, list[_Entry]],
        aliases: dict[str, str],
        peer_specs: dict[str, str],
    ) -> None:
        done = {e.name: e.values for e in entries if len(e.values) == len(self.seeds)}
        means = {n: statistics.fmean(v) for n, v in done.items()}
        for n, m in means.items():
            self.figures[f"learning_{spec.name}_{n}"] = m
        wi: dict[str, Any] = {
            "params": spec.params,
            "rounds": rounds,
            "seeds": list(self.seeds),
            "update_every": spec.update_every,
            "mean_reward": means,
            "per_seed": done,
        }
        peer_means = [means[n] for n in peer_specs if n in means]
        for kind, es in sweeps.items():
            grid = {e.name: statistics.fmean(e.values) for e in es if e.values}
            grid.update({label: means[k] for label, k in aliases.items() if k == kind})
            self.info["sweeps"].setdefault(kind, {})[spec.name] = grid
            if not grid:
                continue
            best_label = max(grid, key=grid.__getitem__)
            self.figures[f"learning_{spec.name}_{kind}_sweep_best"] = grid[best_label]
            wi[f"{kind}_sweep_best"] = best_label
            refs = {"sweep_best": grid[best_label]}
            if peer_means:
                refs["best_peer"] = max(peer_means)
            for what, ref in refs.items():
                wi[f"{kind}_vs_{what}"] = means[kind] / ref
                wi[f"{kind}_vs_{what}_per_seed"] = [v / ref for v in done[kind]]
        self.info["worlds"][spec.name] = wi

    def _ratios(self) -> None:
        """The headline ratios: means over the worlds of the per-world ratios.

        ``info["ratio_se"]``: the standard error across seeds of the same mean
        with the engine's side taken seed by seed (the reference fixed at its
        mean): the noise of the engine's figure, not of its peers'.
        """
        se = self.info.setdefault("ratio_se", {})
        for kind, sfx in SUFFIX.items():
            for what in ("best_peer", "sweep_best"):
                col = f"{kind}_vs_{what}"
                worlds = [w for w in self.info["worlds"].values() if col in w]
                if not worlds:
                    continue
                key = f"learning_default_vs_{what}{sfx}"
                self.figures[key] = statistics.fmean(w[col] for w in worlds)
                by_seed = [
                    statistics.fmean(s)
                    for s in zip(*(w[f"{col}_per_seed"] for w in worlds), strict=True)
                ]
                if len(by_seed) > 1:
                    se[key] = statistics.stdev(by_seed) / math.sqrt(len(by_seed))

    # -------------------------------------------------------- shared rank
    def shared_rank(self) -> None:
        reps, warm_events, warmup = (40, 500, 5) if self.quick else (300, 3_000, 20)
        world = DestinationsWorld(np.random.default_rng(0), n_arms=SHARED_ARMS, dim=32)
        rounds = list(world.rounds(warm_events + warmup + reps))
        arms = np.arange(SHARED_ARMS, dtype=np.int64)
        for sfx, params in (("", {}), ("_jd512", {"joint_dim": 512})):
            rng = np.random.default_rng(1)
            policy = engine_policy(SHARED, world, params)
            for i in range(SHARED_ARMS):
                policy.add_arm(world.arm(i).features())
            shown = rng.integers(0, SHARED_ARMS, warm_events)
            warm = rounds[:warm_events]
            xs = np.stack([r.x for r in warm])
            rewards = np.array(
                [float(r.uniforms[a] < r.means[a]) for r, a in zip(warm, shown, strict=True)]
            )
            policy.update_batch(shown.astype(np.int64), xs, rewards)
            progress(
                f"learning: lin_ts_shared rank after update, joint_dim "
                f"{policy.params()['joint_dim']}, {reps} timed calls"
            )
            ranks, updates = [], []
            for j, rnd in enumerate(rounds[warm_events:]):
                a = int(rng.integers(SHARED_ARMS))
                t0 = time.perf_counter_ns()
                policy.update(a, rnd.x, float(rnd.uniforms[a] < rnd.means[a]))
                t1 = time.perf_counter_ns()
                policy.rank(arms, rnd.x, SHARED_K, rng)
                t2 = time.perf_counter_ns()
                if j >= warmup:
                    updates.append((t1 - t0) / 1e3)
                    ranks.append((t2 - t1) / 1e3)
            self.figures[f"shared_rank_us{sfx}"] = statistics.median(ranks)
            self.figures[f"shared_update_us{sfx}"] = statistics.median(updates)
            self.info[f"shared{sfx or '_default'}"] = {
                "params": policy.params(), "warm_events": warm_events, "reps": reps,
            }  # fmt: skip

    # ---------------------------------------------------------------- run
    def run(self, parts: Sequence[str] = ("worlds", "drift", "shared")) -> dict[str, float]:
        t0 = time.perf_counter()
        if "worlds" in parts:
            peer_specs = self._peers()
            for spec in WORLDS:
                self._world(spec, peer_specs)
            self._ratios()
        if "drift" in parts:
            figures, self.info["drift"] = learning_drift.run(self.quick)
            self.figures.update(figures)
        if "shared" in parts:
            self.shared_rank()
        self.info["seconds"] = round(time.perf_counter() - t0, 1)
        order = [k for k in DESCRIPTIONS if k in self.figures]
        order += [k for k in self.figures if k not in DESCRIPTIONS]
        return {k: self.figures[k] for k in order if math.isfinite(self.figures[k])}


def run(quick: bool = False) -> dict[str, float]:
    """The section's figures (``LearningBench(quick).run()``)."""
    return LearningBench(quick).run()
