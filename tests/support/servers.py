"""Start real servers on 127.0.0.1 for tests, on free ports, and stop them afterwards.

Real processes rather than mocks: a test of "Redis is reachable" against a real `redis-server`
proves what a mock cannot (the URL format, the client, the protocol).
"""

from __future__ import annotations

import importlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Literal

import httpx
import pytest


def require_tool(name: str, install: str) -> str:
    """The path of an executable. Missing: skip on a developer's machine, fail in CI.

    `.ci/run` installs every tool the tests use, so in CI (`CI` set) a missing tool is a broken
    set-up, and a skip there would count a test that never ran.
    """
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed; install it with: {install}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_module(name: str) -> ModuleType:
    """An importable development dependency. Missing: skip on a developer's machine, fail in CI,
    for the reason `require_tool` gives."""
    try:
        return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed; run `make setup` (it is in the dev extra)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _ephemeral_ports() -> range:
    """The ports the OS hands out to outgoing connections and to bind(0) (Linux: 32768-60999)."""
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 49152, 65535  # the IANA range, which macOS and Windows use
    return range(low, high + 1)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, for a process to bind soon.

    Chosen at random outside the OS's ephemeral range rather than by bind(0): a port from that
    range, free when we look, can be taken a moment later as the local end of any outgoing
    connection (this suite opens thousands), and the server meant for it then fails to start
    with "address already in use". Random, so parallel test workers rarely pick the same one;
    checked by binding it, so it is free now."""
    ephemeral = _ephemeral_ports()
    candidates = [p for p in range(10_000, 32_768) if p not in ephemeral]
    for port in random.sample(candidates, 50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port found on 127.0.0.1 in 50 tries")


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Block until something accepts connections on `port`; fail early if `process` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before listening"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


@contextmanager
def running(
    command: list[str],
    port: int,
    log_path: Path,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; its output goes to `log_path` for post-mortems."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for_port(port, process, timeout)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _redis_command(binary: str, port: int, folder: Path) -> list[str]:
    """redis-server on 127.0.0.1:`port`, with no persistence (each start begins empty)."""
    return [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]


@contextmanager
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free loopback port, with no persistence; yields its URL."""
    binary = require_tool("redis-server", "apt-get install redis-server (or brew install redis)")
    port = free_port()
    with running(_redis_command(binary, port, tmp_path), port, tmp_path / "redis.log"):
        yield f"redis://127.0.0.1:{port}/0"


class StoppableRedis:
    """A real redis-server that a test stops and starts again on the same port: a Redis outage.

    Without persistence, a restarted server begins empty, as a Redis that lost its data would.
    """

    def __init__(self, binary: str, folder: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._binary = binary
        self._folder = folder
        self._starts = 0
        self._process: ExitStack | None = None

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("redis-server is already running; stop() it first")
        self._starts += 1
        log_path = self._folder / f"redis-{self._starts}.log"  # one log per run, for post-mortems
        stack = ExitStack()
        stack.enter_context(
            running(_redis_command(self._binary, self.port, self._folder), self.port, log_path)
        )
        self._process = stack

    def stop(self) -> None:
        """Terminate the server and wait until it has exited (its port refuses connections)."""
        if self._process is not None:
            self._process.close()
            self._process = None


@contextmanager
def stoppable_redis_server(tmp_path: Path) -> Iterator[StoppableRedis]:
    """A started `StoppableRedis`, stopped when the block ends whatever state the test left."""
    binary = require_tool("redis-server", "apt-get install redis-server (or brew install redis)")
    server = StoppableRedis(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mlflow_server(port: int, backend_uri: str, *options: str) -> tuple[list[str], dict[str, str]]:
    """The command and environment of a real `mlflow server` on 127.0.0.1, for `running(...)`.

    One worker and no job execution: ~575 MB instead of ~3.6 GB with the defaults (measured)."""
    import sys

    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        backend_uri,
        *options,
    ]
    env = os.environ | {
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    return command, env


# Prefixes of the variables the kit reads; cleared for every test (tests/conftest.py) so results
# do not depend on the shell they are run from.
KIT_VARIABLE_PREFIXES = ("KIT_", "GATEWAY_", "RAG_", "QDRANT_", "REDIS_", "MLFLOW_TRACKING")


def subprocess_env(folder: Path) -> dict[str, str]:
    """Environment for running `kit` in a subprocess: none of the shell's kit variables, state
    in `folder`, and spans stored nowhere unless a test of tracing says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(KIT_VARIABLE_PREFIXES)}
    return env | {
        "KIT_ENV": "test",
        "KIT_DATA_DIR": str(folder / "data"),
        "KIT_CACHE_DIR": str(folder / "cache"),
        "KIT_TRACE_EXPORTER": "none",
    }


def create_gateway_key(kit: str, env: dict[str, str], cwd: Path, *options: str) -> str:
    """`kit gateway keys create --id ... [options]` as an operator runs it; returns the key."""
    return _create_key(kit, "gateway", env, cwd, *options)


def create_rag_key(kit: str, env: dict[str, str], cwd: Path, *options: str) -> str:
    """`kit rag keys create --id ... [--admin]` as an operator runs it; returns the key."""
    return _create_key(kit, "rag", env, cwd, *options)


def _create_key(kit: str, service: str, env: dict[str, str], cwd: Path, *options: str) -> str:
    created = subprocess.run(
        [kit, service, "keys", "create", *options],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1]  # the key is printed last, on its own line


@dataclass
class Served:
    """A `kit serve ...` process: where it answers, and the file its output goes to."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def kit_service(
    kit: str,
    service: Literal["gateway", "rag"],
    env: dict[str, str],
    log_path: Path,
    *,
    cwd: Path,
    ready: str = "/readyz",
    timeout: float = 120.0,
) -> Iterator[Served]:
    """Run `kit serve SERVICE` on a free 127.0.0.1 port until the block ends, as an operator
    runs it; yields once `ready` answers 200 (the local models loaded, say). On exit it sends
    SIGTERM, as a container runtime does, and waits for the process to finish its requests."""
    port = free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [kit, "serve", service, "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    served = Served(f"http://127.0.0.1:{port}", process, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{served.url}{ready}", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, f"kit serve {service} exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"not ready in {timeout} s:\n{log_path.read_text()}"
            time.sleep(0.2)
        yield served
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def misbehaving_server(mode: Literal["close", "silent"]) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that is not the server a client expects; yields its port.

    close:  accepts each connection and closes it at once (a crashing or restarting server)
    silent: accepts and never answers (a hung server, or a dropped network): clients must time out
    For "nothing listens" (connection refused), use `free_port()` and start nothing.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)  # lets the thread notice the block has ended
    held: list[socket.socket] = []
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            if mode == "close":
                connection.close()
            else:
                held.append(connection)

    thread = threading.Thread(target=serve, daemon=True, name=f"misbehaving-{mode}")
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join(timeout=5)
        for connection in held:
            connection.close()
        listener.close()


def require_spark() -> None:
    """pyspark and Java, for the spark engine's tests, at a module's top. Missing: skip the
    module on a developer's machine; in CI (`make setup` and `.ci/run` install both) fail it,
    so a test that never ran is never counted."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is not None and shutil.which("java") is not None:
        return
    message = (
        "the spark engine needs pyspark (pip install -e '.[spark]') and Java "
        "(apt-get install default-jre-headless)"
    )
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message, allow_module_level=True)
