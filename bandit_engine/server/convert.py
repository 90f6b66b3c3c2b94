"""Translation between ``bandit.v1`` messages and the core's types (no logic here)."""

from __future__ import annotations

from typing import Any

from bandit_engine._exceptions import InvalidArgument
from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
from bandit_engine.core import (
    ArmInfo,
    Context,
    Decision,
    ExperimentConfig,
    ExperimentInfo,
    RecommendItem,
)
from bandit_engine.core.challengers import POLICY_FIELDS, policy_settings
from bandit_engine.policies.lin_shared import default_joint_dim

POLICY_FROM_PB = {
    pb.BETA_TS: "beta_ts",
    pb.LIN_TS_DISJOINT: "lin_ts_disjoint",
    pb.LIN_TS_SHARED: "lin_ts_shared",
    pb.LOGISTIC_TS: "logistic_ts",
}
POLICY_TO_PB = {v: k for k, v in POLICY_FROM_PB.items()}

CLICK_FROM_PB = {
    pb.INDEPENDENT: "independent",
    pb.CASCADE: "cascade",
    pb.POSITION_BASED: "position_based",
}
CLICK_TO_PB = {v: k for k, v in CLICK_FROM_PB.items()}
PROPENSITY_FROM_PB = {
    pb.PROPENSITY_KIND_UNSPECIFIED: "first_slot",
    pb.FIRST_SLOT: "first_slot",
    pb.PER_SLOT: "per_slot",
}
PROPENSITY_TO_PB = {"first_slot": pb.FIRST_SLOT, "per_slot": pb.PER_SLOT}

OUTCOME_TO_PB = {
    "applied": pb.APPLIED,
    "duplicate": pb.DUPLICATE,
    "late": pb.LATE,
    "queued": pb.QUEUED,
}

_OPTIONAL = {
    # proto field -> ExperimentConfig field
    "joint_dim": "joint_dim",
    "reward_min": "reward_min",
    "reward_max": "reward_max",
    "reward_window_seconds": "reward_window_s",
    "default_reward": "default_reward",
    "decay": "decay",
    "half_life_seconds": "half_life_s",
    "prior_precision": "prior_precision",
    "noise_scale": "noise_scale",
    "exploration": "exploration",
    "prior_alpha": "prior_alpha",
    "prior_beta": "prior_beta",
    "propensity_draws": "propensity_draws",
    "shadow_rate": "shadow_rate",
    "shadow_window": "shadow_window",
}


def config_from_spec(spec: pb.ExperimentSpec) -> ExperimentConfig:
    if spec.policy not in POLICY_FROM_PB:
        raise InvalidArgument(
            f"policy={pb.PolicyKind.Name(spec.policy) if spec.policy in pb.PolicyKind.values() else spec.policy!r}"  # noqa: E501
            f" must be one of {sorted(pb.PolicyKind.Name(k) for k in POLICY_FROM_PB)}"
        )
    kwargs: dict[str, Any] = {
        "experiment_id": spec.experiment_id,
        "policy": POLICY_FROM_PB[spec.policy],
        "dim": spec.dim or 16,
        "dense_dim": spec.dense_dim,
        "intercept": not spec.no_intercept,
    }
    for field, name in _OPTIONAL.items():
        if spec.HasField(field):
            kwargs[name] = getattr(spec, field)
    if spec.click_model not in CLICK_FROM_PB:
        raise InvalidArgument(
            f"click_model={spec.click_model!r} must be one of "
            f"{sorted(pb.ClickModel.Name(k) for k in CLICK_FROM_PB)}"
        )
    if spec.propensity_kind not in PROPENSITY_FROM_PB:
        raise InvalidArgument(
            f"propensity_kind={spec.propensity_kind!r} must be one of "
            f"{sorted(pb.PropensityKind.Name(k) for k in PROPENSITY_TO_PB.values())}"
        )
    kwargs["click_model"] = CLICK_FROM_PB[spec.click_model]
    kwargs["examination"] = tuple(spec.examination)
    kwargs["propensity_kind"] = PROPENSITY_FROM_PB[spec.propensity_kind]
    return ExperimentConfig(**kwargs)


def spec_from_config(cfg: ExperimentConfig) -> pb.ExperimentSpec:
    spec = pb.ExperimentSpec(
        experiment_id=cfg.experiment_id,
        policy=POLICY_TO_PB[cfg.policy],
        dim=cfg.dim,
        dense_dim=cfg.dense_dim,
        no_intercept=not cfg.intercept,
        click_model=CLICK_TO_PB[cfg.click_model],
        examination=cfg.examination,
        propensity_kind=PROPENSITY_TO_PB[cfg.propensity_kind],
    )
    for field, name in _OPTIONAL.items():
        value = getattr(cfg, name)
        if field == "joint_dim" and value is None:
            if cfg.policy != "lin_ts_shared":
                continue
            value = default_joint_dim(cfg.dim)
        if value is None:
            continue  # noise_scale of lin_ts_disjoint: learned; exploration: not used
        setattr(spec, field, value)
    return spec


def experiment_msg(info: ExperimentInfo) -> pb.Experiment:
    return pb.Experiment(
        spec=spec_from_config(info.config),
        active_arms=info.active_arms,
        total_arms=info.total_arms,
        model_version=info.model_version,
        counters=pb.ExperimentCounters(**info.counters),
        champion=info.champion,
        challengers=[
            pb.Challenger(name=n, settings=settings_msg(policy_settings(c)))
            for n, c in info.challengers
        ],
    )


#: PolicySettings field -> ExperimentConfig field (besides ``policy``)
_SETTINGS = {
    f: n
    for f, n in _OPTIONAL.items()
    if n in POLICY_FIELDS and f not in ("shadow_rate", "shadow_window")
}


def settings_from_msg(m: pb.PolicySettings) -> dict[str, Any]:
    """A challenger's policy settings as ``ChallengerAdmin.add`` takes them."""
    if m.policy not in POLICY_FROM_PB:
        raise InvalidArgument(
            f"challenger policy={m.policy!r} must be one of "
            f"{sorted(pb.PolicyKind.Name(k) for k in POLICY_FROM_PB)}"
        )
    out: dict[str, Any] = {"policy": POLICY_FROM_PB[m.policy]}
    for field, name in _SETTINGS.items():
        if m.HasField(field):
            out[name] = getattr(m, field)
    return out


def settings_msg(settings: dict[str, Any]) -> pb.PolicySettings:
    m = pb.PolicySettings(policy=POLICY_TO_PB[settings["policy"]])
    for field, name in _SETTINGS.items():
        if settings.get(name) is not None:
            setattr(m, field, settings[name])
    return m


def context_from_msg(f: pb.Features) -> Context:
    """The request's features as they are: the engine reads the repeated
    fields and the map without copying them first."""
    return Context(dense=f.dense, numeric=f.numeric, categorical=f.categorical)


def recommend_item(r: pb.RecommendRequest) -> RecommendItem:
    return RecommendItem(r.experiment_id, context_from_msg(r.context), r.candidates, r.k or 1)


def recommend_response(d: Decision) -> pb.RecommendResponse:
    resp = pb.RecommendResponse()
    fill_recommend_response(resp, d)
    return resp


def fill_recommend_response(resp: pb.RecommendResponse, d: Decision) -> None:
    """Write ``d`` into an empty ``resp`` in place (a batch's results are
    filled where they stand: no message is built and then copied in)."""
    resp.event_id = d.event_id
    resp.model_version = d.model_version
    resp.propensity_kind = PROPENSITY_TO_PB[d.propensity_kind]
    add = resp.arms.add
    if d.prefix_propensities is None:
        for a, s, p in zip(d.arm_ids, d.scores.tolist(), d.propensities.tolist(), strict=True):
            add(arm_id=a, score=s, propensity=p)
        return
    for a, s, p, q in zip(
        d.arm_ids,
        d.scores.tolist(),
        d.propensities.tolist(),
        d.prefix_propensities.tolist(),
        strict=True,
    ):
        add(arm_id=a, score=s, propensity=p, prefix_propensity=q)


def features_dict(f: pb.Features) -> dict[str, Any]:
    if len(f.dense):
        raise InvalidArgument("arm features take named features only (dense is for contexts)")
    return {"numeric": dict(f.numeric), "categorical": list(f.categorical)}


def arm_msg(a: ArmInfo) -> pb.Arm:
    return pb.Arm(
        arm_id=a.arm_id,
        active=a.active,
        posterior=pb.ArmPosterior(mean=a.mean, std=a.std, pulls=a.pulls, reward_sum=a.reward_sum),
        features=pb.Features(
            numeric=a.features.get("numeric", {}), categorical=a.features.get("categorical", [])
        ),
    )
