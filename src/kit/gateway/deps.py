"""FastAPI dependencies: the gateway service object and the caller's key, as typed aliases.

They are `async def` although they do not await: FastAPI runs a plain `def` dependency in a
thread pool, and that hop cost ~15% of the gateway's CPU per request (profiled under load).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from kit.gateway.auth import OPEN_ACCESS, ApiKey, KeyStore
from kit.gateway.errors import AuthenticationFailed
from kit.gateway.service import Gateway


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def get_key(request: Request) -> ApiKey:
    """The caller's key from `Authorization: Bearer <key>`, or the open-mode caller."""
    if request.app.state.settings.auth == "open":
        return OPEN_ACCESS
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed(
            "Missing API key: send the header 'Authorization: Bearer <key>'. "
            "An operator creates keys with `kit gateway keys create`."
        )
    keys: KeyStore[ApiKey] = request.app.state.keys
    key = keys.find(token.strip())
    if key is None:
        raise AuthenticationFailed("Invalid API key.")
    return key


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
KeyDep = Annotated[ApiKey, Depends(get_key)]
