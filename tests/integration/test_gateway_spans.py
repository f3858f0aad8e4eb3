"""The gateway's spans in this process: a stream's span lasts until the stream is settled and
carries what it cost; a cache hit calls no deployment; a refused request is an error span."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from kit.gateway.auth import ApiKey, hash_key
from kit.llm.local_client import LocalClient
from tests.integration.gateway_helpers import AUTH, KEY, chat_body, gateway_app
from tests.support.fake_openai import FakeUpstream, ok
from tests.support.tracing import memory_exporter, named, parent_hex, span_id_hex

PRICE = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}


def test_a_streamed_answer_is_one_span_with_its_tokens_and_cost(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.default = ok("one two three", prompt_tokens=10, completion_tokens=3)
    app = gateway_app(tmp_path, upstream, local_client, models={"price": PRICE})
    with TestClient(app) as client:
        spans = memory_exporter()
        with client.stream(
            "POST", "/v1/chat/completions", json=chat_body(stream=True), headers=AUTH
        ) as response:
            assert response.status_code == 200
            "".join(response.iter_text())

    finished = spans.get_finished_spans()
    chat = named(finished, "chat chain")
    attempt = named(finished, "chat fake-a")
    assert parent_hex(attempt) == span_id_hex(chat)
    attributes = chat.attributes or {}
    assert attributes["gen_ai.request.stream"] is True
    assert attributes["kit.gateway.deployment"] == "a"
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        10,
        3,
    )
    assert attributes["kit.gateway.cost_usd"] == 10 * 1e-6 + 3 * 2e-6
    assert attributes["kit.gateway.usage_estimated"] is False
    assert chat.end_time is not None and attempt.end_time is not None
    assert chat.end_time >= attempt.end_time


def test_a_cache_hit_calls_no_deployment_and_says_so(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    app = gateway_app(tmp_path, upstream, local_client, cache_ttl_s=60)
    body = chat_body(temperature=0)
    with TestClient(app) as client:
        client.post("/v1/chat/completions", json=body, headers=AUTH)
        spans = memory_exporter()
        client.post("/v1/chat/completions", json=body, headers=AUTH)

    finished = spans.get_finished_spans()
    chat = named(finished, "chat chain")
    assert (chat.attributes or {})["kit.gateway.cache"] == "hit"
    assert not [s for s in finished if s.name.startswith("chat fake-")]  # no upstream call


def test_a_request_refused_for_its_budget_is_an_error_span_without_an_upstream_call(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    key = ApiKey(id="team-a", sha256=hash_key(KEY), budget_usd=0.000001)
    app = gateway_app(tmp_path, upstream, local_client, key=key, models={"price": PRICE})
    with TestClient(app) as client:
        spans = memory_exporter()
        refused = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)

    assert refused.status_code == 429
    finished = spans.get_finished_spans()
    chat = named(finished, "chat chain")
    assert chat.status.status_code.name == "ERROR"
    assert not [s for s in finished if s.name.startswith("chat fake-")]
    assert upstream.calls() == 0
