"""Process lifecycle: startup state and the drain period after SIGTERM.

On SIGTERM the service first drains: readiness answers 503 so the load balancer stops sending
traffic, while requests keep being served. After `SHUTDOWN_DRAIN_SECONDS` uvicorn's own
graceful shutdown runs: it stops accepting connections, lets in-flight requests finish (up
to `GRACEFUL_SHUTDOWN_TIMEOUT`), then the lifespan closes every resource and the process
exits 0. A second SIGTERM, or SIGINT (Ctrl+C), skips the drain.

The parts of the service (the database, clients, caches) add the resources they need with
`open_at_startup`; the lifespan opens them in that order and closes them in reverse.
"""

import asyncio
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import FrameType

import structlog

logger = structlog.get_logger(__name__)

# A resource a part needs while the service runs: opened at startup, closed at shutdown.
Resource = Callable[[], AbstractAsyncContextManager[object]]


@dataclass
class Lifecycle:
    started: bool = False
    draining: bool = False
    resources: list[Resource] = field(default_factory=list)

    def open_at_startup(self, resource: Resource) -> None:
        """Open `resource` at startup after those added before it; close it before them."""
        self.resources.append(resource)

    def drain_on_sigterm(self, seconds: float) -> None:
        """Wrap the server's SIGTERM handler so that a drain period comes first.

        Signal handlers belong to the main thread: an app run elsewhere (a test client's
        thread) keeps the server's handling as it is.
        """
        if seconds <= 0 or threading.current_thread() is not threading.main_thread():
            return
        previous = signal.getsignal(signal.SIGTERM)
        if not callable(previous):
            return
        loop = asyncio.get_running_loop()

        def drain(signum: int, frame: FrameType | None) -> None:
            logger.info("shutdown.draining", seconds=seconds)
            loop.call_later(seconds, previous, signum, frame)

        def on_sigterm(signum: int, frame: FrameType | None) -> None:
            # Runs between two bytecodes of whatever the main thread was doing, perhaps inside
            # the log's write lock: it takes no lock and leaves the logging to the event loop.
            if self.draining:
                previous(signum, frame)
                return
            self.draining = True
            loop.call_soon_threadsafe(drain, signum, frame)

        signal.signal(signal.SIGTERM, on_sigterm)
