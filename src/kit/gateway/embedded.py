"""The gateway inside another process: what `GATEWAY_URL` unset means.

    server, key = start_in_process(settings)   # the real app, on a free 127.0.0.1 port
    ...                                        # call server.url with `Authorization: Bearer key`
    server.stop()

The same app `kit serve gateway` runs (routes, fallbacks, caching, metrics), with one ephemeral
key made for the caller, so nothing else on the machine can use it. Which process wants an
embedded gateway is decided above this package (kit.runtime), never by the gateway itself.
"""

from __future__ import annotations

import time

import httpx

from kit.core.errors import ModelUnavailableError
from kit.core.settings import KitSettings, load_settings
from kit.gateway.app import create_app
from kit.gateway.auth import ApiKey, KeyStore, hash_key, new_key
from kit.gateway.settings import GatewaySettings
from kit.web.embedded import EmbeddedServer


def start_in_process(
    settings: KitSettings, ready_timeout_s: float = 300.0
) -> tuple[EmbeddedServer, str]:
    """Start the gateway app in this process; returns the running server and the only key it
    accepts. Blocks until /readyz answers 200 (the local models loaded), as a load balancer
    would wait: loading them while answering would slow both down."""
    key = new_key()
    gateway_settings = load_settings(
        GatewaySettings, data_dir=settings.data_dir, cache_dir=settings.cache_dir, auth="keys"
    )
    keys = KeyStore([ApiKey(id="embedded", sha256=hash_key(key))])
    server = EmbeddedServer(create_app(gateway_settings, keys=keys)).start()
    deadline = time.monotonic() + ready_timeout_s
    while httpx.get(f"{server.url}/readyz", timeout=5).status_code != 200:
        if time.monotonic() > deadline:
            server.stop()
            raise ModelUnavailableError(
                f"The gateway started in this process was not ready after {ready_timeout_s:.0f} s "
                "(its /readyz never answered 200); `kit doctor` checks the local models."
            )
        time.sleep(0.05)
    return server, key
