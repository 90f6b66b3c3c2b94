"""Streaming off-policy evaluation: the same point estimates as the in-memory
path on the same log (whatever the chunking), sums that merge, and Poisson
bootstrap intervals that agree with the in-memory ones within Monte Carlo
error."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ope_logs import rich_log

from bandit_engine import InvalidArgument
from simulators import estimators as est
from simulators import logs, offline_cli
from simulators.estimators.rowseed import add_poisson_sums, poisson_weights, row_keys
from simulators.estimators.streaming import LocalRunner, StreamSettings, evaluate_stream
from simulators.estimators.sums import OPESums, RidgeSums
from simulators.logs import BanditLog, uniform_stream
from simulators.replay import policy_for_log

NAMES = ("replay", "ips", "snips", "dm", "dr")


def _in_memory(
    log: BanditLog, spec: str, *, learn: bool = False, n_boot: int = 0, seed: int = 3,
    frac: float = 0.5,
) -> dict[str, est.Estimate]:  # fmt: skip
    """What ``python -m simulators evaluate`` computes on a log in memory."""
    full = log.complete()
    train, test = full.split(frac) if frac > 0 else (None, full)
    if spec == "uniform":
        target = est.uniform_target(test, seed=seed)
    else:
        policy = policy_for_log(log, spec, {})
        if train is not None:
            policy.update_batch(*train.training_events())
        target = est.policy_target(policy, test, draws=50, seed=seed, learn=learn, name=spec)
    names = [n for n in NAMES if n != "replay" or test.is_uniform()]
    terms = est.OPETerms.build(test, target, folds=2, seed=seed)
    out = est.estimate(terms, names, policy=spec, n_boot=n_boot, seed=seed, model_boot=0)
    return {e.estimator: e for e in out}


def _streamed(
    path: Path, spec: str, *, rows: int, learn: bool = False, n_boot: int = 0, seed: int = 3,
    frac: float = 0.5,
) -> dict[str, est.Estimate]:  # fmt: skip
    lf = logs.open_log(path)
    policy: Any = "uniform" if spec == "uniform" else policy_for_log(lf.empty(), spec, {})
    cfg = StreamSettings(
        names=NAMES, learn=learn, draws=50, seed=seed, n_boot=n_boot, train_frac=frac,
        chunk_rows=rows,
    )  # fmt: skip
    res = evaluate_stream(lf, [(spec, policy)], cfg, LocalRunner(lf, rows=rows))
    return {e.estimator: e for e in res.estimates}


def _uniform_log(n: int, seed: int) -> BanditLog:
    log = uniform_stream(n, 5, 4, seed=seed)
    return replace(log, meta={**log.meta, "experiment_id": "u"})


@pytest.mark.parametrize("rows", [1, 97, 5000])
@pytest.mark.parametrize("spec", ["uniform", "lin_ts_disjoint", "beta_ts"])
def test_point_estimates_equal_the_in_memory_path(tmp_path: Path, rows: int, spec: str) -> None:
    log = rich_log(600, arms=7, dim=5, seed=11, step_s=500.0)
    logs.write_parquet(log, str(tmp_path / "pq"))
    logs.write_parquet(log, str(tmp_path / "groups"), row_group_rows=37)
    logs.write_jsonl(log, tmp_path / "l.jsonl")
    want = _in_memory(log, spec)
    for path in (tmp_path / "pq", tmp_path / "groups", tmp_path / "l.jsonl"):
        got = _streamed(path, spec, rows=rows)
        assert set(got) == set(want) == {"ips", "snips", "dm", "dr"}
        for name, e in want.items():
            assert got[name].value == pytest.approx(e.value, rel=1e-9, abs=0), (path, name)
            assert got[name].n == e.n


def test_uniform_logs_get_replay_and_progressive_mode_matches(tmp_path: Path) -> None:
    log = _uniform_log(800, seed=4)
    logs.write_parquet(log, str(tmp_path / "pq"))
    for learn in (False, True):
        want = _in_memory(log, "lin_ts_disjoint", learn=learn, frac=0.25)
        got = _streamed(tmp_path / "pq", "lin_ts_disjoint", rows=61, learn=learn, frac=0.25)
        assert "replay" in want and set(got) == set(want)
        for name, e in want.items():
            assert got[name].value == pytest.approx(e.value, rel=1e-9, abs=0), name
            assert got[name].n == e.n


def test_intervals_agree_with_the_in_memory_bootstrap(tmp_path: Path) -> None:
    """Poisson and multinomial bootstraps estimate the same sampling
    distribution: with 2000 resamples each, the interval endpoints' Monte
    Carlo error is a few percent of the width; 15% of the width is far
    outside it and far inside the gap a wrong bootstrap would make."""
    log = _uniform_log(3000, seed=7)
    logs.write_parquet(log, str(tmp_path / "pq"))
    want = _in_memory(log, "lin_ts_disjoint", n_boot=2000, frac=0.0)
    got = _streamed(tmp_path / "pq", "lin_ts_disjoint", rows=700, n_boot=2000, frac=0.0)
    for name in ("ips", "snips", "dr", "replay"):
        w, g = want[name], got[name]
        width = w.ci_high - w.ci_low
        assert width > 0
        assert abs(g.ci_low - w.ci_low) < 0.15 * width, name
        assert abs(g.ci_high - w.ci_high) < 0.15 * width, name
        assert g.ci_low < g.value < g.ci_high


def test_poisson_weights_have_mean_and_variance_one() -> None:
    keys = row_keys([f"e{i}" for i in range(400)], seed=9)
    c = poisson_weights(keys, 500)
    assert c.shape == (400, 500) and c.min() == 0 and (c == np.round(c)).all()
    # 200,000 draws: the standard errors of mean and variance are about 0.003
    assert abs(c.mean() - 1) < 0.015 and abs(c.var() - 1) < 0.03
    assert np.array_equal(c[:7], poisson_weights(keys[:7], 500))  # keyed by row


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    cuts=st.lists(st.integers(0, 60), max_size=5),
    seed=st.integers(0, 10_000),
)
def test_sums_of_any_split_merge_to_the_whole(n: int, cuts: list[int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    num, den = rng.normal(size=(3, n)), rng.uniform(0, 2, size=(3, n))
    den[0, rng.random(n) < 0.3] = 0.0
    w = rng.uniform(0, 5, n)
    keys = row_keys([f"r{i}" for i in range(n)], seed)
    x, arms = rng.normal(size=(n, 3)), rng.integers(0, 4, n)
    fold, r = rng.integers(0, 2, n), rng.random(n)
    bounds = sorted({0, n, *(c for c in cuts if c <= n)})

    def part(lo: int, hi: int) -> tuple[OPESums, RidgeSums]:
        s = OPESums(("a", "b", "c"), 40)
        s.add_rows(num[:, lo:hi], den[:, lo:hi], w[lo:hi])
        add_poisson_sums(keys[lo:hi], num[:, lo:hi], den[:, lo:hi], s.boot_num, s.boot_den)
        ridge = RidgeSums.zeros(2, 4, 3)
        ridge.add(fold[lo:hi], arms[lo:hi], x[lo:hi], r[lo:hi])
        return s, ridge

    whole, whole_ridge = part(0, n)
    parts = [part(lo, hi) for lo, hi in itertools.pairwise(bounds)]
    merged, merged_ridge = parts[0]
    for s, ridge in parts[1:]:
        merged, merged_ridge = merged.merge(s), merged_ridge.merge(ridge)
    assert merged.n == whole.n == n and merged.w_max == whole.w_max
    np.testing.assert_allclose(merged.values(), whole.values(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.boot_num, whole.boot_num, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged.boot_den, whole.boot_den, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(merged.nonzero, whole.nonzero)
    for (m1, t1), (m2, t2) in zip(merged_ridge.models(1.0), whole_ridge.models(1.0), strict=True):
        assert m1 == pytest.approx(m2, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(t1, t2, rtol=1e-9, atol=1e-12)


def test_bad_settings_are_refused_by_name(tmp_path: Path) -> None:
    log = rich_log(40, seed=1)
    logs.write_parquet(log, str(tmp_path / "pq"))
    lf = logs.open_log(tmp_path / "pq")
    run = LocalRunner(lf)
    with pytest.raises(InvalidArgument, match="'nope'"):
        evaluate_stream(lf, [("u", "uniform")], StreamSettings(names=("nope",)), run)
    with pytest.raises(InvalidArgument, match=r"train_frac=1\.5"):
        evaluate_stream(lf, [("u", "uniform")], StreamSettings(train_frac=1.5), run)
    run.parallel = True
    with pytest.raises(InvalidArgument, match="progressive"):
        evaluate_stream(lf, [("u", "uniform")], StreamSettings(learn=True), run)


def test_cli_evaluates_a_parquet_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = rich_log(400, arms=5, dim=4, seed=5, step_s=900.0)
    logs.write_parquet(log, str(tmp_path / "pq"))
    out = tmp_path / "r.json"
    args = ["evaluate", "--log", str(tmp_path / "pq"), "--policy", "lin_ts_disjoint",
            "--draws", "50", "--seed", "3", "--n-boot", "100", "--chunk-rows", "64",
            "--out", str(out), "--plot-dir", str(tmp_path / "plots")]  # fmt: skip
    assert offline_cli.main(args) == 0
    text = capsys.readouterr()
    assert "Poisson bootstrap" in text.out and "parquet log" in text.err
    got = json.loads(out.read_text())
    assert got["settings"]["streaming"] == "local" and got["settings"]["chunk_rows"] == 64
    want = _in_memory(log, "lin_ts_disjoint")
    for e in got["results"]:
        assert e["value"] == pytest.approx(want[e["estimator"]].value, rel=1e-9)
    assert list((tmp_path / "plots").glob("*.png"))
