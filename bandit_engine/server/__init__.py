"""The gRPC edge: servicer, message conversion, server assembly, health,
security, metrics, warm-up, CPU pinning and the garbage collector's pauses."""

from bandit_engine.server.app import (
    DEFAULT_RPC_WORKERS,
    NETWORK_RPC_WORKERS,
    ServerSettings,
    create_server,
    open_engine,
    open_store,
    stop_server,
)
from bandit_engine.server.cpus import parse_cpus, pin
from bandit_engine.server.gc_pauses import GcPauses, freeze_heap
from bandit_engine.server.health import HealthMonitor
from bandit_engine.server.learner_thread import LearnerThread
from bandit_engine.server.servicer import SERVICE_NAME, BanditServicer, add_servicer, status_of

__all__ = [
    "DEFAULT_RPC_WORKERS",
    "NETWORK_RPC_WORKERS",
    "SERVICE_NAME",
    "BanditServicer",
    "GcPauses",
    "HealthMonitor",
    "LearnerThread",
    "ServerSettings",
    "add_servicer",
    "create_server",
    "freeze_heap",
    "open_engine",
    "open_store",
    "parse_cpus",
    "pin",
    "status_of",
    "stop_server",
]
