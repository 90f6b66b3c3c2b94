"""``python -m simulators tune``: ranking policy settings on logged decisions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bandit_engine import Context, Engine, ExperimentConfig
from bandit_engine.client import BanditClient
from bandit_engine.server import ServerSettings, create_server, stop_server
from bandit_engine.store import MySQLStore, SQLiteStore, Store
from bandit_engine.stream import KafkaSettings
from simulators import logs, offline_cli
from simulators.logs import BanditLog, SyntheticWorld
from simulators.replay import policy_for_log

WORLD = SyntheticWorld.make(n_contexts=20, n_arms=5, dim=4, seed=3, spread=1.5)


@pytest.fixture(scope="module")
def uniform_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[BanditLog, Path]:
    log, _ = WORLD.sample(3000, seed=1)
    path = tmp_path_factory.mktemp("tune") / "world.jsonl"
    logs.write_jsonl(log, path)
    return log, path


def _tune(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = offline_cli.main(["tune", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _truth(log: BanditLog, params: dict[str, Any]) -> float:
    """Exact value of the setting warm-started on the first half of ``log``."""
    train, _ = log.split(0.5)
    policy = policy_for_log(log, "lin_ts_disjoint", params)
    policy.update_batch(*train.training_events())
    rng = np.random.default_rng(7)
    arms = np.arange(WORLD.n_arms, dtype=np.int64)
    pi = np.stack([policy.propensities(arms, x, 20000, rng) for x in WORLD.contexts])
    return WORLD.value(pi)


def test_a_clearly_better_setting_ranks_first_and_is_recommended(
    uniform_log: tuple[BanditLog, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    log, path = uniform_log
    # at the default exploration 0.5, the draws' scales are 0.05 and 5
    args = ["--log", str(path), "--policy", "lin_ts_disjoint:noise_scale=10"]
    args += ["--grid", "noise_scale=0.1,10", "--mode", "fixed", "--n-boot", "400", "--quiet"]
    code, out, _ = _tune(capsys, *args, "--json")
    assert code == 0
    doc = json.loads(out)
    good, bad = (_truth(log, {"noise_scale": s}) for s in (0.1, 10.0))
    assert good > bad + 0.1  # the world: noise 5 is close to uniform
    ranked = [(r["grid"]["noise_scale"], r["current"]) for r in doc["results"]]
    assert ranked == [(0.1, False), (10.0, True)]
    for r, truth in zip(doc["results"], (good, bad), strict=True):
        for name in ("snips", "dr"):
            e = r["estimates"][name]
            assert e["ci_low"] <= truth <= e["ci_high"], (r["label"], name, e, truth)
        assert "replay" in r["estimates"]  # uniformly logged: replay as well
    rec = doc["recommendation"]
    assert rec["label"] == "noise_scale=0.1" and rec["verdict"] == "better"
    assert rec["estimate"]["ci_low"] > rec["current"]["estimate"]["ci_high"]
    assert rec["difference"]["ci_low"] > 0
    assert rec["sentence"].startswith("noise_scale=0.1: ") and rec["sentence"].endswith(": better")
    # the same run as a table: ranked, with the baseline and the recommendation
    code, out, _ = _tune(capsys, *args)
    lines = out.splitlines()
    assert code == 0 and "ranked by snips" in lines[0]
    assert lines[3].startswith("-") and "logged policy (baseline)" in lines[3]
    assert lines[4].startswith("1") and "noise_scale=0.1 " in lines[4]
    assert lines[5].startswith("2") and "noise_scale=10 (current)" in lines[5]
    assert f"recommendation: {rec['sentence']}" in out


def test_the_current_setting_is_kept_when_it_wins_or_ties(
    uniform_log: tuple[BanditLog, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = uniform_log
    common = ["--log", str(path), "--mode", "fixed", "--n-boot", "200", "--quiet", "--json"]
    code, out, _ = _tune(
        capsys, *common, "--policy", "lin_ts_disjoint:noise_scale=0.05", "--grid", "noise_scale=5"
    )
    rec = json.loads(out)["recommendation"]
    assert code == 0 and rec["verdict"] == "current" and rec["sentence"].endswith("keep it")
    # two settings that rank the same arms first on almost every row
    code, out, _ = _tune(
        capsys, *common, "--train-frac", "0.9", "--estimator", "ips",
        "--policy", "lin_ts_disjoint:noise_scale=0.05", "--grid", "noise_scale=0.04",
    )  # fmt: skip
    rec = json.loads(out)["recommendation"]
    assert code == 0 and rec["verdict"] in ("current", "not distinguishable")
    assert rec["sentence"].endswith("keep it")


def test_the_default_grid_and_progress_on_stderr(
    uniform_log: tuple[BanditLog, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, path = uniform_log
    code, out, err = _tune(capsys, "--log", str(path), "--n-boot", "50", "--json", "--seed", "3")
    doc = json.loads(out)
    assert code == 0 and doc["options"]["mode"] == "progressive"
    assert doc["grid"] == {
        "lin_ts_disjoint": {
            "exploration": [0.1, 0.25, 0.5, 1.0],
            "prior_precision": [0.1, 1.0, 10.0],
        }
    }
    assert len(doc["results"]) == 12 and sum(r["current"] for r in doc["results"]) == 1
    values = [r["estimates"]["snips"]["value"] for r in doc["results"]]
    assert values == sorted(values, reverse=True)
    assert "[12/12]" in err and "ranked by snips" in err  # progress goes to stderr
    again = _tune(capsys, "--log", str(path), "--n-boot", "50", "--json", "--seed", "3")[1]
    assert json.loads(again)["results"] == [
        {**r, "seconds": json.loads(again)["results"][i]["seconds"]}
        for i, r in enumerate(doc["results"])
    ]  # reproducible from the seed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--grid", "noise_scale=0.1,-1"], "--grid noise_scale=-1: noise_scale=-1 must be"),
        (["--grid", "noise_scale=fast"], "--grid noise_scale=fast: not a valid setting"),
        (["--grid", "noise=0.1"], "--grid noise: no parameter 'noise'"),
        (["--grid", "dim=8"], "--grid dim: dim is fixed by the log's contexts (4)"),
        (["--grid", "noise_scale"], "--grid 'noise_scale' must be NAME=V1,V2"),
        (["--grid", "noise_scale="], "no values for noise_scale"),
        (["--grid", "noise_scale=0.1,,1"], "an empty value in the list for noise_scale"),
        (["--grid", "decay=0.9", "--grid", "decay=1"], "--grid decay is given twice"),
        (["--grid", "refresh_every=0"], "--grid refresh_every=0: refresh_every=0"),
        (["--policy", "beta_ts:prior=2"], "beta_ts has no parameter 'prior'"),
        (["--policy", "uniform"], "--policy uniform has no settings to tune"),
        (["--policy", "greedy"], "unknown policy kind 'greedy'"),
        (["--grid", "noise_scale=" + ",".join(map(str, range(1, 30)))], "more than 20 settings"),
        (["--train-frac", "1.5"], "--train-frac 1.5 must be in [0, 1)"),
        (["--draws", "0"], "--draws 0 must be >= 1"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(
    uniform_log: tuple[BanditLog, Path],
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    _, path = uniform_log
    code, out, err = _tune(capsys, "--log", str(path), "--max-settings", "20", "--quiet", *argv)
    assert code == 2 and out == ""
    assert message in err, err


def test_replay_ranking_needs_a_uniformly_logged_experiment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skewed, _ = WORLD.sample(1000, np.tile([0.6, 0.1, 0.1, 0.1, 0.1], (20, 1)), seed=2)
    path = tmp_path / "skewed.jsonl"
    logs.write_jsonl(skewed, path)
    code, _, err = _tune(capsys, "--log", str(path), "--estimator", "replay", "--quiet")
    assert code == 2 and "--estimator replay needs a uniformly logged experiment" in err
    code, out, _ = _tune(
        capsys, "--log", str(path), "--grid", "noise_scale=0.1", "--n-boot", "50", "--json"
    )
    doc = json.loads(out)
    assert code == 0 and not doc["options"]["uniform_logging"]
    assert all(set(r["estimates"]) == {"ips", "snips", "dm", "dr"} for r in doc["results"])


# ------------------------------------------------------- an engine's own log
def _serve(store: Store) -> ExperimentConfig:
    """An engine serving a known world (WORLD's first 4 arms), every reward sent."""
    cfg = ExperimentConfig(
        "trips", policy="lin_ts_disjoint", dim=4, dense_dim=3, noise_scale=0.5,
        reward_window_s=60.0, propensity_draws=100,
    )  # fmt: skip
    eng = Engine(store, seed=11)
    eng.create_experiment(cfg)
    arms = [f"arm{j}" for j in range(4)]
    eng.add_arms("trips", [(a, None) for a in arms])
    space = cfg.feature_space()
    rng = np.random.default_rng(0)
    for _ in range(400):
        m = int(rng.choice(len(WORLD.weights), p=WORLD.weights))
        ctx = Context(dense=[float(v) for v in WORLD.contexts[m, 1:]])
        assert space.vector(ctx.dense)[0] == 1.0  # the intercept, then the dense block
        dec = eng.recommend("trips", ctx, (), 1)
        arm = arms.index(dec.arm_ids[0])
        eng.feedback(dec.event_id, dec.arm_ids[0], float(rng.random() < WORLD.mu[m, arm]))
    eng.close()
    return cfg


@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_tune_reads_an_engine_store(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if backend == "sqlite":
        where = ["--state-dir", str(tmp_path / "state")]
        store: Store = SQLiteStore(tmp_path / "state" / "state.db")
    else:
        dsn = request.getfixturevalue("mysql_dsn")
        where, store = ["--mysql-dsn", dsn], MySQLStore(dsn)
    cfg = _serve(store)
    code, out, err = _tune(
        capsys, *where, "--experiment", "trips", "--grid", "noise_scale=0.05,0.5,2",
        "--n-boot", "200", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"]["rows"] == 400 and doc["source"]["arms"] == 4
    assert not doc["options"]["uniform_logging"]  # Thompson sampling logged it
    (current,) = [r for r in doc["results"] if r["current"]]
    served = cfg.make_policy().params()
    assert current["params"] == {k: v for k, v in served.items() if k != "dim"}
    assert current["label"] == "noise_scale=0.5" and len(doc["results"]) == 3
    assert doc["baseline"]["n"] == 200 and doc["options"]["n_train"] == 200
    for r in doc["results"]:
        e = r["estimates"]["snips"]
        assert e["ci_low"] <= e["value"] <= e["ci_high"] and 0 <= e["value"] <= 1
    assert doc["recommendation"]["current"]["label"] == "noise_scale=0.5"
    assert doc["recommendation"]["sentence"]


def test_tune_reads_the_kafka_topics(
    kafka_settings: KafkaSettings, mysql_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = ServerSettings(
        port=0, state_dir=None, seed=3, mysql_dsn=mysql_dsn, kafka=kafka_settings, learner=False
    )
    server, port, engine = create_server(settings)
    server.start()
    rng = np.random.default_rng(1)
    try:
        with BanditClient(f"127.0.0.1:{port}") as client:
            client.create_experiment(
                ExperimentConfig("k", "lin_ts_disjoint", dim=4, dense_dim=3, propensity_draws=100)
            )
            client.add_arms("k", [f"arm{j}" for j in range(4)])
            for _ in range(120):
                m = int(rng.choice(len(WORLD.weights), p=WORLD.weights))
                d = client.recommend("k", Context(dense=[float(v) for v in WORLD.contexts[m, 1:]]))
                arm = int(d.arm_ids[0][3:])
                client.feedback(d.event_id, d.arm_ids[0], float(rng.random() < WORLD.mu[m, arm]))
    finally:
        stop_server(server, engine, 1.0)  # closing the engine flushes the decisions
    code, out, err = _tune(
        capsys, "--mysql-dsn", mysql_dsn, "--kafka-bootstrap", kafka_settings.bootstrap,
        "--decisions-topic", kafka_settings.decisions_topic,
        "--feedback-topic", kafka_settings.feedback_topic,
        "--grid", "noise_scale=0.1,1", "--n-boot", "100", "--json",
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["source"]["name"] == "k" and doc["source"]["rows_rewarded"] == 120
    assert {r["label"] for r in doc["results"]} == {
        "noise_scale=0.1",
        "noise_scale=None",  # the served setting: learned
        "noise_scale=1",
    }
