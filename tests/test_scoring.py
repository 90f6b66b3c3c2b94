"""The Gaussian policies' fast scoring paths against their exact definitions.

- The Thompson draw scores arms from float32 packed rows of the covariance
  cache, with a float64 fallback where float32 could be inaccurate
  (``kernels.gauss_arm``): its variance must stay within 2e-3 (relative) of
  the exact x' C x at any feature scale, and its mean must be exact.
- First-slot propensities come from a float32 table of normal quantiles read
  arm-major in blocks (``kernels.first_slot_counts_gauss``): they must match
  the exact first-slot probabilities, with many arms and with few.
"""

from __future__ import annotations

import numpy as np
import pytest
import reference as ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bandit_engine import kernels
from bandit_engine.policies import LinTSDisjoint, LogisticTS, PerArmGaussian, normal_table32


def draw_mean_std(
    p: PerArmGaussian, arms: np.ndarray, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each arm's score mean and std as a Thompson draw computes them: the
    float32 rows (``kernels.gauss_mean_std``) after repacking stale ones."""
    arr = p.arrays()
    kernels.ensure_packed_all(arr.cov, arr.packed, arr.stale, arms)
    return kernels.gauss_mean_std(arr.cov, arr.weights, arr.packed, arms, x, arr.scales)


def _trained(kind: str, dim: int, scale: float, corr: float, n: int, seed: int):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    p = LinTSDisjoint(dim) if kind == "lin" else LogisticTS(dim)
    for _ in range(3):
        p.add_arm()
    # correlated features: a shared factor plus noise, all at ``scale``
    base = rng.standard_normal((n, 1))
    xs = scale * (corr * base + (1.0 - corr) * rng.standard_normal((n, dim)))
    arms = rng.integers(0, 3, n)
    rs = (rng.random(n) < 0.4).astype(np.float64)
    if n:
        p.update_batch(arms, xs, rs)
    probe = scale * (corr * rng.standard_normal() + (1.0 - corr) * rng.standard_normal(dim))
    return p, probe


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["lin", "logistic"]),
    dim=st.integers(1, 12),
    log_scale=st.floats(-6.0, 5.0),  # |features| <= 1e6 is the policies' limit
    corr=st.floats(0.0, 0.999),
    n=st.integers(0, 60),
    seed=st.integers(0, 2**31),
)
def test_draw_path_matches_exact_score(
    kind: str, dim: int, log_scale: float, corr: float, n: int, seed: int
) -> None:
    scale = 10.0**log_scale
    if kind == "logistic" and scale > 1e3:
        scale = 1e3  # the Laplace step's logits overflow far past that; not this test's subject
    p, x = _trained(kind, dim, scale, corr, n, seed)
    arms = np.arange(3, dtype=np.int64)
    mean, std = draw_mean_std(p, arms, x)
    arr = p.arrays()
    mean_x, std_x = kernels.gauss_mean_std_exact(arr.cov, arr.weights, arms, x, arr.scales)
    np.testing.assert_array_equal(mean, mean_x)
    var, var_x = std**2, std_x**2
    assert np.all(np.isfinite(std)) and np.all(std >= 0.0)
    assert np.all(np.abs(var - var_x) <= 2e-3 * var_x + 1e-300), (var, var_x)


def test_packed_rows_follow_every_update_and_refresh() -> None:
    """The float32 rows are a cache of C: an update marks its arm's row stale,
    the next draw repacks it, and after draws, refreshes and a load every row
    equals a fresh packing of the covariance cache."""
    rng = np.random.default_rng(3)
    p = LinTSDisjoint(4, refresh_every=7)
    for _ in range(5):
        p.add_arm()
    arms = np.arange(5, dtype=np.int64)

    def fresh() -> np.ndarray:
        arr = p.arrays()
        out = np.zeros_like(arr.packed)
        for a in range(p.n_arms):
            kernels.pack_arm(arr.cov, out, a)
        return out[: p.n_arms]

    for step in range(40):
        arm = int(rng.integers(0, 5))
        p.update(arm, rng.standard_normal(4), float(rng.random()))
        assert p.arrays().stale[arm] == 1  # stale until scored
        if step % 13 == 0:
            p.refresh()
            np.testing.assert_array_equal(p.arrays().packed[: p.n_arms], fresh())
        p.rank(arms, rng.standard_normal(4), 2, rng)
        np.testing.assert_array_equal(p.arrays().packed[: p.n_arms], fresh())
    clone = p.clone()
    assert isinstance(clone, LinTSDisjoint)
    clone.load_state_dict(p.state_dict())
    np.testing.assert_allclose(
        clone.arrays().packed[:5].astype(np.float64),
        p.arrays().packed[:5].astype(np.float64),
        rtol=1e-6,
    )


def test_table_bound_makes_pruning_exact() -> None:
    """No table value reaches the pruning bound, and the table is the normal
    quantile grid: its sorted values are Phi^-1((i + 1/2) / n)."""
    t = normal_table32()
    assert t.dtype == np.float32
    assert float(np.abs(t).max()) < kernels.TABLE_MAX_ABS
    n = t.shape[0]
    grid = np.sort(t).astype(np.float64)
    for i in (0, 1, n // 4, n // 2, n - 2, n - 1):
        u = (i + 0.5) / n
        assert ref.normal_cdf(np.array([grid[i]]))[0] == pytest.approx(u, rel=1e-5, abs=1e-7)


@pytest.mark.parametrize("n_arms", [2, 7, 60, 300])
def test_first_slot_counts_match_exact_probabilities(n_arms: int) -> None:
    """Many close arms (every one live, several blocks of draws) and few."""
    rng = np.random.default_rng(n_arms)
    mean = rng.normal(0.0, 0.3, n_arms)
    std = rng.uniform(0.2, 0.6, n_arms)
    exact = ref.first_slot_gauss(mean, std, n_grid=4001)
    draws = 200_000
    counts = kernels.first_slot_counts_gauss(mean, std, normal_table32(), 12345, draws)
    assert int(counts.sum()) == draws
    props = counts / draws
    assert np.max(np.abs(props - exact)) <= 0.006, (props, exact)


def test_first_slot_counts_ignore_the_scale_of_the_scores() -> None:
    """Centred float32 scores: arms 1e-6 apart around 1e6 are still told apart."""
    mean = 1e6 + np.array([0.0, 1e-6, 2e-6])
    std = np.full(3, 1e-6)
    exact = ref.first_slot_gauss(mean, std, n_grid=4001)
    counts = kernels.first_slot_counts_gauss(mean, std, normal_table32(), 7, 100_000)
    assert np.max(np.abs(counts / 100_000 - exact)) <= 0.01, (counts, exact)


def test_first_slot_counts_prune_only_arms_that_cannot_win() -> None:
    """An arm below every other's reach gets 0; one inside it keeps its share."""
    mean = np.array([0.0, -10.0, -3.0])
    std = np.array([1.0, 1.0, 1.0])
    counts = kernels.first_slot_counts_gauss(mean, std, normal_table32(), 99, 100_000)
    assert counts[1] == 0
    assert counts[2] > 0  # P ~ 0.017: beyond 4.5 sd apart only when both tails meet


def test_draw_path_where_float32_cancels() -> None:
    """Thousands of events along one direction v: the posterior is tight along v
    and loose across it, so x' C x at x = v is a tiny difference of large
    terms. Float32 alone gets it wrong (checked below); the guard's float64
    fallback gets it right. (The logistic model scores through the same
    kernel, ``kernels.gauss_arm``.)"""
    rng = np.random.default_rng(11)
    dim, n = 16, 20_000
    v = rng.uniform(1.0, 3.0, dim)
    xs = v + 1e-4 * rng.standard_normal((n, dim))
    p = LinTSDisjoint(dim)
    p.add_arm()
    p.update_batch(np.zeros(n, dtype=np.int64), xs, (rng.random(n) < 0.5).astype(np.float64))
    arms = np.zeros(1, dtype=np.int64)
    _, std = draw_mean_std(p, arms, v)
    _, std_x = p.mean_std(arms, v)
    assert abs(std[0] ** 2 - std_x[0] ** 2) <= 2e-3 * std_x[0] ** 2
    # the float32 dot product by itself is far off here: the guard is what saves it
    xq = np.empty(p.arrays().packed.shape[1], dtype=np.float32)
    kernels.quad_context(v, xq)
    row = p.arrays().packed[0]
    m = row.shape[0] - dim
    v32 = float(np.dot(row[:m], xq[:m]))  # float32 products and sum
    assert abs(v32 * 0.25**2 - std_x[0] ** 2) > 2e-3 * std_x[0] ** 2


def test_per_arm_kernel_equals_the_batch_kernel() -> None:
    """The replay's fast path scores one arm at a time (``gauss_arm``), the
    policy all at once (``gauss_mean_std``): the same numbers, to the bit."""
    rng = np.random.default_rng(8)
    p = LinTSDisjoint(6)
    for _ in range(20):
        p.add_arm()
    p.update_batch(rng.integers(0, 20, 400), rng.standard_normal((400, 6)), rng.random(400))
    arms = np.arange(20, dtype=np.int64)
    xq = np.empty(p.arrays().packed.shape[1], dtype=np.float32)
    for _ in range(20):
        x = rng.standard_normal(6)
        mean, std = draw_mean_std(p, arms, x)
        kernels.quad_context(x, xq)
        for a in range(20):
            arr = p.arrays()
            mu, sd = kernels.gauss_arm(arr.cov, arr.weights, arr.packed, a, x, xq, arr.scales)
            assert (mu, sd) == (mean[a], std[a])
