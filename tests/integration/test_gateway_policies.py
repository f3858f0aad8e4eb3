"""Caching, single flight, keys, rate limits, budgets, metrics and logs, observed from outside."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from kit.gateway.auth import ApiKey, hash_key
from kit.llm.local_client import LocalClient
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import AUTH, KEY, chat_body, gateway_app
from tests.support.fake_openai import FakeUpstream, error, ok
from tests.support.servers import redis_server

DETERMINISTIC = chat_body("What is 2 + 2?", temperature=0)


def test_a_repeated_deterministic_request_is_served_from_cache(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        first = client.post("/v1/chat/completions", json=DETERMINISTIC, headers=AUTH)
        # Same request, keys in another order and 0 written as 0.0: the same cache entry.
        second = client.post(
            "/v1/chat/completions",
            headers=AUTH,
            json={"temperature": 0.0, "messages": DETERMINISTIC["messages"], "model": "chain"},
        )
        bypass = client.post(
            "/v1/chat/completions", json=DETERMINISTIC, headers=AUTH | {"cache-control": "no-cache"}
        )
        sampled = [
            client.post("/v1/chat/completions", json=chat_body(temperature=0.8), headers=AUTH)
            for _ in range(2)
        ]

    assert [first.headers["x-kit-cache"], second.headers["x-kit-cache"]] == ["miss", "hit"]
    assert second.json() == first.json()
    assert bypass.headers["x-kit-cache"] == "bypass"
    assert [r.headers["x-kit-cache"] for r in sampled] == ["bypass", "bypass"]
    assert upstream.calls() == 1 + 1 + 2  # miss, bypass, two sampled requests


def test_the_redis_cache_is_shared_by_two_gateway_instances(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with redis_server(tmp_path) as redis_url:
        one = gateway_app(tmp_path / "one", upstream, local_client, redis_url=redis_url)
        two = gateway_app(tmp_path / "two", upstream, local_client, redis_url=redis_url)
        with TestClient(one) as first, TestClient(two) as second:
            miss = first.post("/v1/chat/completions", json=DETERMINISTIC, headers=AUTH)
            hit = second.post("/v1/chat/completions", json=DETERMINISTIC, headers=AUTH)
            ready = second.get("/readyz").json()

    assert (miss.headers["x-kit-cache"], hit.headers["x-kit-cache"]) == ("miss", "hit")
    assert hit.json()["choices"] == miss.json()["choices"]
    assert upstream.calls() == 1
    assert ready["checks"]["redis"] == "ready"


def test_a_burst_of_identical_requests_costs_one_upstream_call(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.default = ok("coalesced", delay=0.5)  # slow enough for the burst to overlap

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, headers=AUTH, timeout=10) as client:
            return await asyncio.gather(
                *[client.post("/v1/chat/completions", json=DETERMINISTIC) for _ in range(10)]
            )

    with EmbeddedServer(gateway_app(tmp_path, upstream, local_client)) as server:
        responses = asyncio.run(burst(server.url))

    assert {r.status_code for r in responses} == {200}
    assert {r.json()["choices"][0]["message"]["content"] for r in responses} == {"coalesced"}
    assert sorted(r.headers["x-kit-cache"] for r in responses) == ["miss"] + ["shared"] * 9
    assert upstream.calls() == 1


def test_a_request_without_a_valid_key_is_refused_with_401(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        missing = client.post("/v1/chat/completions", json=chat_body())
        wrong = client.post(
            "/v1/chat/completions",
            json=chat_body(),
            headers={"authorization": "Bearer sk-kit-guess"},
        )
        models = client.get("/v1/models")
        health = client.get("/healthz")

    assert missing.status_code == wrong.status_code == models.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    assert health.status_code == 200  # probes need no key
    assert upstream.calls() == 0


def test_over_the_request_rate_gives_429_with_retry_after(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    limited = ApiKey(id="team-a", sha256=hash_key(KEY), rpm=2)
    with TestClient(gateway_app(tmp_path, upstream, local_client, key=limited)) as client:
        statuses = [
            client.post("/v1/chat/completions", json=chat_body(f"q{i}"), headers=AUTH)
            for i in range(3)
        ]
        metrics = client.get("/metrics").text

    assert [r.status_code for r in statuses] == [200, 200, 429]
    refused = statuses[2]
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert 'gateway_rejected_total{key_id="team-a",limit="rate"} 1.0' in metrics
    assert upstream.calls() == 2


def test_over_the_token_rate_gives_429(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.default = ok("a b c d e f g h", prompt_tokens=40)  # 48 tokens a request
    limited = ApiKey(id="team-a", sha256=hash_key(KEY), tpm=60)
    with TestClient(gateway_app(tmp_path, upstream, local_client, key=limited)) as client:
        first = client.post("/v1/chat/completions", json=chat_body("one"), headers=AUTH)
        second = client.post("/v1/chat/completions", json=chat_body("two"), headers=AUTH)
        third = client.post("/v1/chat/completions", json=chat_body("three"), headers=AUTH)

    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert "tokens per minute" in third.json()["error"]["message"]


def test_a_spent_budget_is_refused_with_a_clear_error(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    # $10 per million tokens each way; 12 prompt + 6 completion tokens = $0.00018 a request.
    # Each request first holds its worst case: "qN" (1 token, estimated) + max_tokens=6, $0.00007.
    price = {"input_per_mtok": 10.0, "output_per_mtok": 10.0}
    upstream.default = ok("one two three four five six", prompt_tokens=12)
    budgeted = ApiKey(id="team-a", sha256=hash_key(KEY), budget_usd=0.0003)
    app = gateway_app(tmp_path, upstream, local_client, key=budgeted, models={"price": price})
    with TestClient(app) as client:
        responses = [
            client.post("/v1/chat/completions", json=chat_body(f"q{i}", max_tokens=6), headers=AUTH)
            for i in range(3)
        ]
        metrics = client.get("/metrics").text

    assert [r.status_code for r in responses] == [200, 200, 429]
    error_body = responses[2].json()["error"]
    assert error_body["type"] == "insufficient_quota" and error_body["code"] == "budget_exceeded"
    assert "has $0.0000 left of its $0.0003 budget" in error_body["message"]
    assert "could cost up to $0.0001" in error_body["message"]
    assert 'gateway_cost_usd_total{alias="chain",deployment="a",key_id="team-a"} 0.00036' in metrics
    assert upstream.calls() == 2
    # The share spent, for the GatewayBudgetNearlySpent alert: $0.00036 of $0.0003.
    used = re.search(r'gateway_key_budget_used_ratio\{key_id="team-a"\} (\S+)', metrics)
    assert used is not None and float(used.group(1)) == pytest.approx(1.2)


def test_metrics_after_a_known_sequence(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.script(error(500))  # request 1: a fails, b answers
    upstream.default = ok("four words are here", prompt_tokens=10)
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        client.post("/v1/chat/completions", json=DETERMINISTIC, headers=AUTH)  # miss, fallback
        client.post("/v1/chat/completions", json=DETERMINISTIC, headers=AUTH)  # hit
        client.post("/v1/chat/completions", json=chat_body(model="gpt-9"), headers=AUTH)  # 404
        text = client.get("/metrics").text

    def value(sample: str) -> float:
        line = next(line for line in text.splitlines() if line.startswith(sample + " "))
        return float(line.rsplit(" ", 1)[1])

    assert (
        value('gateway_fallbacks_total{alias="chain",from_deployment="a",reason="server_error"}')
        == 1
    )
    assert value('gateway_requests_total{alias="chain",deployment="b",status="200"}') == 1
    assert value('gateway_tokens_total{alias="chain",deployment="b",kind="prompt"}') == 10
    assert value('gateway_tokens_total{alias="chain",deployment="b",kind="completion"}') == 4
    assert value('gateway_cache_total{alias="chain",result="miss"}') == 1
    assert value('gateway_cache_total{alias="chain",result="hit"}') == 1
    assert (
        value(
            'http_requests_total{method="POST",route="/v1/chat/completions",service="gateway",status="404"}'
        )
        == 1
    )
    assert value('gateway_request_duration_seconds_count{alias="chain",deployment="b"}') == 2


def test_one_log_line_per_request_with_redacted_prompts_and_no_key(
    tmp_path: Path,
    upstream: FakeUpstream,
    local_client: LocalClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    upstream.default = ok("Noted: mail jo@example.com")
    app = gateway_app(tmp_path, upstream, local_client, log_prompts=True, log_format="json")
    secret = "my card is 4111 1111 1111 1111, call me on +44 20 7946 0958 or jo@example.com"
    with TestClient(app) as client:
        capsys.readouterr()
        client.post("/v1/chat/completions", json=chat_body(secret), headers=AUTH)

    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    [request_line] = [line for line in lines if line["event"] == "model_request"]
    assert request_line["key_id"] == "team-a" and request_line["deployment"] == "a"
    assert request_line["prompt_tokens"] == 12 and request_line["cache"] == "bypass"
    assert "[CARD]" in request_line["prompt"] and "[PHONE]" in request_line["prompt"]
    assert request_line["answer"] == "Noted: mail [EMAIL]"
    assert len(request_line["request_id"]) == 32
    for leaked in ("4111 1111 1111 1111", "7946 0958", "jo@example.com", KEY):
        assert leaked not in err


def test_the_semantic_cache_answers_a_paraphrase_but_not_a_different_question(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    app = gateway_app(tmp_path, upstream, local_client, semantic_cache=True, cache_ttl_s=300)
    system = {"role": "system", "content": "You are a support assistant."}

    def ask(question: str, system_prompt: dict[str, str] = system) -> httpx.Response:
        body = {
            "model": "chain",
            "temperature": 0,
            "messages": [system_prompt, {"role": "user", "content": question}],
        }
        return client.post("/v1/chat/completions", json=body, headers=AUTH)

    with TestClient(app) as client:
        first = ask("How do I reset my password?")
        paraphrase = ask("How can I reset my password?")  # cosine 0.99
        different = ask("How do I reset my username?")  # cosine 0.70: another question
        other_scope = ask(
            "How can I reset my password?", {"role": "system", "content": "You are a pirate."}
        )

    assert first.headers["x-kit-cache"] == "miss"
    assert paraphrase.headers["x-kit-cache"] == "semantic_hit"
    assert paraphrase.json() == first.json()
    assert different.headers["x-kit-cache"] == "miss"
    assert other_scope.headers["x-kit-cache"] == "miss"  # same words, another system prompt
    assert upstream.calls() == 3


def test_rate_limits_are_shared_by_replicas_through_redis(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    limited = ApiKey(id="team-a", sha256=hash_key(KEY), rpm=2)
    with redis_server(tmp_path) as redis_url:
        one = gateway_app(
            tmp_path / "one", upstream, local_client, key=limited, redis_url=redis_url
        )
        two = gateway_app(
            tmp_path / "two", upstream, local_client, key=limited, redis_url=redis_url
        )
        with TestClient(one) as first, TestClient(two) as second:
            statuses = [
                first.post("/v1/chat/completions", json=chat_body("1"), headers=AUTH).status_code,
                second.post("/v1/chat/completions", json=chat_body("2"), headers=AUTH).status_code,
                first.post("/v1/chat/completions", json=chat_body("3"), headers=AUTH).status_code,
            ]

    assert statuses == [200, 200, 429]
