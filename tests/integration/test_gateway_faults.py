"""The gateway when what it depends on fails: upstreams that refuse, hang or die mid-stream, and
a Redis that goes away and comes back. Real servers on 127.0.0.1, stopped for real.

Timing assertions are bounds, not measurements: a generous multiple of the configured timeout,
so a busy CI machine does not fail them, while a request that hangs still does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from kit.gateway.app import create_app
from kit.gateway.auth import ApiKey, KeyStore, hash_key
from kit.gateway.settings import GatewaySettings
from kit.llm.local_client import LocalClient
from tests.integration.gateway_helpers import AUTH, KEY, calls_to, chat_body, gateway_app
from tests.support.fake_openai import FakeUpstream, hang, running_fake_upstream, slow_stream
from tests.support.servers import free_port, stoppable_redis_server

DETERMINISTIC = chat_body("What is 2 + 2?", temperature=0)
# $1 a token, so spending is a whole number: each fake answer is 12 prompt + 5 completion tokens.
PRICE = {"input_per_mtok": 1e6, "output_per_mtok": 1e6}
USD_PER_ANSWER = 17.0


def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true after {seconds}s")
        time.sleep(0.1)


def metric(client: TestClient, name: str) -> float:
    line = next(
        line for line in client.get("/metrics").text.splitlines() if line.startswith(name + " ")
    )
    return float(line.rsplit(" ", 1)[1])


def log_events(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


# --- Upstreams that refuse, hang or die ----------------------------------------------------------


def gateway_with_dead(
    tmp_path: Path, upstream: FakeUpstream, local: LocalClient, dead: set[str], **models: Any
) -> FastAPI:
    """A gateway whose deployments in `dead` point at a port nothing listens on."""
    app_dir = tmp_path / "gateway"
    gateway_app(app_dir, upstream, local, models=models)  # writes the models file
    spec = yaml.safe_load((app_dir / "models.yaml").read_text())
    for name in dead:
        spec["deployments"][name]["api_base"] = f"http://127.0.0.1:{free_port()}/v1"
    (app_dir / "models.yaml").write_text(yaml.safe_dump(spec))
    settings = GatewaySettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=app_dir / "data",
        cache_dir=app_dir / "cache",
        models_file=app_dir / "models.yaml",
    )
    keys = KeyStore([ApiKey(id="team-a", sha256=hash_key(KEY))])
    return create_app(settings, local=local, environ={}, keys=keys)


def test_a_deployment_that_refuses_connections_falls_back_to_the_next(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with TestClient(gateway_with_dead(tmp_path, upstream, local_client, {"a"})) as client:
        response = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
        fallbacks = metric(
            client,
            'gateway_fallbacks_total{alias="chain",from_deployment="a",reason="connection"}',
        )

    assert response.status_code == 200
    assert response.headers["x-kit-deployment"] == "b"
    assert response.headers["x-kit-fallbacks"] == "1"
    assert fallbacks == 1
    assert calls_to(upstream, "fake-b") == 1


def test_every_deployment_refusing_connections_gives_a_clear_502(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    app = gateway_with_dead(tmp_path, upstream, local_client, {"a", "b"})
    with TestClient(app) as client:
        plain = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
        # A stream fails the same way: nothing has been sent yet, so it can still be a 502.
        streamed = client.post(
            "/v1/chat/completions", json=chat_body("again", stream=True), headers=AUTH
        )

    for response in (plain, streamed):
        assert response.status_code == 502
        error = response.json()["error"]
        assert (error["type"], error["code"]) == ("upstream_error", "upstream_failed")
        assert "No deployment of 'chain' answered" in error["message"]
        assert "a: ClientConnectorError" in error["message"]
        assert "b: ClientConnectorError" in error["message"]
    assert upstream.calls() == 0


def test_hanging_deployments_give_504_in_bounded_time_or_fall_back(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    timeout_s = 0.5
    app = gateway_app(tmp_path, upstream, local_client, models={"timeout_s": timeout_s})
    with TestClient(app) as client:
        upstream.script(hang(30), hang(30))
        started = time.monotonic()
        both_hang = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
        seconds = time.monotonic() - started
        upstream.script(hang(30))
        one_hangs = client.post("/v1/chat/completions", json=chat_body("next"), headers=AUTH)

    assert both_hang.status_code == 504
    error = both_hang.json()["error"]
    assert error["code"] == "upstream_timeout"
    assert "a: no answer within 0.5s" in error["message"]
    assert "b: no answer within 0.5s" in error["message"]
    # Two deployments x 0.5 s = 1 s expected; 10x that is still far below the 30 s hang.
    assert seconds < 20 * timeout_s
    assert one_hangs.status_code == 200 and one_hangs.headers["x-kit-deployment"] == "b"


def read_stream(client: TestClient, body: dict[str, Any], after_first: Callable[[], None]) -> str:
    """The text of a streamed answer; `after_first` runs once the first event has arrived."""
    events: list[str] = []
    with client.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(line)
                if len(events) == 1:
                    after_first()
    return "\n".join(events)


def test_a_stream_whose_upstream_hangs_mid_stream_ends_without_done(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    timeout_s = 0.5
    # The first words come at once, then the upstream goes silent for longer than the timeout.
    upstream.script(slow_stream("one two three", interval=30))
    app = gateway_app(tmp_path, upstream, local_client, models={"timeout_s": timeout_s})
    # The failure happens after the 200 and the first bytes: the gateway logs it and ends the
    # stream; the test client would otherwise re-raise it here.
    with TestClient(app, raise_server_exceptions=False) as client:
        started = time.monotonic()
        text = read_stream(client, chat_body(model="solo", stream=True), lambda: None)
        seconds = time.monotonic() - started
        failed = metric(
            client, 'gateway_requests_total{alias="solo",deployment="a",status="error"}'
        )

    assert '"role":"assistant"' in text  # the first event arrived
    assert "[DONE]" not in text  # so a client cannot take the cut answer for a whole one
    assert '"code":"stream_interrupted"' in text  # an error event says why it ended
    assert seconds < 20 * timeout_s
    assert failed == 1


def test_a_stream_whose_upstream_dies_mid_stream_ends_without_done(
    tmp_path: Path, local_client: LocalClient
) -> None:
    words = " ".join(f"w{i}" for i in range(100))
    with ExitStack() as upstream_running:
        dying = upstream_running.enter_context(running_fake_upstream())
        dying.script(slow_stream(words, interval=0.1))  # 10 s if it ran to the end
        app = gateway_app(tmp_path, dying, local_client, models={"timeout_s": 5.0})
        # Stopping the fake upstream closes its open connections (after its 1 s grace period).
        # It blocks until then, so it runs in another thread while this one reads the stream.
        stopping = threading.Thread(target=upstream_running.close)
        with TestClient(app, raise_server_exceptions=False) as client:
            started = time.monotonic()
            text = read_stream(client, chat_body(model="solo", stream=True), stopping.start)
            seconds = time.monotonic() - started
            stopping.join()

    assert '"role":"assistant"' in text  # the answer had started
    assert "w99" not in text and "[DONE]" not in text
    assert '"code":"stream_interrupted"' in text
    assert seconds < 9  # it ended when the upstream died, not when the answer would have


# --- Redis goes away and comes back --------------------------------------------------------------


def redis_spent(url: str) -> float:
    """The key's shared spending, read from Redis as another replica would."""
    with redis.Redis.from_url(url) as client:
        return float(client.get("kit-budget:team-a") or 0.0)


def test_a_redis_outage_degrades_to_memory_then_recovers(
    tmp_path: Path,
    upstream: FakeUpstream,
    local_client: LocalClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = ApiKey(id="team-a", sha256=hash_key(KEY), rpm=4, budget_usd=1000.0)
    with stoppable_redis_server(tmp_path) as server:

        def replica(name: str) -> Any:
            return gateway_app(
                tmp_path / name,
                upstream,
                local_client,
                key=key,
                models={"price": PRICE},
                redis_url=server.url,
                log_format="json",
            )

        one, two = replica("one"), replica("two")
        with TestClient(one) as first, TestClient(two) as second:
            wait_until(lambda: first.get("/readyz").json()["status"] == "ready")  # models loaded
            before = first.post("/v1/chat/completions", json=chat_body("0"), headers=AUTH)
            capsys.readouterr()

            server.stop()
            during = [
                first.post("/v1/chat/completions", json=DETERMINISTIC, headers=AUTH),  # miss
                first.post("/v1/chat/completions", json=DETERMINISTIC, headers=AUTH),  # hit
                first.post("/v1/chat/completions", json=chat_body("1"), headers=AUTH),
                first.post("/v1/chat/completions", json=chat_body("2"), headers=AUTH),
            ]
            over_the_limit = first.post("/v1/chat/completions", json=chat_body("3"), headers=AUTH)
            degraded = first.get("/readyz")
            up_while_down = metric(first, "gateway_redis_up")

            server.start()  # empty: a Redis restarted without persistence
            wait_until(lambda: first.get("/readyz").json()["status"] == "ready")
            handed_back = redis_spent(server.url)
            after = first.post("/v1/chat/completions", json=chat_body("4"), headers=AUTH)
            spent_after = redis_spent(server.url)
            # An entry that replica two writes to Redis is a hit on replica one: shared again.
            shared = chat_body("What is 3 + 3?", temperature=0)
            written = second.post("/v1/chat/completions", json=shared, headers=AUTH)
            seen = first.post("/v1/chat/completions", json=shared, headers=AUTH)
            up_again = metric(first, "gateway_redis_up")
        events = [line["event"] for line in log_events(capsys.readouterr().err)]

    assert before.status_code == 200
    assert [r.status_code for r in during] == [200, 200, 200, 200]  # served, never a 500
    assert [r.headers["x-kit-cache"] for r in during[:2]] == ["miss", "hit"]  # memory cache
    assert over_the_limit.status_code == 429  # rpm=4 still holds, counted in memory
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["checks"]["redis"] == "degraded"  # why: in the log, not the answer
    assert (up_while_down, up_again) == (0, 1)
    # Three answers were paid for during the outage (the cache hit was free): added on recovery.
    assert handed_back == 3 * USD_PER_ANSWER
    assert after.status_code == 200 and spent_after == 4 * USD_PER_ANSWER
    assert (written.headers["x-kit-cache"], seen.headers["x-kit-cache"]) == ("miss", "hit")
    # One line when it degraded and one when it recovered, not one per request.
    assert events.count("redis_degraded") == 1 and events.count("redis_recovered") == 1


class GatedLocalClient(LocalClient):
    """The real local models, whose loading waits for `loaded.set()`: a slow start, on demand."""

    def __init__(self, real: LocalClient) -> None:
        super().__init__(real.settings)
        self.real = real
        self.loaded = threading.Event()

    @property
    def chat_engine(self) -> Any:
        self.loaded.wait()
        return self.real.chat_engine

    @property
    def embedder(self) -> Any:
        self.loaded.wait()
        return self.real.embedder


def test_redis_down_at_start_up_serves_degraded_and_readyz_waits_for_local_models(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    gated = GatedLocalClient(local_client)
    with stoppable_redis_server(tmp_path) as server:
        server.stop()
        app = gateway_app(tmp_path, upstream, gated, models={"price": PRICE}, redis_url=server.url)
        try:
            with TestClient(app) as client:
                loading = client.get("/readyz")
                served = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
                gated.loaded.set()
                wait_until(lambda: client.get("/readyz").json()["status"] == "degraded")
                server.start()
                wait_until(lambda: client.get("/readyz").json()["status"] == "ready")
                handed_back = redis_spent(server.url)
        finally:
            gated.loaded.set()  # never leave the warm-up thread waiting

    assert loading.status_code == 503  # loading models: not ready, whatever Redis says
    assert loading.json()["status"] == "not ready"
    assert loading.json()["checks"]["local_models"] == "loading"
    assert loading.json()["checks"]["redis"].startswith("degraded")
    assert served.status_code == 200  # started and served without Redis
    assert handed_back == USD_PER_ANSWER  # what it spent before Redis existed is not lost
