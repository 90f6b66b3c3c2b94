"""Command line: ``bandit-engine serve``, ``learn``, ``broker``, a gRPC client for the shell.

Client commands print the server's answer as JSON (the proto3 JSON mapping,
as grpcurl prints it). Features on the command line: ``name=value`` is a
categorical feature (``country=NL``), ``name:number`` a numeric one
(``nights:3``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from bandit_engine._exceptions import InvalidArgument
from bandit_engine.cli.args import duration, parse_features
from bandit_engine.cli.broker import add_broker
from bandit_engine.cli.client import add_client_commands
from bandit_engine.cli.logs import JsonFormatter
from bandit_engine.cli.serve import add_learn, add_serve

__all__ = ["JsonFormatter", "build_parser", "duration", "main", "parse_features"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bandit-engine", description=__doc__.split("\n")[0])
    p.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="json: one JSON object per line (time, level, logger, message)",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve(sub)
    add_learn(sub)
    add_broker(sub)
    add_client_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    if args.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        return int(args.func(args))
    except InvalidArgument as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        import grpc

        if isinstance(exc, grpc.RpcError):
            print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
