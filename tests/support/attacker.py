"""An attacker's listener on 127.0.0.1: it records every connection and every byte sent to it.

Attack tests point a request at it (as `api_base`, an image URL, a callback) and then assert
that it received nothing. It answers each connection with an empty HTTP 200 after reading what
arrives, so a client that does reach it carries on as it would with a real server (and its
request, headers included, is recorded in full: what a real attacker would have read).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class Listener:
    port: int
    received: list[bytes] = field(default_factory=list)  # one entry per connection

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def everything(self) -> bytes:
        return b"".join(self.received)


@contextmanager
def attacker_listener() -> Iterator[Listener]:
    """A `Listener` serving in a background thread until the block ends."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)  # lets the thread notice the block has ended
    listener = Listener(server.getsockname()[1])
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                connection, _ = server.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(1.0)
                data = b""
                try:
                    while chunk := connection.recv(65536):
                        data += chunk
                        if b"\r\n\r\n" in data:  # the headers are in; take what body came
                            break
                    connection.sendall(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b"content-length: 2\r\nconnection: close\r\n\r\n{}"
                    )
                except OSError:
                    pass
                listener.received.append(data)

    thread = threading.Thread(target=serve, daemon=True, name="attacker-listener")
    thread.start()
    try:
        yield listener
    finally:
        stopping.set()
        thread.join(timeout=5)
        server.close()
