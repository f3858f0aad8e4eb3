"""The shared HTTP helpers: request ids in headers and logs, Prometheus metrics with no redirect."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from kit.core.logging import configure_logging, get_logger
from kit.core.settings import KitSettings
from kit.web.metrics import HttpMetrics, HttpMetricsMiddleware, add_metrics_route
from kit.web.request_id import RequestIdMiddleware


def make_app() -> tuple[FastAPI, CollectorRegistry]:
    """A tiny service wired the way the kit's services are."""
    app = FastAPI()
    registry = CollectorRegistry()
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry, service="demo"))
    app.add_middleware(RequestIdMiddleware)
    add_metrics_route(app, registry)

    @app.get("/items/{item_id}")
    def read_item(item_id: int) -> dict[str, int]:
        get_logger("demo").info("reading_item", item_id=item_id)
        return {"item_id": item_id}

    return app, registry


def test_a_request_id_is_made_returned_and_logged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(KitSettings(_env_file=None, log_format="json"))
    app, _ = make_app()

    response = TestClient(app).get("/items/7")

    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    logged = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]
    assert {"event": "reading_item", "request_id": request_id}.items() <= logged[0].items()


def test_a_callers_safe_request_id_is_kept_and_an_unsafe_one_replaced() -> None:
    client = TestClient(make_app()[0])

    kept = client.get("/items/1", headers={"X-Request-ID": "lb-7f3a:42"})
    replaced = client.get("/items/1", headers={"X-Request-ID": 'x" injected=1'})

    assert kept.headers["x-request-id"] == "lb-7f3a:42"
    assert replaced.headers["x-request-id"] != 'x" injected=1'
    assert len(replaced.headers["x-request-id"]) == 32


def test_metrics_count_requests_by_route_template_without_redirect() -> None:
    app, registry = make_app()
    client = TestClient(app)

    for item in (1, 2, 3):
        client.get(f"/items/{item}")
    client.get("/items/not-a-number")  # 422
    client.get("/nowhere")  # 404

    response = client.get("/metrics", follow_redirects=False)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")

    def count(route: str, status: str) -> float | None:
        return registry.get_sample_value(
            "http_requests_total",
            {"service": "demo", "method": "GET", "route": route, "status": status},
        )

    assert count("/items/{item_id}", "200") == 3
    assert count("/items/{item_id}", "422") == 1
    assert count("<unmatched>", "404") == 1
    assert 'route="/items/{item_id}"' in response.text
    latency = registry.get_sample_value(
        "http_request_duration_seconds_count",
        {"service": "demo", "method": "GET", "route": "/items/{item_id}"},
    )
    assert latency == 4
