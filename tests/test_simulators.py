"""The simulation runner, baselines, the Numba fast path, the CLI and live runs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit_engine import InvalidArgument
from bandit_engine.policies import BetaTS
from bandit_engine.server import ServerSettings, create_server, stop_server
from simulators import bench
from simulators.__main__ import main
from simulators._simkernels import beta_samples, beta_ts_bernoulli
from simulators.baselines import BASELINES, make_baseline
from simulators.simulate import (
    Agent,
    ContenderSpec,
    PolicyAgent,
    Progress,
    make_contender,
    mean_ci,
    render_table,
    run_agent,
    simulate,
)
from simulators.worlds import BernoulliWorld, Round, World, make_world

PNG = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parent.parent


class FixedAgent(Agent):
    """Always shows the same positions; records what it learned."""

    def __init__(self, order: Sequence[int]) -> None:
        self.order = np.asarray(order, dtype=np.int64)
        self.learned: list[tuple[int, list[float]]] = []

    def add_arms(self, world: World, indices: Sequence[int]) -> None:
        pass

    def choose(self, rnd: Round, k: int) -> np.ndarray:
        return self.order[:k]

    def learn(self, rnd: Round, order: np.ndarray, rewards: np.ndarray) -> None:
        self.learned.append((rnd.t, rewards.tolist()))


# ------------------------------------------------------------------ runner
def test_regret_and_rewards_of_a_fixed_agent_by_hand() -> None:
    world = BernoulliWorld(np.random.default_rng(0), probs=[0.2, 0.8, 0.5])
    agent = FixedAgent([0])
    trace = run_agent(agent, world, 50, 1)
    assert np.allclose(trace.regrets, 0.6)  # 0.8 - 0.2 every round
    assert trace.regrets.sum() == pytest.approx(30.0)
    expected = [float(r.uniforms[0] < 0.2) for r in world.rounds(50)]
    assert trace.rewards.tolist() == expected
    assert [lr for _, lr in agent.learned] == [[e] for e in expected]
    best = run_agent(FixedAgent([1]), world, 50, 1)
    assert best.regrets.sum() == 0.0
    # two slots, all examined on the Bernoulli world: best list is arms 1, 2
    two = run_agent(FixedAgent([0, 2]), world, 10, 2)
    assert np.allclose(two.regrets, 0.6)


def test_runner_checks_k_against_the_world() -> None:
    world = BernoulliWorld(np.random.default_rng(0), probs=[0.2, 0.8])
    with pytest.raises(InvalidArgument, match="k=3 is larger than the 2 arms"):
        run_agent(FixedAgent([0, 1]), world, 10, 3)
    with pytest.raises(InvalidArgument, match="k=4 is larger than the 3 arms"):
        simulate("destinations", ["uniform"], rounds=5, seeds=[0], k=4,
                 world_params={"n_arms": 3})  # fmt: skip


def test_mean_ci_by_hand() -> None:
    m, lo, hi = mean_ci([[1.0], [3.0]])
    # sd = sqrt(2), se = 1, t(0.975, 1) = 12.706
    assert m[0] == 2.0 and lo[0] == pytest.approx(2.0 - 12.706) and hi[0] == pytest.approx(14.706)
    m, lo, hi = mean_ci([[5.0, 1.0]])
    assert m.tolist() == lo.tolist() == hi.tolist() == [5.0, 1.0]


def test_beta_ts_beats_uniform_on_bernoulli() -> None:
    r = simulate("bernoulli", ["beta_ts", "uniform"], rounds=2000, seeds=[0, 1, 2])
    beta, uniform = (np.array([tr.regrets.sum() for tr in c.traces]) for c in r.contenders)
    assert np.all(beta < 0.5 * uniform), (beta, uniform)
    s = r.summary()
    assert s["lai_robbins"] is not None
    assert s["contenders"][0]["regret_vs_lai_robbins"] < s["contenders"][1]["regret_vs_lai_robbins"]


def test_lin_ts_beats_uniform_on_destinations() -> None:
    r = simulate(
        "destinations", ["lin_ts_disjoint", "uniform"], rounds=2000, seeds=[0, 1], k=2,
        world_params={"n_arms": 20, "dim": 32},
    )  # fmt: skip
    lin, uniform = (np.array([tr.regrets.sum() for tr in c.traces]) for c in r.contenders)
    assert np.all(lin < 0.8 * uniform), (lin, uniform)
    assert r.summary()["lai_robbins"] is None


def test_every_contender_kind_runs_on_a_small_world() -> None:
    kinds = ["beta_ts", "lin_ts_disjoint", "lin_ts_shared", "logistic_ts", *BASELINES]
    r = simulate(
        "destinations", kinds, rounds=60, seeds=[3], k=2,
        world_params={"n_arms": 8, "new_arms": 2, "arrival_every": 20, "candidates": 6},
    )  # fmt: skip
    for c in r.contenders:
        (tr,) = c.traces
        assert tr.rewards.shape == tr.regrets.shape == (60,)
        assert np.all(tr.regrets >= 0)


def test_same_seed_same_json_and_paired_streams() -> None:
    args: dict[str, Any] = dict(
        rounds=300, seeds=[4, 5], world_params={"n_arms": 12, "new_arms": 2}
    )

    def run() -> str:
        r = simulate("destinations", ["lin_ts_shared", "epsilon_greedy:epsilon=0.2"], **args)
        return json.dumps(r.summary(points=20))

    first = run()
    assert first == run()
    other = simulate("destinations", ["lin_ts_shared"], rounds=300, seeds=[6],
                     world_params={"n_arms": 12})  # fmt: skip
    assert json.dumps(other.summary(points=20)) != first
    # a contender's result does not depend on who else runs
    alone = simulate("destinations", ["epsilon_greedy:epsilon=0.2"], **args).summary(points=20)
    assert alone["contenders"][0] == json.loads(first)["contenders"][1]


def test_update_every_batches_rewards() -> None:
    world = BernoulliWorld(np.random.default_rng(0), probs=[0.3, 0.6])
    policy = BetaTS()
    agent = PolicyAgent(policy, np.random.default_rng(0), update_every=7)
    run_agent(agent, world, 100, 1)
    assert policy.pulls(0) + policy.pulls(1) == 100  # the last partial batch is flushed
    with pytest.raises(InvalidArgument, match="update_every=0"):
        PolicyAgent(policy, np.random.default_rng(0), update_every=0)


def test_progress_line_after_delay() -> None:
    out = io.StringIO()
    prog = Progress(1000, stream=out, delay=0.0, every=0.0)
    prog.label = "beta_ts, seed 0"
    prog.advance(500)
    assert "50.0%" in out.getvalue() and "beta_ts, seed 0" in out.getvalue()
    quiet = io.StringIO()
    Progress(1000, stream=quiet, delay=60.0).advance(500)
    assert quiet.getvalue() == ""


# -------------------------------------------------------------- contenders
def test_contender_spec_parse() -> None:
    spec = ContenderSpec.parse("epsilon_greedy:epsilon=0.05")
    assert spec.kind == "epsilon_greedy" and spec.params == {"epsilon": 0.05}
    assert spec.label == "epsilon_greedy:epsilon=0.05"
    assert ContenderSpec.parse("vw_squarecb:extra=--power_t 0").params == {"extra": "--power_t 0"}
    with pytest.raises(InvalidArgument, match="'epsilon' must be key=value"):
        ContenderSpec.parse("epsilon_greedy:epsilon")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("thompson", "unknown contender 'thompson'"),
        ("ucb1:alpha=2", "no parameter 'alpha'"),
        ("epsilon_greedy:epsilon=2", "epsilon=2"),
        ("lin_ts_disjoint:noise_scale=-1", "noise_scale=-1"),
        ("lin_ts_disjoint:dim=4", "'dim' is set by the world"),
        ("beta_ts:prior_gamma=1", "prior_gamma"),
        ("beta_ts_fast:decay=0.5", "no parameter 'decay'"),
        ("live", "needs a target"),
    ],
)
def test_bad_contenders_name_the_value(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        make_contender(spec)


def test_fast_path_refuses_other_worlds_and_k() -> None:
    fast = make_contender("beta_ts_fast")
    with pytest.raises(InvalidArgument, match="bernoulli world only, not 'destinations'"):
        fast.run(make_world("destinations", np.random.default_rng(0), n_arms=4), 10, 1, 0)
    with pytest.raises(InvalidArgument, match="k=2"):
        fast.run(make_world("bernoulli", np.random.default_rng(0)), 10, 2, 0)


@pytest.mark.parametrize("kind", sorted(BASELINES))
def test_baselines_keep_the_policy_contract(kind: str) -> None:
    rng = np.random.default_rng(0)
    p = make_baseline(kind, 3)
    for _ in range(4):
        p.add_arm()
    arms = np.arange(4)
    x = np.array([1.0, 0.5, -0.5])
    ranking = p.rank(arms, x, 3, rng)
    assert sorted(set(ranking.order.tolist())) == sorted(ranking.order.tolist())
    props = p.propensities(arms, x, 2000, rng)
    assert props.sum() == pytest.approx(1.0)
    p.update_batch(np.array([1, 1, 2]), np.tile(x, (3, 1)), np.array([1.0, 0.0, 1.0]))
    assert p.pulls(1) == 2 and p.reward_sum(1) == 1.0
    assert p.clone().params() == p.params()
    assert p.clone().n_arms == 0
    with pytest.raises(InvalidArgument, match="k=5"):
        p.rank(arms, x, 5, rng)
    with pytest.raises(InvalidArgument, match="reward"):
        p.update(0, x, 1.5)


def test_greedy_baselines_exploit_what_they_learned() -> None:
    rng = np.random.default_rng(0)
    x = np.ones(1)
    for kind in ("epsilon_greedy", "ucb1"):
        p = make_baseline(kind, 1, **({"epsilon": 0.0} if kind == "epsilon_greedy" else {}))
        for _ in range(3):
            p.add_arm()
        p.update_batch(np.repeat([0, 1, 2], 50), None, np.repeat([0.2, 0.9, 0.4], 50))
        assert p.rank(np.arange(3), x, 1, rng).order[0] == 1
        assert p.propensities(np.arange(3), x, 100, rng)[1] == 1.0
    lin = make_baseline("lin_ucb", 2, alpha=0.1)
    for _ in range(2):
        lin.add_arm()
    xs = np.tile([1.0, 0.0], (40, 1))
    lin.update_batch(np.repeat([0, 1], 20), xs, np.repeat([0.1, 0.8], 20))
    assert lin.rank(np.arange(2), np.array([1.0, 0.0]), 1, rng).order[0] == 1


# --------------------------------------------------------------- fast path
def test_kernel_beta_sampler_moments() -> None:
    for a, b in ((1.0, 1.0), (2.0, 5.0), (0.5, 0.7), (40.0, 160.0)):
        x = beta_samples(a, b, 200_000, 11)
        mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
        assert abs(x.mean() - mean) < 5 * np.sqrt(var / x.shape[0])
        assert var * 0.97 < x.var() < var * 1.03
        assert np.all((x > 0) & (x < 1))


def test_fast_path_is_seeded_and_replays_the_world_reward_stream() -> None:
    probs = np.array([0.1, 0.35, 0.6])
    world = BernoulliWorld(np.random.default_rng(9), probs=probs.tolist())
    key = world.reward_key()
    r1, g1, p1 = beta_ts_bernoulli(probs, 500, 7, key, 1.0, 1.0)
    r2, g2, p2 = beta_ts_bernoulli(probs, 500, 7, key, 1.0, 1.0)
    assert np.array_equal(r1, r2) and np.array_equal(g1, g2) and np.array_equal(p1, p2)
    assert p1.sum() == 500
    arms = [int(np.flatnonzero(np.isclose(probs, 0.6 - g))[0]) for g in g1]
    expected = [
        float(rnd.uniforms[a] < probs[a]) for rnd, a in zip(world.rounds(500), arms, strict=True)
    ]
    assert r1.tolist() == expected
    r3, _, _ = beta_ts_bernoulli(probs, 500, 8, key, 1.0, 1.0)
    assert not np.array_equal(r1, r3)


def test_fast_path_matches_generic_beta_ts_statistically() -> None:
    probs = [0.1, 0.2, 0.3, 0.45, 0.5]
    rounds = 1500
    gen = simulate("bernoulli", ["beta_ts"], rounds=rounds, seeds=list(range(24)),
                   world_params={"probs": probs})  # fmt: skip
    fast = simulate("bernoulli", ["beta_ts_fast"], rounds=rounds, seeds=list(range(300)),
                    world_params={"probs": probs})  # fmt: skip
    g = np.array([tr.regrets.sum() for tr in gen.contenders[0].traces])
    f = np.array([tr.regrets.sum() for tr in fast.contenders[0].traces])
    se = np.sqrt(g.var(ddof=1) / g.shape[0] + f.var(ddof=1) / f.shape[0])
    assert abs(g.mean() - f.mean()) < 4 * se, (g.mean(), f.mean(), se)
    # and the regret curve has the same shape: halfway regret matches too
    gh = np.array([tr.regrets[: rounds // 2].sum() for tr in gen.contenders[0].traces])
    fh = np.array([tr.regrets[: rounds // 2].sum() for tr in fast.contenders[0].traces])
    se_h = np.sqrt(gh.var(ddof=1) / gh.shape[0] + fh.var(ddof=1) / fh.shape[0])
    assert abs(gh.mean() - fh.mean()) < 4 * se_h


def test_bench_quick_keys() -> None:
    out = bench.run(quick=True)
    assert set(out) == {"sim_beta_ts_rounds_per_s", "sim_beta_ts_generic_rounds_per_s"}
    assert out["sim_beta_ts_rounds_per_s"] > 10 * out["sim_beta_ts_generic_rounds_per_s"] > 0


# ------------------------------------------------------------------- peers
@pytest.mark.parametrize(
    ("kind", "module"),
    [("mabwiser_ts", "mabwiser"), ("mabwiser_lints", "mabwiser"), ("vw_squarecb", "vowpalwabbit")],
)
def test_peers_run_on_the_same_stream(kind: str, module: str) -> None:
    pytest.importorskip(module)
    r = simulate("destinations", [kind, "uniform"], rounds=150, seeds=[0], k=2,
                 world_params={"n_arms": 6})  # fmt: skip
    tr = r.contenders[0].traces[0]
    assert tr.rewards.shape == (150,) and np.all(tr.regrets >= 0)


# --------------------------------------------------------------------- CLI
def test_cli_writes_table_json_and_pngs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "r.json"
    plots = tmp_path / "plots"
    argv = ["simulate", "--world", "bernoulli", "--rounds", "400", "--seeds", "2",
            "--policies", "beta_ts,beta_ts_fast,ucb1", "--out", str(out),
            "--plot-dir", str(plots), "-q"]  # fmt: skip
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "beta_ts_fast" in table and "regret/LR" in table and "Lai-Robbins" in table
    data = json.loads(out.read_text())
    assert [c["label"] for c in data["contenders"]] == ["beta_ts", "beta_ts_fast", "ucb1"]
    assert data["rounds"] == 400 and data["seeds"] == [0, 1]
    for name in ("regret.png", "ctr.png"):
        assert (plots / name).read_bytes()[:8] == PNG
    first = out.read_text()
    assert main(argv) == 0
    assert out.read_text() == first  # same seed, same JSON


def test_cli_reports_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--policies", "thompson", "--rounds", "10", "-q"]) == 2
    assert "unknown contender 'thompson'" in capsys.readouterr().err
    assert main(["simulate", "--world", "bernoulli", "-w", "n_arms=3", "--k", "5", "-q"]) == 2
    assert "k=5" in capsys.readouterr().err
    assert main(["simulate", "--rounds", "0", "-q"]) == 2
    assert "rounds=0" in capsys.readouterr().err
    assert main(["simulate", "--seeds", "0", "-q"]) == 2
    assert "--seeds=0" in capsys.readouterr().err
    assert main(["simulate", "-w", "nope=1", "-q"]) == 2
    assert "no parameter 'nope'" in capsys.readouterr().err


def test_cli_list_and_module_entry_point() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "simulators", "simulate", "--world", "supervised", "--quick",
         "--rounds", "200", "--seeds", "1", "--policies", "lin_ucb,uniform", "-q"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "lin_ucb" in proc.stdout and "uniform" in proc.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "simulators", "list"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert listing.returncode == 0 and "destinations" in listing.stdout


# -------------------------------------------------------------------- live
@pytest.fixture
def live_server() -> Iterator[tuple[int, object]]:
    server, port, engine = create_server(ServerSettings(port=0, state_dir=None))
    server.start()
    try:
        yield port, engine
    finally:
        stop_server(server, engine, 1.0)


def test_live_target_goes_through_recommend_and_feedback(
    live_server: tuple[int, object], capsys: pytest.CaptureFixture[str]
) -> None:
    port, engine = live_server
    rounds, k = 80, 2
    assert main([
        "simulate", "--world", "destinations", "-w", "n_arms=10", "-w", "new_arms=2",
        "-w", "arrival_every=30", "--rounds", str(rounds), "--seeds", "1", "--k", str(k),
        "--policies", "uniform", "--target", f"127.0.0.1:{port}", "--experiment", "sim-live",
        "-q",
    ]) == 0  # fmt: skip
    assert "live:policy=lin_ts_disjoint" in capsys.readouterr().out
    info = engine.get_experiment("sim-live")  # type: ignore[attr-defined]
    assert info.counters["decisions"] == rounds
    assert info.counters["rewards_applied"] == rounds * k
    arms = engine.list_arms("sim-live")  # type: ignore[attr-defined]
    assert len(arms) == 12  # the two arrivals were added with AddArms
    assert sum(a.pulls for a in arms) == rounds * k
    # a second run reuses the experiment: posterior pulls keep increasing
    r = simulate("destinations", ["live:policy=lin_ts_disjoint:experiment=sim-live"], rounds=20,
                 seeds=[0], k=k, world_params={"n_arms": 10, "new_arms": 2, "arrival_every": 30},
                 target=f"127.0.0.1:{port}")  # fmt: skip
    assert render_table(r)
    arms = engine.list_arms("sim-live")  # type: ignore[attr-defined]
    assert sum(a.pulls for a in arms) == (rounds + 20) * k


def test_live_errors_name_the_problem(live_server: tuple[int, object]) -> None:
    port, _ = live_server
    with pytest.raises(InvalidArgument, match="host:port"):
        make_contender("live", target="localhost")
    with pytest.raises(InvalidArgument, match="live policy 'greedy'"):
        make_contender("live:policy=greedy", target=f"127.0.0.1:{port}")
    simulate("bernoulli", ["live:experiment=fits"], rounds=5, seeds=[0],
             target=f"127.0.0.1:{port}")  # fmt: skip
    with pytest.raises(InvalidArgument, match="experiment 'fits' has dim=1"):
        simulate("destinations", ["live:experiment=fits"], rounds=5, seeds=[0],
                 world_params={"n_arms": 4}, target=f"127.0.0.1:{port}")  # fmt: skip
