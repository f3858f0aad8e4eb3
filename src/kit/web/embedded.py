"""Serve an ASGI app inside this process, on a free 127.0.0.1 port, from a background thread.

This is how "embedded mode" runs a service with nothing to start by hand: the gateway client
serves the gateway app this way when `GATEWAY_URL` is unset, so notebooks, the RAG service and
tests talk to the very same HTTP API a deployed gateway exposes, streaming included.

    with EmbeddedServer(create_app(settings)) as server:
        httpx.get(f"{server.url}/healthz")

The port is bound before the server starts, so two servers never race for the same port.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp


class EmbeddedServer:
    def __init__(self, app: ASGIApp, *, startup_timeout_s: float = 120.0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,  # keep the process's logging (configure_logging) as it is
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name=f"embedded-server-{self.port}",
        )
        self._startup_timeout_s = startup_timeout_s

    def start(self) -> EmbeddedServer:
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the embedded server stopped during start-up; see the log")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"the embedded server did not start in {self._startup_timeout_s}s"
                )
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sock.close()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
