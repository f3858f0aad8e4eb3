"""A real Qdrant client that fails on cue, the way a client of a Qdrant server that went away fails.

A Qdrant server cannot run where these tests run, so an outage in the middle of a run is
simulated at the one seam that needs a server: the client. `FlakyQdrant` wraps a local-mode
`QdrantClient` (real storage, real search) and, while it is down, raises exactly what
qdrant-client raises when a server refuses the connection:
`ResponseHandlingException(httpx.ConnectError(...))`. Refused, reset and silent servers on
127.0.0.1 are tested for real, with `tests/support/servers.py:misbehaving_server`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import ResponseHandlingException

URL = "http://127.0.0.1:6333"  # where this client claims its server is, for the kit's messages


def refused() -> ResponseHandlingException:
    """What qdrant-client 1.20 raises for any call when nothing listens at QDRANT_URL."""
    return ResponseHandlingException(httpx.ConnectError("[Errno 111] Connection refused"))


class FlakyQdrant:
    """Passes every call to `client`, unless Qdrant is "down".

    >>> flaky = FlakyQdrant(QdrantClient(":memory:"), outage_after=("upsert", 2))
    >>> # two upserts succeed; the third, and every call after it, raises `refused()`
    >>> flaky.down = False  # ...until the test brings Qdrant back

    `calls` counts the calls that reached the real client, by method name.
    """

    def __init__(
        self,
        client: QdrantClient,
        *,
        down: bool = False,
        outage_after: tuple[str, int] | None = None,
    ) -> None:
        self.real = client
        self.down = down
        self.outage_after = outage_after
        self.calls: Counter[str] = Counter()
        # What the kit reads to name the server in its errors: this client stands for a server.
        self.init_options = {**client.init_options, "location": None, "url": URL}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.real, name)
        if name.startswith("_") or name == "close" or not callable(attribute):
            return attribute  # internals (the kit reads `_client` to tell local mode apart)
        return self._guarded(name, attribute)

    def _guarded(self, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if self.outage_after is not None:
                method_name, successes = self.outage_after
                if name == method_name and self.calls[name] >= successes:
                    self.down, self.outage_after = True, None  # from now on, until brought back
            if self.down:
                raise refused()
            result = method(*args, **kwargs)
            self.calls[name] += 1
            return result

        return call
