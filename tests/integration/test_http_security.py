"""Both HTTP services answer only to trusted Host headers and send CORS headers only when told to.

The defaults are the ones a fresh clone runs with (the test environment's extra `testserver` host
is removed first); probes and /metrics stay reachable by IP address, as a kubelet calls them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from kit.core.errors import ConfigError
from kit.core.settings import load_settings
from kit.llm.gateway_client import GatewayClient
from kit.llm.local_client import LocalClient
from kit.rag.qdrant_store import QdrantStore
from kit.rag_service.app import create_app as create_rag_app
from kit.rag_service.settings import RagSettings
from tests.integration.gateway_helpers import AUTH, gateway_app
from tests.support.fake_openai import FakeUpstream

AppFactory = Callable[..., Any]


@pytest.fixture(params=["gateway", "rag"])
def make_app(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    upstream: FakeUpstream,
    local_client: LocalClient,
    monkeypatch: pytest.MonkeyPatch,
) -> AppFactory:
    """A factory of the service's app with the given settings, and nothing else overridden."""
    monkeypatch.delenv("GATEWAY_TRUSTED_HOSTS")
    monkeypatch.delenv("RAG_TRUSTED_HOSTS")
    if request.param == "gateway":
        return lambda **settings: gateway_app(tmp_path, upstream, local_client, **settings)

    def rag(**settings: Any) -> Any:
        rag_settings = RagSettings(
            _env_file=None,  # type: ignore[call-arg]
            environment="test",
            data_dir=tmp_path / "rag",
            **settings,
        )
        store = QdrantStore(QdrantClient(":memory:"), "docs")
        llm = GatewayClient("http://127.0.0.1:9", api_key="unused")  # never called here
        return create_rag_app(rag_settings, llm=llm, store=store, embedder=local_client.embedder)

    return rag


def test_an_unknown_host_is_refused_with_a_json_error_saying_how_to_allow_it(
    make_app: AppFactory,
) -> None:
    with TestClient(make_app(), base_url="http://evil.example") as client:
        refused = client.post("/v1/chat/completions", json={}, headers=AUTH)

    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "untrusted_host"
    assert "evil.example" in error["message"] and "TRUSTED_HOSTS" in error["message"]


def test_the_default_hosts_and_the_probes_are_reachable(make_app: AppFactory) -> None:
    app = make_app()
    with TestClient(app, base_url="http://127.0.0.1:8000") as local:
        assert local.get("/healthz").status_code == 200
        assert local.get("/no-such-route").status_code == 404  # passed the host check
    with TestClient(app, base_url="http://localhost") as local:
        assert local.get("/no-such-route").status_code == 404
    with TestClient(app, base_url="http://10.1.2.3:8000") as kubelet:  # a pod IP
        assert kubelet.get("/healthz").status_code == 200
        assert kubelet.get("/metrics").status_code == 200
        assert kubelet.get("/no-such-route").status_code == 400


def test_configured_hosts_match_exactly_or_by_subdomain_wildcard(make_app: AppFactory) -> None:
    app = make_app(trusted_hosts="gateway,*.example.com")
    for host, status in [
        ("http://gateway:8000", 404),
        ("http://api.example.com", 404),
        ("http://example.com", 400),  # `*.example.com` is subdomains only
        ("http://localhost", 400),  # the list replaces the defaults
    ]:
        with TestClient(app, base_url=host) as client:
            assert client.get("/no-such-route").status_code == status, host


def test_no_cors_headers_unless_origins_are_configured(make_app: AppFactory) -> None:
    preflight = {
        "origin": "https://app.example.com",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization,content-type",
    }
    with TestClient(make_app(), base_url="http://localhost") as client:
        closed = client.options("/healthz", headers=preflight)
        simple = client.get("/healthz", headers={"origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in closed.headers
    assert "access-control-allow-origin" not in simple.headers

    app = make_app(cors_origins="https://app.example.com")
    with TestClient(app, base_url="http://localhost") as client:
        allowed = client.options("/healthz", headers=preflight)
        other = client.options("/healthz", headers=preflight | {"origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in allowed.headers
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


def test_any_origin_is_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAG_CORS_ORIGINS", "*")
    with pytest.raises(ConfigError, match="list your front-end's origins"):
        load_settings(RagSettings, _env_file=None, environment="production")
