"""Limits on every experiment setting, through the Python Engine and gRPC.

Each bad setting is refused with its value and the field (and, for an
engine limit, the limit) in the message, before anything is stored: the
engine's state and the store's rows are the same afterwards, and a restart
loads.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import grpc
import pytest
from serverutil import start_server

from bandit_engine import (
    Engine,
    ExperimentConfig,
    InvalidArgument,
    Limits,
    ResourceExhausted,
)
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.core.config import GiB
from bandit_engine.store import SQLiteStore

IA = grpc.StatusCode.INVALID_ARGUMENT
RE = grpc.StatusCode.RESOURCE_EXHAUSTED

# (settings, the text the message must hold)
BAD_SETTINGS: list[tuple[dict[str, Any], str]] = [
    ({"dim": 0}, "dim=0"),
    ({"dim": -3}, "dim=-3"),
    ({"dim": 2.5}, "dim=2.5"),
    ({"dim": True}, "dim=True"),
    ({"dense_dim": -1}, "dense_dim=-1"),
    ({"dim": 4, "dense_dim": 4}, "dense_dim=4"),
    ({"policy": "lin_ts_shared", "joint_dim": 0}, "joint_dim=0"),
    ({"policy": "ucb"}, "'ucb'"),
    ({"intercept": "yes"}, "intercept='yes'"),
    ({"reward_min": math.nan}, "reward_min=nan"),
    ({"reward_max": math.inf}, "reward_max=inf"),
    ({"reward_min": -1e13}, "reward_min=-10000000000000.0 must be in [-1e+12, 1e+12]"),
    ({"reward_max": 1e300}, "reward_max=1e+300"),
    ({"reward_min": 2.0, "reward_max": 1.0}, "reward_min < reward_max"),
    ({"reward_window_s": 0.0}, "reward_window_s=0.0"),
    ({"reward_window_s": -5.0}, "reward_window_s=-5.0"),
    ({"reward_window_s": 1e9}, "reward_window_s=1000000000.0"),
    ({"default_reward": 2.0}, "default_reward=2.0"),
    ({"decay": 0.1}, "decay=0.1"),
    ({"decay": 1.5}, "decay=1.5"),
    ({"decay": math.nan}, "decay=nan"),
    ({"prior_precision": 1e-9}, "prior_precision=1e-09"),
    ({"prior_precision": 1e9}, "prior_precision=1000000000.0"),
    ({"noise_scale": 0.0}, "noise_scale=0.0"),
    ({"noise_scale": 1e300}, "noise_scale=1e+300"),
    ({"policy": "beta_ts", "prior_alpha": 1e-300}, "prior_alpha=1e-300"),
    ({"policy": "beta_ts", "prior_beta": 1e7}, "prior_beta=10000000.0"),
    ({"propensity_draws": 0}, "propensity_draws=0"),
]

# (settings, text) over an engine limit of the defaults: RESOURCE_EXHAUSTED
OVER_LIMITS: list[tuple[dict[str, Any], str]] = [
    ({"dim": 4294967295}, "dim=4294967295 is over the limit max_dim=4096"),
    ({"dim": 1_000_000}, "dim=1000000 is over the limit max_dim=4096"),
    ({"policy": "beta_ts", "dim": 4294967295}, "max_dim=4096"),
    ({"policy": "logistic_ts", "dim": 4097}, "dim=4097"),
    ({"policy": "lin_ts_shared", "dim": 2048, "joint_dim": 8192}, "joint_dim=8192"),
    ({"policy": "lin_ts_shared", "joint_dim": 100_000}, "max_joint_dim=4096"),
    ({"propensity_draws": 1_000_000}, "max_propensity_draws=100000"),
]


def _engine(tmp_path: Path, **kw: Any) -> Engine:
    return Engine(SQLiteStore(tmp_path / "state.db"), **kw)


@pytest.mark.parametrize(("settings", "needle"), BAD_SETTINGS)
def test_config_refuses_a_bad_setting_naming_it(settings: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        ExperimentConfig("e", **settings)
    assert needle in str(info.value)


def test_stored_config_of_another_shape_is_refused_naming_it() -> None:
    with pytest.raises(InvalidArgument, match="'colour': 'red'"):
        ExperimentConfig.from_dict({"experiment_id": "e", "colour": "red"})
    with pytest.raises(InvalidArgument, match="without an experiment_id"):
        ExperimentConfig.from_dict({"dim": 3})
    with pytest.raises(InvalidArgument, match="mapping"):
        ExperimentConfig.from_dict([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize(("settings", "needle"), OVER_LIMITS)
def test_engine_refuses_an_experiment_over_a_limit(
    tmp_path: Path, settings: dict[str, Any], needle: str
) -> None:
    e = _engine(tmp_path)
    before = e.state_checksum()
    with pytest.raises(ResourceExhausted) as info:
        e.create_experiment(ExperimentConfig("big", **settings))
    assert needle in str(info.value)
    assert e.state_checksum() == before and e.list_experiments() == []
    e.close()
    again = _engine(tmp_path)  # nothing was stored: a restart loads, empty
    assert again.list_experiments() == []
    again.close()


def test_memory_budget_refuses_arms_before_allocating_them(tmp_path: Path) -> None:
    e = _engine(tmp_path)
    e.create_experiment(ExperimentConfig("wide", dim=4096))
    before = e.state_checksum()
    arms = [(f"a{i}", None) for i in range(1000)]
    with pytest.raises(ResourceExhausted) as info:
        e.add_arms("wide", arms)  # 1000 arms of dim 4096: about 300 GB
    text = str(info.value)
    assert "'wide'" in text and "1000 arms" in text and "dim=4096" in text
    assert "max_experiment_bytes=4294967296" in text
    assert e.state_checksum() == before and e.list_arms("wide") == []
    e.close()
    again = _engine(tmp_path)
    assert again.get_experiment("wide").total_arms == 0
    again.close()


def test_default_budget_admits_dim_1024_with_100_arms() -> None:
    limits = Limits()
    cfg = ExperimentConfig("fine", dim=1024)
    limits.check_experiment(cfg, 100)  # about 1.9 GB: admitted
    assert cfg.state_bytes(100) < limits.max_experiment_bytes
    with pytest.raises(ResourceExhausted):
        limits.check_experiment(ExperimentConfig("big", dim=4096), 1000)  # ~300 GB
    shared = ExperimentConfig("s", policy="lin_ts_shared", dim=1024)  # joint_dim 4096
    limits.check_experiment(shared, 10_000)
    assert shared.state_bytes(10_000) < 1 * GiB


def test_add_arms_counts_and_ids(tmp_path: Path) -> None:
    e = _engine(tmp_path, limits=Limits(max_arms=4, max_arms_per_call=3))
    e.create_experiment(ExperimentConfig("e", policy="beta_ts", dim=1))
    e.add_arms("e", [("a", None), ("b", None)])
    before = e.state_checksum()
    cases: list[tuple[list[tuple[str, Any]], type[Exception], str]] = [
        ([(f"x{i}", None) for i in range(4)], ResourceExhausted, "max_arms_per_call=3"),
        ([("c", None), ("d", None), ("f", None)], ResourceExhausted, "max_arms=4"),
        ([], InvalidArgument, "no arms"),
        ([("", None)], InvalidArgument, "arm_id"),
        ([("x" * 129, None)], InvalidArgument, "xxxx"),
        ([("bad id", None)], InvalidArgument, "'bad id'"),
        ([("c", None), ("c", None)], InvalidArgument, "'c' given twice"),
        ([("c", {"categorical": ["n" * 2000]})], InvalidArgument, "2000 characters"),
        ([("c", {"numeric": {"w": math.inf}})], InvalidArgument, "'w'"),
    ]
    for arms, exc, needle in cases:
        with pytest.raises(exc) as info:
            e.add_arms("e", arms)
        assert needle in str(info.value), (arms, str(info.value))
        assert e.state_checksum() == before
    e.close()


def _spec(**fields: Any) -> pb.ExperimentSpec:
    return pb.ExperimentSpec(experiment_id="g", policy=pb.LIN_TS_DISJOINT, **fields)


GRPC_CASES: list[tuple[pb.ExperimentSpec, grpc.StatusCode, str]] = [
    (_spec(dim=4294967295), RE, "dim=4294967295"),
    (_spec(dim=1_000_000), RE, "max_dim=4096"),
    (pb.ExperimentSpec(experiment_id="g", policy=pb.BETA_TS, dim=4294967295), RE, "max_dim"),
    (
        pb.ExperimentSpec(experiment_id="g", policy=pb.LIN_TS_SHARED, joint_dim=4294967295),
        RE,
        "joint_dim=4294967295",
    ),
    (_spec(propensity_draws=4294967295), RE, "propensity_draws=4294967295"),
    (_spec(dim=4, dense_dim=4294967295), IA, "dense_dim=4294967295"),
    (_spec(decay=0.0), IA, "decay=0.0"),
    (_spec(prior_precision=-1.0), IA, "prior_precision=-1.0"),
    (_spec(noise_scale=math.inf), IA, "noise_scale=inf"),
    (_spec(reward_window_seconds=math.nan), IA, "reward_window_s=nan"),
    (_spec(reward_min=5.0), IA, "reward_min < reward_max"),
    (_spec(default_reward=-1.0), IA, "default_reward=-1.0"),
    (
        pb.ExperimentSpec(experiment_id="g", policy=pb.BETA_TS, prior_alpha=0.0),
        IA,
        "prior_alpha=0.0",
    ),
    (
        pb.ExperimentSpec(experiment_id="g", policy=pb.BETA_TS, prior_beta=math.nan),
        IA,
        "prior_beta=nan",
    ),
    (pb.ExperimentSpec(experiment_id="g", policy=99), IA, "policy=99"),  # type: ignore[arg-type]
]


def test_grpc_refuses_each_bad_setting_and_a_restart_loads(tmp_path: Path) -> None:
    r = start_server(tmp_path / "state")
    try:
        r.stub.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(experiment_id="ok", policy=pb.LIN_TS_DISJOINT, dim=4)
            )
        )
        r.stub.AddArms(pb.AddArmsRequest(experiment_id="ok", arms=[pb.ArmSpec(arm_id="a")]))
        before = r.engine.state_checksum()
        for spec, code, needle in GRPC_CASES:
            with pytest.raises(grpc.RpcError) as info:
                r.stub.CreateExperiment(pb.CreateExperimentRequest(spec=spec))
            assert info.value.code() == code, (spec, info.value.details())
            assert needle in info.value.details(), (spec, info.value.details())
        assert r.engine.state_checksum() == before
        r.stub.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(experiment_id="wide", policy=pb.LIN_TS_DISJOINT, dim=4096)
            )
        )
        with pytest.raises(grpc.RpcError) as info:
            r.stub.AddArms(
                pb.AddArmsRequest(
                    experiment_id="wide", arms=[pb.ArmSpec(arm_id=f"a{i}") for i in range(1000)]
                )
            )
        assert info.value.code() == RE and "max_experiment_bytes" in info.value.details()
        listed = r.stub.ListExperiments(pb.ListExperimentsRequest())
        assert sorted(x.spec.experiment_id for x in listed.experiments) == ["ok", "wide"]
        assert r.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="wide")).total_arms == 0
        assert r.stub.GetExperiment(pb.GetExperimentRequest(experiment_id="ok")).total_arms == 1
        r.stub.Recommend(pb.RecommendRequest(experiment_id="ok"))
    finally:
        r.stop()
    again = start_server(tmp_path / "state")
    try:
        assert {e for e in again.engine.experiments()} == {"ok", "wide"}
        again.stub.Recommend(pb.RecommendRequest(experiment_id="ok"))
    finally:
        again.stop()
