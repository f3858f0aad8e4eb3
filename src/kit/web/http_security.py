"""Who may reach an HTTP service: the Host header it answers to, and the browser origins it allows.

Both are strict unless configured (`HttpAccessSettings`: GATEWAY_TRUSTED_HOSTS, RAG_CORS_ORIGINS):

- **Trusted hosts.** A request whose `Host` is not listed gets a 400 before any route runs. This
  stops DNS-rebinding attacks (a web page that resolves its own name to 127.0.0.1 and calls a
  service on a developer's laptop) and host-header tricks against anything that builds URLs.
  Probes and `/metrics` are exempt: a kubelet and Prometheus call a pod by its IP address, which
  no list of names can hold, and those paths answer nothing a caller could misuse.
- **CORS.** Without `cors_origins`, no CORS headers are sent and browsers refuse cross-origin
  calls; server-to-server clients (the SDKs, curl, the RAG service) are unaffected by CORS.

Starlette ships a `TrustedHostMiddleware`; this one exists for three differences that matter here:
the error body is the kit's JSON error shape, probe paths are exempt, and `[::1]:8000` parses.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from kit.core.settings import HttpAccessSettings

# Paths called by infrastructure by IP address (kubelet probes, Prometheus scrapes).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def host_of(header: str) -> str:
    """The host name of a `Host` header, without the port: `[::1]:8000` -> `::1`.

    >>> host_of("API.example.com:443"), host_of("[::1]:8000"), host_of("127.0.0.1")
    ('api.example.com', '::1', '127.0.0.1')
    """
    header = header.strip().lower()
    if header.startswith("["):  # an IPv6 literal keeps its colons inside the brackets
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(host: str, allowed: list[str]) -> bool:
    """Whether `host` matches one of `allowed`: exact, `*.domain` for subdomains, or `*`.

    >>> allowed = ["*.example.com"]
    >>> host_allowed("api.example.com", allowed), host_allowed("example.com", allowed)
    (True, False)
    """
    for pattern in allowed:
        pattern = pattern.lower()
        if pattern == "*" or host == pattern:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


class TrustedHostMiddleware:
    """Refuse requests whose Host header is not in `allowed` with a 400 and a JSON error body."""

    def __init__(self, app: ASGIApp, allowed: list[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in EXEMPT_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if host_allowed(host_of(header), self.allowed):
            await self.app(scope, receive, send)
            return
        message = (
            f"Host header {header!r} is not one this service answers to; add it to the "
            "service's TRUSTED_HOSTS setting (for example GATEWAY_TRUSTED_HOSTS=gateway,"
            "api.example.com)."
        )
        error = {"message": message, "type": "invalid_request_error", "param": None}
        body = json.dumps({"error": error | {"code": "untrusted_host"}}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 400, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def add_http_security(app: FastAPI, settings: HttpAccessSettings) -> None:
    """Install the host check and, when origins are configured, CORS. Call it last in a factory,
    so both run before everything else (Starlette runs the last-added middleware first)."""
    app.add_middleware(TrustedHostMiddleware, allowed=settings.trusted_hosts)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
            allow_credentials=False,  # API keys travel in headers, never in cookies
            max_age=600,
        )
