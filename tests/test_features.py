"""FeatureSpace layout, the stable feature hash, arm features and input errors."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit_engine import InvalidArgument, ResourceExhausted
from bandit_engine.features import ArmFeatures, FeatureSpace, feature_hash

FAST = settings(max_examples=100, deadline=None)

names = st.text(min_size=1, max_size=24)
small_ints = st.integers(-1000, 1000).map(float)  # exact sums in any order


def blake2b_63(name: str) -> int:
    """The documented hash, written out: BLAKE2b-64 of the UTF-8 name, low 63 bits."""
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def slot(fs: FeatureSpace, name: str) -> tuple[int, float]:
    """Where a named feature lands and with which sign (signed feature hashing)."""
    h = blake2b_63(name)
    start = (1 if fs.intercept else 0) + fs.dense_dim
    sign = 1.0 if (h >> 62) & 1 else -1.0
    return start + h % (fs.dim - start), sign


# -------------------------------------------------------------------- hash
@FAST
@given(name=names)
def test_feature_hash_is_blake2b_and_63_bit(name: str) -> None:
    h = feature_hash(name)
    assert isinstance(h, int)
    assert 0 <= h < 2**63
    assert h == blake2b_63(name)
    assert feature_hash(name) == h  # cached value is the same


def test_feature_hash_is_stable_across_processes() -> None:
    sample = ["country=NL", "nights", "__arm__=42", "ünïcödé=✓", "x" * 300]
    code = (
        "import sys, json\n"
        "from bandit_engine.features import feature_hash\n"
        "print(json.dumps([[feature_hash(n), hash(n)] for n in json.loads(sys.argv[1])]))\n"
    )
    import json

    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", code, json.dumps(sample)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        outs.append(json.loads(proc.stdout))
    for (h1, _), (h2, _), name in zip(outs[0], outs[1], sample, strict=True):
        assert h1 == h2 == feature_hash(name)
    # control: the two processes really had different str hashing
    assert any(py1 != py2 for (_, py1), (_, py2) in zip(outs[0], outs[1], strict=True))


# ------------------------------------------------------------------ layout
@FAST
@given(
    dim=st.integers(1, 40),
    intercept=st.booleans(),
    data=st.data(),
)
def test_layout_intercept_dense_hashed(dim: int, intercept: bool, data: st.DataObject) -> None:
    offset = 1 if intercept else 0
    if offset > dim:
        return
    dense_dim = data.draw(st.integers(0, dim - offset), label="dense_dim")
    fs = FeatureSpace(dim, dense_dim=dense_dim, intercept=intercept)
    assert fs.hashed_size == dim - offset - dense_dim

    base = fs.baseline()
    assert base.shape == (dim,)
    assert np.array_equal(base, np.eye(dim)[0] if intercept else np.zeros(dim))

    dense = data.draw(st.lists(small_ints, min_size=dense_dim, max_size=dense_dim), label="dense")
    named = (
        data.draw(st.dictionaries(names, small_ints, max_size=6), label="numeric")
        if fs.hashed_size
        else {}
    )
    cats = data.draw(st.lists(names, max_size=4), label="cats") if fs.hashed_size else []
    x = fs.vector(dense=dense or None, numeric=named, categorical=cats)

    expected = base.copy()
    expected[offset : offset + dense_dim] = dense
    for name, value in [*named.items(), *[(c, 1.0) for c in cats]]:
        i, sign = slot(fs, name)
        assert offset + dense_dim <= i < dim
        expected[i] += sign * value
    assert np.array_equal(x, expected)


@FAST
@given(name=names, v=st.floats(-1e6, 1e6, allow_nan=False), hashed=st.integers(1, 16))
def test_named_features_are_linear_and_categoricals_are_one(
    name: str, v: float, hashed: int
) -> None:
    fs = FeatureSpace(1 + 2 + hashed, dense_dim=2)
    base = fs.baseline()
    unit = fs.vector(numeric={name: 1.0}) - base
    assert np.count_nonzero(unit) == 1
    assert np.abs(unit).sum() == 1.0
    assert np.array_equal(fs.vector(numeric={name: v}) - base, v * unit)
    assert np.array_equal(fs.vector(categorical=[name]), fs.vector(numeric={name: 1.0}))
    # intercept and dense block untouched by named features
    assert np.array_equal(fs.vector(numeric={name: v})[:3], base[:3])


def test_colliding_features_add() -> None:
    fs = FeatureSpace(2)  # a hashed block of one bucket: everything collides
    a, b = "alpha", "beta"
    xa = fs.vector(numeric={a: 2.0})
    xb = fs.vector(numeric={b: 3.0})
    both = fs.vector(numeric={a: 2.0, b: 3.0})
    assert np.array_equal(both, xa + xb - fs.baseline())


# ------------------------------------------------------------------ errors
def test_wrong_dense_length_names_both_lengths() -> None:
    fs = FeatureSpace(8, dense_dim=3)
    with pytest.raises(InvalidArgument, match=r"length 2.*dense_dim=3"):
        fs.vector(dense=[1.0, 2.0])
    with pytest.raises(InvalidArgument, match=r"length 5.*dense_dim=3"):
        fs.vector(dense=[1.0] * 5)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_values_are_named(bad: float) -> None:
    fs = FeatureSpace(8, dense_dim=3)
    with pytest.raises(InvalidArgument, match=rf"dense\[1\] is .*{bad}"):
        fs.vector(dense=[0.0, bad, 1.0])
    with pytest.raises(InvalidArgument, match=rf"'nights'.*{bad}"):
        fs.vector(numeric={"ok": 1.0, "nights": bad})
    with pytest.raises(InvalidArgument, match=rf"'price'.*{bad}"):
        ArmFeatures.build("a1", numeric={"price": bad})


def test_named_feature_without_hashed_block() -> None:
    fs = FeatureSpace(4, dense_dim=3)  # intercept + 3 dense: no hashed block
    assert fs.hashed_size == 0
    with pytest.raises(InvalidArgument, match=r"'country=NL'.*no hashed block"):
        fs.vector(categorical=["country=NL"])
    with pytest.raises(InvalidArgument, match=r"'nights'.*no hashed block"):
        fs.vector(dense=[1.0, 2.0, 3.0], numeric={"nights": 2.0})
    # dense-only input is fine
    assert np.array_equal(fs.vector(dense=[1.0, 2.0, 3.0]), [1.0, 1.0, 2.0, 3.0])


def test_bad_names() -> None:
    fs = FeatureSpace(8)
    with pytest.raises(InvalidArgument, match="''"):
        fs.vector(categorical=[""])
    with pytest.raises(InvalidArgument, match="42"):
        fs.vector(numeric={42: 1.0})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgument, match="None"):
        ArmFeatures.build("a", categorical=[None])  # type: ignore[list-item]


@pytest.mark.parametrize(
    "make",
    [
        lambda: {"categorical": [f"c{i}" for i in range(5)]},
        lambda: {"categorical": {f"c{i}" for i in range(5)}},  # a set counts too
        lambda: {"categorical": (f"c{i}" for i in range(5))},  # and a generator
        lambda: {"numeric": {f"n{i}": 1.0 for i in range(3)}, "categorical": ["a", "b"]},
        lambda: {"dense": [1.0, 2.0], "numeric": {"n": 1.0}, "categorical": ["a", "b"]},
    ],
)
def test_too_many_features(make: object) -> None:
    fs = FeatureSpace(16, dense_dim=2, max_features=4)
    with pytest.raises(ResourceExhausted, match=r"5 features; the limit is 4"):
        fs.vector(**make())  # type: ignore[operator]
    # at the limit it is accepted
    assert fs.vector(categorical=["a", "b", "c", "d"]).shape == (16,)


def test_bad_space_configuration() -> None:
    with pytest.raises(InvalidArgument, match="dim=0"):
        FeatureSpace(0)
    with pytest.raises(InvalidArgument, match="dense_dim=4"):
        FeatureSpace(4, dense_dim=4)  # no room left for the intercept
    with pytest.raises(InvalidArgument, match="dense_dim=-1"):
        FeatureSpace(4, dense_dim=-1)
    assert FeatureSpace(4, dense_dim=4, intercept=False).hashed_size == 0


# ------------------------------------------------------------- arm features
def test_arm_features_include_an_identity_feature() -> None:
    bare = ArmFeatures.build("hotel-7")
    assert bare.ids.shape == bare.values.shape == (1,)
    assert bare.values[0] == 1.0
    assert bare.ids.dtype == np.int64
    assert bare.values.dtype == np.float64

    a = ArmFeatures.build("hotel-7", numeric={"stars": 4.0}, categorical=["type=beach"])
    b = ArmFeatures.build("hotel-8", numeric={"stars": 4.0}, categorical=["type=beach"])
    assert a.ids.shape == (3,)
    # the attributes are the hashed names with their values; the identity differs
    shared = {feature_hash("stars"): 4.0, feature_hash("type=beach"): 1.0}
    for f in (a, b):
        got = dict(zip(f.ids.tolist(), f.values.tolist(), strict=True))
        for k, v in shared.items():
            assert got.pop(k) == v
        assert list(got.values()) == [1.0]  # what is left is the identity feature, value 1
    ident_a = set(a.ids.tolist()) - set(shared)
    ident_b = set(b.ids.tolist()) - set(shared)
    assert ident_a != ident_b
    assert ident_a == set(bare.ids.tolist())  # the identity depends only on the arm id
    # deterministic
    again = ArmFeatures.build("hotel-7", numeric={"stars": 4.0}, categorical=["type=beach"])
    assert np.array_equal(a.ids, again.ids)
    assert np.array_equal(a.values, again.values)


def test_arm_feature_limit_names_the_arm() -> None:
    ok = ArmFeatures.build("a1", categorical=["x", "y"], max_features=2)
    assert ok.ids.shape == (3,)  # the identity feature is not counted against the limit
    with pytest.raises(ResourceExhausted, match=r"'a1' has 3 features; the limit is 2"):
        ArmFeatures.build("a1", categorical=["x", "y", "z"], max_features=2)
