"""The shell client: one command per RPC, answers printed as JSON (the
proto3 JSON mapping, as grpcurl prints it)."""

from __future__ import annotations

import argparse
import os
from typing import Any

import grpc

from bandit_engine.cli.args import at_least_one, parse_features
from bandit_engine.cli.challengers import (
    CHALLENGER_COMMANDS,
    add_challenger_commands,
    challenger_call,
    format_report,
)

__all__ = ["DEFAULT_TARGET", "add_client_commands"]

DEFAULT_TARGET = "127.0.0.1:50051"

_POLICIES = ["beta_ts", "lin_ts_disjoint", "lin_ts_shared", "logistic_ts"]


def run_client(args: argparse.Namespace) -> int:
    import grpc
    from google.protobuf import json_format

    from bandit_engine._proto.bandit.v1 import bandit_pb2 as pb
    from bandit_engine._proto.bandit.v1 import bandit_pb2_grpc as pb_grpc

    if args.tls_ca:
        from pathlib import Path

        creds = grpc.ssl_channel_credentials(
            root_certificates=Path(args.tls_ca).read_bytes(),
            private_key=Path(args.tls_key).read_bytes() if args.tls_key else None,
            certificate_chain=Path(args.tls_cert).read_bytes() if args.tls_cert else None,
        )
        channel = grpc.secure_channel(args.target, creds)
    else:
        channel = grpc.insecure_channel(args.target)
    token = args.token or os.environ.get("BANDIT_TOKEN")
    if token:
        channel = grpc.intercept_channel(channel, _BearerAuth(token))
    stub = pb_grpc.BanditServiceStub(channel)
    cmd = args.command

    def ctx_msg() -> Any:
        numeric, categorical = parse_features(args.feature or [])
        dense = [float(v) for v in args.dense.split(",")] if args.dense else []
        return pb.Features(dense=dense, numeric=numeric, categorical=categorical)

    if cmd == "create-experiment":
        spec = pb.ExperimentSpec(
            experiment_id=args.experiment_id,
            policy=pb.PolicyKind.Value(args.policy.upper()),
            dim=args.dim,
            dense_dim=args.dense_dim,
            no_intercept=args.no_intercept,
            click_model=pb.ClickModel.Value(args.click_model.upper()),
            examination=parse_examination(args.examination),
            propensity_kind=pb.PropensityKind.Value(args.propensity_kind.upper()),
        )
        for name in (
            "reward_min",
            "reward_max",
            "reward_window_seconds",
            "default_reward",
            "decay",
            "half_life_seconds",
            "prior_precision",
            "noise_scale",
            "exploration",
            "prior_alpha",
            "prior_beta",
            "propensity_draws",
            "joint_dim",
            "shadow_rate",
            "shadow_window",
        ):
            value = getattr(args, name)
            if value is not None:
                setattr(spec, name, value)
        reply = stub.CreateExperiment(pb.CreateExperimentRequest(spec=spec), timeout=args.timeout)
    elif cmd == "experiments":
        reply = stub.ListExperiments(pb.ListExperimentsRequest(), timeout=args.timeout)
    elif cmd == "experiment":
        reply = stub.GetExperiment(
            pb.GetExperimentRequest(experiment_id=args.experiment_id), timeout=args.timeout
        )
    elif cmd == "add-arms":
        arms = []
        for spec_str in args.arms:
            arm_id, _, feats = spec_str.partition(":")
            numeric, categorical = parse_features([feats] if feats else [])
            arms.append(
                pb.ArmSpec(
                    arm_id=arm_id,
                    features=pb.Features(numeric=numeric, categorical=categorical),
                )
            )
        reply = stub.AddArms(
            pb.AddArmsRequest(experiment_id=args.experiment_id, arms=arms), timeout=args.timeout
        )
    elif cmd == "retire-arm":
        reply = stub.RetireArm(
            pb.RetireArmRequest(experiment_id=args.experiment_id, arm_id=args.arm_id),
            timeout=args.timeout,
        )
    elif cmd == "arm":
        req = pb.GetArmRequest(experiment_id=args.experiment_id, arm_id=args.arm_id)
        if args.feature or args.dense:
            req.context.CopyFrom(ctx_msg())
        reply = stub.GetArm(req, timeout=args.timeout)
    elif cmd == "arms":
        reply = stub.ListArms(
            pb.ListArmsRequest(experiment_id=args.experiment_id, include_retired=args.all),
            timeout=args.timeout,
        )
    elif cmd == "recommend":
        reply = stub.Recommend(
            pb.RecommendRequest(
                experiment_id=args.experiment_id,
                context=ctx_msg(),
                candidates=args.candidate or [],
                k=args.k,
            ),
            timeout=args.timeout,
        )
    elif cmd == "feedback":
        req = pb.FeedbackRequest(event_id=args.event_id, arm_id=args.arm_id, reward=args.reward)
        if args.timestamp is not None:
            req.timestamp = args.timestamp
        reply = stub.Feedback(req, timeout=args.timeout)
    elif cmd in CHALLENGER_COMMANDS:
        reply = challenger_call(args, stub, pb)
        if cmd == "report" and not args.json:
            print(format_report(reply))
            return 0
    elif cmd == "health":
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
        )
    else:  # pragma: no cover - argparse guards this
        raise SystemExit(f"unknown command {cmd!r}")
    print(
        json_format.MessageToJson(
            reply,
            preserving_proto_field_name=True,
            indent=2,
            always_print_fields_with_no_presence=True,
        )
    )
    return 0


class _BearerAuth(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Adds ``authorization: Bearer <token>`` to every call."""

    def __init__(self, token: str) -> None:
        self._md = ("authorization", f"Bearer {token}")

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        md = [*(details.metadata or []), self._md]
        return continuation(_Details(details, md), request)


class _Details:
    def __init__(self, d: Any, metadata: list[tuple[str, str]]) -> None:
        self.method = d.method
        self.timeout = d.timeout
        self.metadata = metadata
        self.credentials = d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


def add_client_commands(sub: Any) -> None:
    def client(name: str, help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.add_argument(
            "--target", default=DEFAULT_TARGET, help=f"server (default {DEFAULT_TARGET})"
        )
        c.add_argument("--timeout", type=float, default=10.0, help="deadline in seconds")
        c.add_argument("--token", help="bearer token (env BANDIT_TOKEN)")
        c.add_argument("--tls-ca", metavar="PEM", help="CA to verify the server (turns TLS on)")
        c.add_argument("--tls-cert", metavar="PEM", help="client certificate (mutual TLS)")
        c.add_argument("--tls-key", metavar="PEM", help="client private key (mutual TLS)")
        c.set_defaults(func=run_client)
        return c

    def features(c: argparse.ArgumentParser) -> None:
        c.add_argument(
            "-f",
            "--feature",
            action="append",
            help="context feature: name=value (categorical) or name:number",
        )
        c.add_argument("--dense", help="dense context, comma-separated floats")

    c = client("create-experiment", "create an experiment")
    c.add_argument("experiment_id")
    c.add_argument("--policy", choices=_POLICIES, default="lin_ts_disjoint")
    c.add_argument("--dim", type=int, default=16, help="context dimension d (default 16)")
    c.add_argument("--dense-dim", type=int, default=0)
    c.add_argument("--no-intercept", action="store_true")
    c.add_argument("--joint-dim", type=int)
    c.add_argument("--reward-min", type=float)
    c.add_argument("--reward-max", type=float)
    c.add_argument(
        "--window",
        dest="reward_window_seconds",
        type=float,
        help="reward window in seconds (default 3600)",
    )
    c.add_argument("--default-reward", type=float)
    c.add_argument("--decay", type=float)
    c.add_argument(
        "--half-life-seconds",
        type=float,
        help="forgetting: evidence this old counts half (default 86400; 0: never)",
    )
    c.add_argument("--prior-precision", type=float)
    c.add_argument("--noise-scale", type=float, help="fixed noise scale (default: learned per arm)")
    c.add_argument(
        "--exploration", type=float, help="draw spread relative to the posterior's (default 0.5)"
    )
    c.add_argument("--prior-alpha", type=float)
    c.add_argument("--prior-beta", type=float)
    c.add_argument("--propensity-draws", type=int)
    c.add_argument(
        "--click-model",
        choices=("independent", "cascade", "position_based"),
        default="independent",
        help="what a ranked list's default rewards teach (default independent)",
    )
    c.add_argument(
        "--examination",
        help="position_based: examination probability per slot, comma-separated "
        "(default 1/log2(slot + 2))",
    )
    c.add_argument(
        "--propensity-kind",
        choices=("first_slot", "per_slot"),
        default="first_slot",
        help="what Recommend's propensities hold (default first_slot)",
    )
    c.add_argument(
        "--shadow-rate", type=float, help="share of requests challengers rank (default 0.1)"
    )
    c.add_argument(
        "--shadow-window",
        type=int,
        help="rewarded shadow decisions the estimates cover (default 10000)",
    )
    client("experiments", "list experiments")
    c = client("experiment", "show one experiment")
    c.add_argument("experiment_id")
    c = client("add-arms", "add arms: ARM or ARM:country=FR,stars:4.5")
    c.add_argument("experiment_id")
    c.add_argument("arms", nargs="+")
    c = client("retire-arm", "retire an arm")
    c.add_argument("experiment_id")
    c.add_argument("arm_id")
    c = client("arm", "an arm's posterior summary")
    c.add_argument("experiment_id")
    c.add_argument("arm_id")
    features(c)
    c = client("arms", "list arms")
    c.add_argument("experiment_id")
    c.add_argument("--all", action="store_true", help="include retired arms")
    c = client("recommend", "rank arms for a context")
    c.add_argument("experiment_id")
    features(c)
    c.add_argument("-c", "--candidate", action="append", help="eligible arm (repeat)")
    c.add_argument(
        "-k",
        type=at_least_one,
        default=1,
        help="how many arms to return (default 1; the API reads 0 as unset, so 0 is refused here)",
    )
    c = client("feedback", "report a reward")
    c.add_argument("event_id")
    c.add_argument("arm_id")
    c.add_argument("reward", type=float)
    c.add_argument("--timestamp", type=float)
    c = client("health", "gRPC health check")
    c.add_argument("--service", default="")
    add_challenger_commands(client)


def parse_examination(text: str | None) -> list[float]:
    """``--examination 1,0.6,0.4`` as a list of floats (checked by the server)."""
    if not text:
        return []
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise SystemExit(f"--examination {text!r} must be comma-separated numbers") from None
