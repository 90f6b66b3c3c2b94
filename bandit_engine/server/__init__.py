"""The gRPC edge: servicer, message conversion, server assembly, health,
security, metrics, warm-up and CPU pinning."""

from bandit_engine.server.app import (
    SERVICE_NAME,
    BanditServicer,
    HealthMonitor,
    LearnerThread,
    ServerSettings,
    add_servicer,
    create_server,
    open_engine,
    open_store,
    stop_server,
)

__all__ = [
    "SERVICE_NAME",
    "BanditServicer",
    "HealthMonitor",
    "LearnerThread",
    "ServerSettings",
    "add_servicer",
    "create_server",
    "open_engine",
    "open_store",
    "stop_server",
]
