"""A container's health check: `python -m kit.cli.healthcheck gateway|rag`.

Exits 0 when the service answers `GET /healthz` on its configured port within a few seconds,
1 otherwise, which is the contract of Docker's `HEALTHCHECK` and of an exec probe. It reads the
port from the same settings the service reads (`GATEWAY_PORT`, `RAG_PORT`), so the check follows
the service when the port moves. The images have no curl: the standard library does the request.

Why /healthz and not /readyz: "healthy" here means the process serves HTTP. "Ready" (models
loaded, the index not empty) is a load balancer's question, asked by Kubernetes' readiness probe;
a RAG container with an empty index is waiting for an ingest, not broken.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kit.gateway.settings import GatewaySettings
    from kit.rag_service.settings import RagSettings

TIMEOUT_S = 3.0


def service_port(service: str) -> int:
    """The port `service` listens on, from its settings (imported lazily: each image has one)."""
    settings: GatewaySettings | RagSettings
    if service == "gateway":
        from kit.gateway.settings import GatewaySettings

        settings = GatewaySettings()
    elif service == "rag":
        from kit.rag_service.settings import RagSettings

        settings = RagSettings()
    else:
        raise ValueError(f"unknown service {service!r}: expected 'gateway' or 'rag'")
    return settings.port


def check(url: str, timeout: float = TIMEOUT_S) -> tuple[bool, str]:
    """Whether `url` answers 200, and a one-line reason for the container's health log."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http only)
            return response.status == 200, f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except OSError as exc:  # refused, timed out, reset: the service is not answering
        return False, f"{url} did not answer: {exc}"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m kit.cli.healthcheck gateway|rag", file=sys.stderr)
        return 2
    healthy, reason = check(f"http://127.0.0.1:{service_port(argv[0])}/healthz")
    print(reason)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
