"""Offline toolkit: OBD loader, engine log export/import, replay, CLI.

Tests that need the Open Bandit Dataset sample skip when data/obd is absent
(``make data`` fetches it), except under CI=true, where they fail.
"""

from __future__ import annotations

import io
import json
import math
import os
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bandit_engine import Context, Decision, Engine, ExperimentConfig
from bandit_engine.policies import BetaTS
from bandit_engine.store import SQLiteStore, Store
from simulators import estimators as est
from simulators import logs, obd, offline_cli
from simulators.logs import BanditLog, SyntheticWorld
from simulators.replay import policy_for_log, replay, replay_slow


# ------------------------------------------------------------------- OBD
@pytest.fixture(scope="module")
def obd_dir() -> Path:
    if obd.available():
        return obd.default_dir()
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(
            f"CI=true but the OBD sample is missing from {obd.default_dir()}; "
            "`make data` must run before the tests"
        )
    pytest.skip(f"OBD sample not in {obd.default_dir()}: run `make data` to fetch it")


@pytest.mark.parametrize("behavior", obd.BEHAVIORS)
@pytest.mark.parametrize("campaign", obd.CAMPAIGNS)
def test_obd_loads_every_log(obd_dir: Path, behavior: str, campaign: str) -> None:
    r = obd.load(behavior, campaign, obd_dir)
    k = obd.N_ITEMS[campaign]
    assert r.n == 10_000 and r.n_items == k
    assert set(np.unique(r.position)) == {0, 1, 2}
    assert set(np.unique(r.click)) <= {0.0, 1.0} and 20 < r.click.sum() < 100
    assert r.item.min() >= 0 and r.item.max() < k
    assert r.affinity.shape == (10_000, k) and r.user_features.shape == (10_000, 4)
    assert r.item_numeric.shape == (k, 1) and r.item_categorical.shape == (k, 3)
    assert ((r.pscore > 0) & (r.pscore <= 1)).all()
    assert np.all(np.diff(r.timestamp) >= 0)
    if behavior == "random":
        np.testing.assert_allclose(r.pscore, 1.0 / k, rtol=1e-12)
    else:
        assert r.pscore.std() > 0.01


def test_obd_uniform_policy_ips_equals_logged_mean_click(obd_dir: Path) -> None:
    for campaign in obd.CAMPAIGNS:
        log = obd.load("random", campaign, obd_dir).to_log(16)
        terms = est.OPETerms.build(log, est.uniform_target(log), reward_model=False)
        assert est.ips(terms) == pytest.approx(float(log.logged_reward.mean()), rel=1e-12)


def test_obd_contexts_and_arm_features(obd_dir: Path) -> None:
    r = obd.load("bts", "men", obd_dir)
    log = r.to_log(32)
    assert log.dim == 32 and log.n_arms == 34 and np.isfinite(log.x).all()
    assert (log.x[:, 0] == 1.0).all()  # intercept
    assert log.position is not None and log.position.max() == 2
    assert len({row.tobytes() for row in log.x[:500]}) > 20  # contexts differ
    # the same features a Recommend caller would send give the same vector
    space = r.feature_space(32)
    i = int(np.flatnonzero(r.affinity.any(axis=1))[0])
    cats = [f"user_feature_{c}={r.user_features[i, c]}" for c in range(4)]
    cats.append(f"position={r.position[i] + 1}")
    nums = {f"user-item_affinity_{j}": float(v) for j, v in enumerate(r.affinity[i]) if v}
    np.testing.assert_array_equal(log.x[i], space.vector(numeric=nums, categorical=cats))
    dense = r.contexts(34 + 1 + 8, affinity="dense")
    np.testing.assert_array_equal(dense[:, 1:35], r.affinity)
    feats = log.arm_features
    assert feats is not None and len(feats) == 34
    assert feats[0]["numeric"] == {"item_feature_0": float(r.item_numeric[0, 0])}
    shared = policy_for_log(log, "lin_ts_shared", {"joint_dim": 64})
    tp = est.policy_target(shared, log.select(np.arange(20)), draws=50)
    np.testing.assert_allclose(np.add.reduceat(tp.p, tp.ptr[:-1]), 1.0)


def test_obd_log_survives_the_export_format(obd_dir: Path, tmp_path: Path) -> None:
    log = obd.load("random", "women", obd_dir).to_log(16).select(np.arange(300))
    logs.write_jsonl(log, tmp_path / "w.jsonl")
    back = logs.read_jsonl(tmp_path / "w.jsonl")
    assert back.event_id == log.event_id and back.arm_ids == log.arm_ids
    for name in ("x", "shown", "propensity", "reward", "timestamp", "position"):
        np.testing.assert_array_equal(getattr(back, name), getattr(log, name), err_msg=name)
    assert back.arm_features == log.arm_features


def test_malformed_logs_are_refused_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    for text, reason in [
        ("{not json\n", "bad.jsonl:1: not JSON"),
        ('{"type": "decision", "arms": ["a"]}\n', "lacks the key 'x'"),
        (
            '{"type": "decision", "arms": ["a"], "x": [1.0]}\n{"arms": ["b"], "x": [1, 2]}\n',
            "line 2: x has length 2; expected 1",
        ),
        ('{"type": "header", "format": "other"}\n', "unsupported log format 'other'"),
    ]:
        bad.write_text(text)
        with pytest.raises(ValueError, match=reason):
            logs.read_jsonl(bad)


# ------------------------------------------------------------------ fetch
def _fake_sample(prefix: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {f"{prefix}obp/__init__.py": b"", f"{prefix}setup.py": b""}
    for b in obd.BEHAVIORS:
        for c in obd.CAMPAIGNS:
            files[f"{prefix}obp/dataset/obd/{b}/{c}/{c}.csv"] = f"{b},{c}\n".encode()
            files[f"{prefix}obp/dataset/obd/{b}/{c}/item_context.csv"] = b"items\n"
    files[f"{prefix}obp/dataset/obd/../../evil.csv"] = b"no"
    return files


def test_fetch_unpacks_only_the_sample_from_a_wheel_or_an_sdist(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("pip must not run when the archive is already there")

    monkeypatch.setattr("subprocess.run", no_network)
    wheel_dir = tmp_path / "w"
    wheel_dir.mkdir()
    with zipfile.ZipFile(wheel_dir / "obp-0.5.7-py3-none-any.whl", "w") as z:
        for name, data in _fake_sample("").items():
            z.writestr(name, data)
    out = obd.fetch(wheel_dir)
    assert out == wheel_dir / "obd" and obd.available(out)
    assert (out / "bts" / "men" / "men.csv").read_text() == "bts,men\n"
    assert not (wheel_dir / "evil.csv").exists() and not (out / "__init__.py").exists()

    sdist_dir = tmp_path / "s"
    sdist_dir.mkdir()
    with tarfile.open(sdist_dir / "obp-0.5.7.tar.gz", "w:gz") as t:
        for name, data in _fake_sample("obp-0.5.7/").items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    assert obd.available(obd.fetch(sdist_dir))
    assert not (tmp_path / "evil.csv").exists()


# --------------------------------------------------- engine log round trip
class Clock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t


def _serve(
    store: Store,
) -> tuple[list[tuple[Decision, tuple[str, ...], np.ndarray, dict[str, float]]], ExperimentConfig]:
    """Run an engine: decisions with and without candidate lists, slates of 1-2,
    feedback on some arms, windows closed by a sweep, one decision left open."""
    clock = Clock()
    cfg = ExperimentConfig(
        "trips",
        policy="lin_ts_disjoint",
        dim=8,
        dense_dim=2,
        reward_min=0.0,
        reward_max=5.0,
        reward_window_s=60.0,
        propensity_draws=200,
    )
    eng = Engine(store, seed=5, clock=clock)
    eng.create_experiment(cfg)
    eng.add_arms(
        "trips",
        [
            ("paris", {"categorical": ["country=FR"]}),
            ("rome", None),
            ("oslo", {"numeric": {"price": 3.0}}),
            ("lima", None),
        ],
    )
    space = cfg.feature_space()
    served = []
    rng = np.random.default_rng(0)
    for i in range(60):
        ctx = Context(
            dense=[float(i % 3), float(rng.random())],
            categorical=[f"device={'mobile' if i % 2 else 'desktop'}"],
        )
        cands: tuple[str, ...] = ("paris", "rome", "oslo") if i % 4 == 0 else ()
        dec = eng.recommend("trips", ctx, cands, 2 if i % 3 == 0 else 1)
        given: dict[str, float] = {}
        if i % 2 == 0:
            reward = float(rng.choice([0.0, 2.5, 5.0]))
            assert eng.feedback(dec.event_id, dec.arm_ids[0], reward).outcome == "applied"
            given[dec.arm_ids[0]] = reward
        served.append((dec, cands, space.vector(ctx.dense, ctx.numeric, ctx.categorical), given))
        clock.t += 1.0
    eng.sweep(now=clock.t + 1e6)  # close every window: defaults for the rest
    ctx = Context(dense=[1.0, 0.5])
    dec = eng.recommend("trips", ctx, (), 2)  # still open at export time
    served.append((dec, (), space.vector(ctx.dense), {}))
    eng.close()
    return served, cfg


def _new_store(where: str) -> Store:
    if where.startswith("mysql://"):
        from bandit_engine.store import MySQLStore

        return MySQLStore(where)
    return SQLiteStore(Path(where) / "state.db")


def _check_served(log: BanditLog, served: list, cfg: ExperimentConfig) -> None:  # type: ignore[type-arg]
    assert log.event_id == tuple(d.event_id for d, *_ in served)
    assert log.meta["config"] == cfg.to_dict()
    for i, (dec, cands, x, given) in enumerate(served):
        k = len(dec.arm_ids)
        assert tuple(log.arm_ids[a] for a in log.shown[i] if a >= 0) == dec.arm_ids
        np.testing.assert_array_equal(log.propensity[i, :k], dec.propensities)
        assert log.scores is not None
        np.testing.assert_array_equal(log.scores[i, :k], dec.scores)
        np.testing.assert_array_equal(log.x[i], x)
        assert log.model_version is not None and log.model_version[i] == dec.model_version
        got_cands = tuple(log.arm_ids[a] for a in log.candidates(i))
        assert got_cands == (cands or log.arm_ids)
        assert log.reward_raw is not None and log.reward_source is not None
        for j, arm in enumerate(dec.arm_ids):
            if i == len(served) - 1:  # the open decision has no reward yet
                assert math.isnan(log.reward[i, j]) and log.reward_source[i, j] == 0
            elif arm in given:
                assert log.reward_raw[i, j] == given[arm]
                assert log.reward[i, j] == given[arm] / 5.0
                assert logs.SOURCES[log.reward_source[i, j]] == "feedback"
            else:
                assert log.reward_raw[i, j] == 0.0 and log.reward[i, j] == 0.0
                assert logs.SOURCES[log.reward_source[i, j]] == "default"


def _same(a: BanditLog, b: BanditLog) -> None:
    assert a.arm_ids == b.arm_ids and a.event_id == b.event_id
    assert a.arm_features == b.arm_features and a.meta["config"] == b.meta["config"]
    for name in (
        "x",
        "shown",
        "propensity",
        "reward",
        "timestamp",
        "cand_ptr",
        "cand_idx",
        "scores",
        "reward_raw",
        "reward_source",
        "reward_ts",
        "reward_seq",
        "model_version",
        "deadline",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture(params=["sqlite", "mysql"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """CLI source options of an engine store (SQLite state dir, or MySQL)."""
    if request.param == "sqlite":
        return ["--state-dir", str(tmp_path / "state")]
    return ["--mysql-dsn", request.getfixturevalue("mysql_dsn")]


def test_engine_log_round_trip(tmp_path: Path, where: list[str]) -> None:
    served, cfg = _serve(_new_store(where[1]))
    store = logs.open_store(where[1])
    direct = logs.from_store(store, "trips")
    store.close()
    _check_served(direct, served, cfg)
    for name in ("trips.jsonl", "trips.jsonl.gz"):
        logs.write_jsonl(direct, tmp_path / name)
        back = logs.read_jsonl(tmp_path / name)
        _same(direct, back)
        _check_served(back, served, cfg)
    # the same through the command line
    out = tmp_path / "cli.jsonl"
    assert offline_cli.main(["export-log", *where, "--out", str(out)]) == 0
    _same(direct, logs.read_jsonl(out))
    first = json.loads(out.read_text().splitlines()[1])
    assert first["type"] == "decision" and first["candidates"] == ["paris", "rome", "oslo"]
    code = offline_cli.main(["export-log", *where, "--closed-only", "--out", str(out)])
    assert code == 0 and logs.read_jsonl(out).n == len(served) - 1


def test_engine_log_replays_and_evaluates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served, _ = _serve(SQLiteStore(tmp_path / "state" / "state.db"))
    store = SQLiteStore(tmp_path / "state" / "state.db")
    log = logs.from_store(store, "trips").complete()
    store.close()
    policy = policy_for_log(log)  # the served config, rebuilt from the header
    assert policy.kind == "lin_ts_disjoint" and policy.dim == 8 and policy.n_arms == 4
    with pytest.raises(ValueError, match="uniformly logged"):
        replay(policy, log)
    fast = replay(policy, log, seed=1, allow_nonuniform=True)
    slow = replay_slow(policy_for_log(log), log, seed=1, allow_nonuniform=True)
    np.testing.assert_array_equal(fast.matched, slow.matched)
    assert fast.n_events == len(served) - 1
    path = tmp_path / "trips.jsonl"
    logs.write_jsonl(log, path)
    code = offline_cli.main(
        [
            "evaluate",
            "--log",
            str(path),
            "--policy",
            "served:noise_scale=0.1",
            "--policy",
            "uniform",
            "--n-boot",
            "50",
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "served:noise_scale=0.1" in out and "snips" in out


# ------------------------------------------------------------------ replay
def _csr_log(seed: int) -> BanditLog:
    """A uniform stream with per-row candidate sets (some rows: every arm)."""
    base = logs.uniform_stream(3000, 12, 6, seed=seed)
    rng = np.random.default_rng(seed)
    ptr = [0]
    idx: list[int] = []
    for i in range(base.n):
        if i % 5 == 0:
            ptr.append(ptr[-1])  # empty range: every arm
            continue
        c = rng.choice(12, size=int(rng.integers(2, 12)), replace=False)
        if i % 7 == 0:  # sometimes the logged arm is not even a candidate
            c = c[c != base.action[i]]
        idx.extend(int(a) for a in c)
        ptr.append(len(idx))
    return BanditLog(
        base.arm_ids,
        base.x,
        base.shown,
        base.propensity,
        base.reward,
        base.event_id,
        base.timestamp,
        np.asarray(ptr, dtype=np.int64),
        np.asarray(idx, dtype=np.int64),
    )


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("lin_ts_disjoint", {}),
        ("lin_ts_disjoint", {"decay": 0.995, "refresh_every": 50}),
        ("logistic_ts", {}),
    ],
)
@pytest.mark.parametrize("candidates", [False, True])
def test_fast_replay_is_exactly_the_slow_path(
    kind: str, params: dict[str, float], candidates: bool
) -> None:
    log = _csr_log(3) if candidates else logs.uniform_stream(3000, 12, 6, seed=3)
    slow_policy = policy_for_log(log, kind, params)
    fast_policy = policy_for_log(log, kind, params)
    slow = replay(slow_policy, log, seed=8, fast=False, allow_nonuniform=True)
    fast = replay(fast_policy, log, seed=8, fast=True, allow_nonuniform=True, chunk=700)
    assert fast.fast and not slow.fast
    assert slow.n_matched > 100
    np.testing.assert_array_equal(fast.matched, slow.matched)
    np.testing.assert_array_equal(fast.rewards, slow.rewards)
    for key, arr in slow_policy.state_dict().items():
        np.testing.assert_array_equal(fast_policy.state_dict()[key], arr, err_msg=key)


def test_replay_is_reproducible_from_its_seed() -> None:
    log = logs.uniform_stream(5000, 10, 4, seed=1)
    a = replay(policy_for_log(log, "lin_ts_disjoint"), log, seed=4)
    b = replay(policy_for_log(log, "lin_ts_disjoint"), log, seed=4)
    c = replay(policy_for_log(log, "lin_ts_disjoint"), log, seed=5)
    np.testing.assert_array_equal(a.matched, b.matched)
    assert not np.array_equal(a.matched, c.matched)
    assert a.estimate(n_boot=100, seed=1) == b.estimate(n_boot=100, seed=1)


def test_fixed_policy_replay_agrees_with_the_truth() -> None:
    world = SyntheticWorld.make(n_contexts=12, n_arms=5, dim=3, seed=4)
    train, _ = world.sample(500, seed=50)
    policy = policy_for_log(train, "lin_ts_disjoint", {"noise_scale": 0.3})
    policy.update_batch(train.action, train.x, train.logged_reward)
    rng = np.random.default_rng(0)
    pi = np.array([policy.propensities(np.arange(5), x, 200_000, rng) for x in world.contexts])
    truth = world.value(pi)
    covered = 0
    for seed in range(20):
        log, _ = world.sample(4000, seed=seed)
        res = replay(policy, log, seed=seed, learn=False)
        covered += res.estimate(n_boot=300, seed=seed).covers(truth)
    assert covered >= 17, covered


def _online(world: SyntheticWorld, steps: int, seed: int) -> float:
    """Average reward of Beta TS playing the world online for ``steps`` rounds."""
    rng = np.random.default_rng(seed)
    policy = BetaTS()
    for _ in range(world.n_arms):
        policy.add_arm()
    arms = np.arange(world.n_arms)
    total = 0.0
    for _ in range(steps):
        m = rng.choice(world.weights.shape[0], p=world.weights)
        a = int(policy.rank(arms, None, 1, rng).order[0])
        r = float(rng.random() < world.mu[m, a])
        policy.update(a, None, r)
        total += r
    return total / steps


def test_learning_replay_agrees_with_an_online_run() -> None:
    world = SyntheticWorld.make(n_contexts=6, n_arms=4, dim=2, seed=9, spread=1.5)
    replayed, accepted = [], []
    for seed in range(12):
        log, _ = world.sample(2400, seed=seed)
        res = replay(policy_for_log(log, "beta_ts"), log, seed=seed)
        replayed.append(res.value)
        accepted.append(res.n_matched)
    steps = int(np.mean(accepted))  # about 2400 / 4
    online = [_online(world, steps, 1000 + s) for s in range(12)]
    diff = np.mean(replayed) - np.mean(online)
    se = math.sqrt(np.var(replayed, ddof=1) / 12 + np.var(online, ddof=1) / 12)
    assert abs(diff) < 3 * se + 1e-3, (np.mean(replayed), np.mean(online), se)
    assert np.mean(online) > world.value(world.uniform()) + 0.05  # it did learn


# -------------------------------------------------------------------- CLI
def test_cli_registers_its_commands() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    offline_cli.add_parsers(sub)
    for cmd in ("replay", "evaluate", "export-log", "obd-info"):
        args = parser.parse_args([cmd] if cmd == "obd-info" else [cmd, "--log", "x.jsonl"])
        assert callable(args.func)


def test_cli_evaluate_and_replay_write_table_json_and_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = SyntheticWorld.make(n_contexts=10, n_arms=4, dim=3, seed=2)
    log, _ = world.sample(3000, seed=1)
    path = tmp_path / "synthetic.jsonl"
    logs.write_jsonl(log, path)
    outs = []
    for run in range(2):
        code = offline_cli.main(
            [
                "evaluate",
                "--log",
                str(path),
                "--policy",
                "lin_ts_disjoint",
                "--n-boot",
                "200",
                "--out",
                str(tmp_path / f"eval{run}.json"),
                "--plot-dir",
                str(tmp_path / "img"),
                "--quiet",
                "--seed",
                "3",
            ]
        )
        assert code == 0
        outs.append(json.loads((tmp_path / f"eval{run}.json").read_text()))
    table = capsys.readouterr().out
    for word in ("estimator", "ci_low", "logged policy", "ips", "snips", "dm", "dr", "replay"):
        assert word in table
    assert outs[0]["results"] == outs[1]["results"]  # reproducible from the seed
    assert {r["estimator"] for r in outs[0]["results"]} == {"replay", "ips", "snips", "dm", "dr"}
    png = tmp_path / "img" / "evaluate-synthetic.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    code = offline_cli.main(
        [
            "replay",
            "--log",
            str(path),
            "--policy",
            "lin_ts_disjoint",
            "--policy",
            "beta_ts",
            "--n-boot",
            "100",
            "--out",
            str(tmp_path / "replay.json"),
            "--plot-dir",
            str(tmp_path / "img"),
            "--quiet",
        ]
    )
    assert code == 0
    rep = json.loads((tmp_path / "replay.json").read_text())
    assert [r["policy"] for r in rep["results"]] == ["lin_ts_disjoint", "beta_ts"]
    assert all(r["accepted"] > 500 for r in rep["results"])
    assert (tmp_path / "img" / "replay-synthetic.png").exists()

    skewed, _ = world.sample(500, np.tile([0.7, 0.1, 0.1, 0.1], (10, 1)), seed=2)
    logs.write_jsonl(skewed, tmp_path / "skewed.jsonl")
    assert offline_cli.main(["replay", "--log", str(tmp_path / "skewed.jsonl"), "--quiet"]) == 2
    assert "not uniformly logged" in capsys.readouterr().err
