"""Exceptions raised by bandit-engine.

The tree::

    BanditError
    ├── InvalidArgument      bad input; maps to gRPC INVALID_ARGUMENT
    ├── NotFound             unknown experiment, arm or event; NOT_FOUND
    ├── AlreadyExists        experiment id taken; ALREADY_EXISTS
    ├── ResourceExhausted    request over a configured limit; RESOURCE_EXHAUSTED
    ├── FailedPrecondition   the object cannot serve now (a stored experiment
    │                        that could not be loaded); FAILED_PRECONDITION
    ├── Unavailable          a dependency (the log) cannot take the request; UNAVAILABLE
    └── StoreError           the state store failed; UNAVAILABLE

Every error message names the bad value. Raising one of these before any
state is touched is the contract: bad input changes no state.
"""

from __future__ import annotations


class BanditError(Exception):
    """Base class of every error bandit-engine raises on purpose."""


class InvalidArgument(BanditError, ValueError):
    """A request or configuration value is malformed or out of range."""


class NotFound(BanditError, KeyError):
    """An experiment, arm or event id is unknown."""

    def __str__(self) -> str:  # KeyError would quote its message
        return str(self.args[0]) if self.args else ""


class AlreadyExists(BanditError):
    """An object with this id exists already."""


class ResourceExhausted(BanditError):
    """A request exceeds a configured limit (candidates, features, size)."""


class FailedPrecondition(BanditError):
    """The object named exists but is not in a state to serve the call (a
    stored experiment the engine could not load: the message says why)."""


class Unavailable(BanditError):
    """A dependency (the Kafka log) cannot take the request now; retry later."""


class StoreError(BanditError):
    """The state store failed (I/O, lost connection, corrupt row)."""
