"""BanditClient against a real in-process server: types, errors, TLS and tokens."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverutil import Running
from test_security import ADMIN, SERVE, pki, secured  # noqa: F401  (fixtures)

from bandit_engine import (
    AlreadyExists,
    BanditError,
    Context,
    ExperimentConfig,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from bandit_engine.client import ArmSpec, BanditClient

CONFIG = ExperimentConfig("trips", "lin_ts_disjoint", dim=8, dense_dim=2, reward_max=5.0)
ARMS: list[ArmSpec] = [
    "paris",
    ("rome", {"numeric": {"price": 2.0}, "categorical": ["country=IT"]}),
    "oslo",
]


@pytest.fixture
def client(running: Running) -> Iterator[BanditClient]:
    with BanditClient(f"127.0.0.1:{running.port}", timeout=10) as c:
        yield c


def test_a_session_answers_in_the_engines_types(running: Running, client: BanditClient) -> None:
    info = client.create_experiment(CONFIG)
    assert info.config == CONFIG
    assert (info.active_arms, info.total_arms) == (0, 0)

    arms = client.add_arms("trips", ARMS)
    assert [a.arm_id for a in arms] == ["paris", "rome", "oslo"]
    assert arms == running.engine.list_arms("trips")
    assert arms[1].features == {"numeric": {"price": 2.0}, "categorical": ["country=IT"]}

    ctx = Context(dense=(0.5, -1.0), numeric={"nights": 3.0}, categorical=("device=mobile",))
    d = client.recommend("trips", ctx, candidates=["rome", "oslo", "paris"], k=2)
    assert len(d.arm_ids) == 2 and set(d.arm_ids) <= {"rome", "oslo", "paris"}
    assert len(d.scores) == len(d.propensities) == 2
    assert all(0.0 <= p <= 1.0 for p in d.propensities)

    first = client.feedback(d.event_id, d.arm_ids[0], 4.0)
    assert first.outcome == "applied"
    again = client.feedback(d.event_id, d.arm_ids[0], 4.0)
    assert again.outcome == "duplicate"
    assert again.model_version == first.model_version > d.model_version

    got = client.get_experiment("trips")
    served = running.engine.get_experiment("trips")
    assert (got.config, got.active_arms, got.total_arms) == (CONFIG, 3, 3)
    assert got.model_version == served.model_version
    # the message carries every counter; the engine's dict those it keeps
    assert got.counters == {"rewards_unknown": 0, **served.counters}
    assert got.counters["decisions"] == 1
    assert got.counters["rewards_applied"] == got.counters["rewards_duplicate"] == 1
    assert running.engine.arm_info("trips", d.arm_ids[0]).reward_sum == 4.0


def test_defaults_every_active_arm_and_k_one(client: BanditClient) -> None:
    client.create_experiment(ExperimentConfig("flat", "beta_ts", dim=1))
    client.add_arms("flat", ["a", "b", "c"])
    seen = {client.recommend("flat").arm_ids for _ in range(40)}
    assert all(len(ids) == 1 for ids in seen)
    assert set().union(*seen) == {"a", "b", "c"}


def test_a_reward_after_the_window_is_late(client: BanditClient) -> None:
    client.create_experiment(ExperimentConfig("win", "beta_ts", dim=1, reward_window_s=60.0))
    client.add_arms("win", ["a"])
    d = client.recommend("win")
    late = client.feedback(d.event_id, "a", 1.0, timestamp=time.time() + 3600)
    assert late.outcome == "late"
    assert client.get_experiment("win").counters["rewards_late"] == 1


def test_refusals_become_the_engines_errors_naming_the_call(
    running: Running, client: BanditClient
) -> None:
    target = f"127.0.0.1:{running.port}"
    with pytest.raises(NotFound, match=rf"GetExperiment on {target} failed: NOT_FOUND: .*'nope'"):
        client.get_experiment("nope")
    client.create_experiment(CONFIG)
    with pytest.raises(AlreadyExists, match=r"CreateExperiment .* ALREADY_EXISTS: .*'trips'"):
        client.create_experiment(CONFIG)
    client.add_arms("trips", ["paris"])
    d = client.recommend("trips")
    with pytest.raises(InvalidArgument, match=r"Feedback .* INVALID_ARGUMENT: .*reward.*9\.0"):
        client.feedback(d.event_id, "paris", 9.0)
    with pytest.raises(NotFound, match=r"Recommend .* NOT_FOUND"):
        client.recommend("trips", candidates=["atlantis"])
    # the running fixture allows 50 candidates
    with pytest.raises(ResourceExhausted, match=r"Recommend .* RESOURCE_EXHAUSTED: 51 candidates"):
        client.recommend("trips", candidates=[f"a{i}" for i in range(51)])
    assert client.get_experiment("trips").counters["rewards_applied"] == 0


def test_bad_arguments_are_refused_before_any_call(client: BanditClient) -> None:
    with pytest.raises(InvalidArgument, match="k=0"):
        client.recommend("trips", k=0)
    with pytest.raises(InvalidArgument, match="candidates='abc'"):
        client.recommend("trips", candidates="abc")
    with pytest.raises(InvalidArgument, match=r"context=\[1\.0\]"):
        client.recommend("trips", [1.0])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="arm 42"):
        client.add_arms("trips", [42])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match="Feedback: reward='high'"):
        client.feedback("e", "a", "high")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="timeout=0"):
        BanditClient("127.0.0.1:1", timeout=0)
    with pytest.raises(InvalidArgument, match="go together"):
        BanditClient("127.0.0.1:1", root_certificates=b"x", certificate_chain=b"y")
    with pytest.raises(InvalidArgument, match="root_certificates: cannot read '/nonexistent"):
        BanditClient("127.0.0.1:1", root_certificates="/nonexistent/ca.pem")


def test_no_server_is_unavailable() -> None:
    with BanditClient("127.0.0.1:1", timeout=0.5) as c:
        with pytest.raises(Unavailable, match=r"no server answering at 127\.0\.0\.1:1"):
            c.wait_ready()
        with pytest.raises(Unavailable, match=r"GetExperiment on 127\.0\.0\.1:1 failed"):
            c.get_experiment("trips")


def test_tls_client_certificate_and_tokens(pki: Path, secured: int) -> None:  # noqa: F811
    target = f"127.0.0.1:{secured}"
    tls = {
        "root_certificates": pki / "ca.pem",
        "certificate_chain": (pki / "client.pem").read_bytes(),
        "private_key": str(pki / "client.key"),
    }
    with BanditClient(target, token=ADMIN, **tls) as admin:  # type: ignore[arg-type]
        admin.wait_ready()
        admin.create_experiment(ExperimentConfig("sec", "beta_ts", dim=1))
        admin.add_arms("sec", ["a"])
    with BanditClient(target, token=SERVE, **tls) as serve:  # type: ignore[arg-type]
        d = serve.recommend("sec")
        assert serve.feedback(d.event_id, "a", 1.0).outcome == "applied"
        with pytest.raises(BanditError, match=r"GetExperiment .* PERMISSION_DENIED") as info:
            serve.get_experiment("sec")
        assert type(info.value) is BanditError
    with BanditClient(target, **tls) as anonymous:  # type: ignore[arg-type]
        with pytest.raises(BanditError, match=r"Recommend .* UNAUTHENTICATED"):
            anonymous.recommend("sec")


def test_click_model_and_per_slot_settings_round_trip(client: BanditClient) -> None:
    cfg = ExperimentConfig(
        "carousel",
        "beta_ts",
        dim=1,
        click_model="position_based",
        examination=(1.0, 0.6, 0.3),
        propensity_kind="per_slot",
    )
    assert client.create_experiment(cfg).config == cfg
    client.add_arms("carousel", ["a", "b", "c"])
    d = client.recommend("carousel", None, k=3)
    assert d.propensity_kind == "per_slot" and len(d.propensities) == 3
