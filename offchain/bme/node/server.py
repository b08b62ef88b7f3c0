"""Running the node's app under uvicorn: in the foreground (`bme operator serve`) or on a thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from bme.node.errors import NodeError


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def uvicorn_config(app: FastAPI, host: str, port: int, *, log_level: str = "info") -> uvicorn.Config:
    # One event loop and h11 keep the node's own overhead small and predictable; the model work runs
    # elsewhere (the embedded backend's worker processes, or the upstream server), not on the loop.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="asyncio",
        http="h11",
        timeout_graceful_shutdown=5,
    )


class _StoppableServer(uvicorn.Server):
    """uvicorn's server, which also stops, gracefully, once `stop_when()` is true (checked every 0.1 s)."""

    def __init__(self, config: uvicorn.Config, stop_when: Callable[[], bool]) -> None:
        super().__init__(config)
        self._stop_when = stop_when

    async def on_tick(self, counter: int) -> bool:
        if self._stop_when():
            return True
        return await super().on_tick(counter)


def serve_forever(
    app: FastAPI,
    host: str,
    port: int,
    *,
    log_level: str = "info",
    stop_when: Callable[[], bool] | None = None,
) -> None:
    """Serves until interrupted (SIGINT/SIGTERM: shuts down gracefully and re-raises the signal), or until
    `stop_when()` is true (e.g. the model runtime cannot be restarted: shuts down gracefully and returns)."""
    config = uvicorn_config(app, host, port, log_level=log_level)
    server = _StoppableServer(config, stop_when) if stop_when is not None else uvicorn.Server(config)
    server.run()


class BackgroundServer:
    """The app served on a daemon thread at `url` (loopback), for benchmarks and tests.

    Use as a context manager; leaving it stops the server.
    """

    def __init__(self, app: FastAPI, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._server = uvicorn.Server(uvicorn_config(app, self.host, self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._run, name=f"bme-node-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self, timeout_s: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise NodeError(f"the node server did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
