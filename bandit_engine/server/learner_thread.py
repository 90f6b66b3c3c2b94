"""A learner on its own thread and event loop, beside a server (Kafka mode)."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING, Any

from bandit_engine.stream import KafkaSettings

if TYPE_CHECKING:
    from bandit_engine.stream.learner import Learner

log = logging.getLogger(__name__)

__all__ = ["LearnerThread"]


class LearnerThread:
    """A learner on its own thread and event loop, beside a server."""

    def __init__(self, mysql_dsn: str, kafka: KafkaSettings, **kw: Any) -> None:
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Kafka mode only: the driver and the learner load when one starts
        from bandit_engine.store import MySQLStore
        from bandit_engine.stream.learner import Learner

        self.learner: Learner = Learner(MySQLStore(mysql_dsn), kafka, **kw)
        self._thread = threading.Thread(target=self._run, name="learner", daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait(30)

    def _run(self) -> None:
        async def main() -> None:
            self._stop = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._started.set()
            await self.learner.run(self._stop)

        try:
            asyncio.run(main())
        except Exception:
            log.exception("learner stopped with an error")
            self._started.set()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self.learner.store.close()
