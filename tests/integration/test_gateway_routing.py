"""The gateway in front of a fake upstream on 127.0.0.1: fallback, retries, cool-down, errors."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from kit.llm.local_client import LocalClient
from tests.integration.gateway_helpers import AUTH, calls_to, chat_body, gateway_app
from tests.support.fake_openai import FakeUpstream, error, hang, malformed, ok


def test_falls_back_in_chain_order_and_says_who_answered(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.script(error(500))
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        response = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)

    assert response.status_code == 200
    assert response.headers["x-kit-deployment"] == "b"
    assert response.headers["x-kit-fallbacks"] == "1"
    assert response.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert [r.body["model"] for r in upstream.requests if r.body] == ["fake-a", "fake-b"]


def test_retries_a_server_error_on_the_same_deployment_first(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.script(error(503), ok("second try"))
    retries = {"rate_limit": 0, "server_error": 1, "timeout": 0, "connection": 0}
    app = gateway_app(tmp_path, upstream, local_client, models={"retries": retries})
    with TestClient(app) as client:
        response = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)

    assert response.headers["x-kit-deployment"] == "a"
    assert response.json()["choices"][0]["message"]["content"] == "second try"
    assert (calls_to(upstream, "fake-a"), calls_to(upstream, "fake-b")) == (2, 0)


def test_a_failing_deployment_cools_down_and_is_skipped(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    app = gateway_app(tmp_path, upstream, local_client, models={"failures_to_cooldown": 2})
    with TestClient(app) as client:
        upstream.script(error(500), ok(), error(500), ok())  # a fails twice (b answers): a rests
        for _ in range(2):
            assert client.post("/v1/chat/completions", json=chat_body(), headers=AUTH).is_success
        before = calls_to(upstream, "fake-a")

        third = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
        ready = client.get("/readyz").json()

    assert third.headers["x-kit-deployment"] == "b"
    assert calls_to(upstream, "fake-a") == before == 2  # not called while resting
    assert ready["resting"] == ["a"]


def test_an_upstream_429_rests_the_deployment_for_its_retry_after(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.script(error(429, retry_after=20))
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        first = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
        second = client.post("/v1/chat/completions", json=chat_body("again"), headers=AUTH)

    assert first.headers["x-kit-deployment"] == second.headers["x-kit-deployment"] == "b"
    assert calls_to(upstream, "fake-a") == 1


def test_an_upstream_400_stays_400_and_does_not_fall_back(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.script(error(400, "max_tokens is too large", error_type="invalid_request_error"))
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        response = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "upstream_rejected"
    assert "max_tokens is too large" in response.json()["error"]["message"]
    assert calls_to(upstream, "fake-b") == 0


def test_all_deployments_failing_gives_502_and_timeouts_504(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    app = gateway_app(tmp_path, upstream, local_client, models={"timeout_s": 0.3})
    with TestClient(app) as client:
        upstream.script(error(500), malformed())
        failed = client.post("/v1/chat/completions", json=chat_body(), headers=AUTH)
        upstream.script(hang(5))
        timed_out = client.post("/v1/chat/completions", json=chat_body(model="solo"), headers=AUTH)

    assert failed.status_code == 502
    body = failed.json()["error"]
    assert body["type"] == "upstream_error" and "a:" in body["message"] and "b:" in body["message"]
    assert "malformed JSON" in body["message"]
    assert timed_out.status_code == 504
    assert timed_out.json()["error"]["code"] == "upstream_timeout"


def test_falls_back_to_the_local_model_when_the_cloud_is_down(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.script(error(503))
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        response = client.post(
            "/v1/chat/completions",
            json=chat_body(
                "What is the capital of France? Answer in one word.",
                model="cloud-then-local",
                max_tokens=16,
            ),
            headers=AUTH,
        )

    assert response.status_code == 200
    assert response.headers["x-kit-deployment"] == "local-smollm2"
    assert "Paris" in response.json()["choices"][0]["message"]["content"]


def test_unknown_models_and_bad_bodies_get_openai_style_errors(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    app = gateway_app(
        tmp_path, upstream, local_client, max_messages=3, max_tokens_limit=100, max_body_bytes=2048
    )
    with TestClient(app) as client:
        unknown = client.post("/v1/chat/completions", json=chat_body(model="gpt-9"), headers=AUTH)
        empty = client.post("/v1/chat/completions", json={"messages": []}, headers=AUTH)
        many = client.post(
            "/v1/chat/completions",
            headers=AUTH,
            json={"messages": [{"role": "user", "content": "x"}] * 4},
        )
        greedy = client.post("/v1/chat/completions", json=chat_body(max_tokens=5000), headers=AUTH)
        huge = client.post("/v1/chat/completions", json=chat_body("x" * 5000), headers=AUTH)
        not_json = client.post(
            "/v1/chat/completions",
            content=b"{nope",
            headers=AUTH | {"content-type": "application/json"},
        )

    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "model_not_found"
    assert "chain" in unknown.json()["error"]["message"]  # lists what is available
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "messages"
    assert many.status_code == 400 and "GATEWAY_MAX_MESSAGES" in many.json()["error"]["message"]
    assert greedy.status_code == 400 and greedy.json()["error"]["param"] == "max_tokens"
    assert huge.status_code == 413 and "GATEWAY_MAX_BODY_BYTES" in huge.json()["error"]["message"]
    assert not_json.status_code == 400
    for response in (unknown, empty, many, greedy, huge, not_json):
        assert "Traceback" not in response.text
    assert upstream.calls() == 0


def test_models_lists_the_enabled_aliases(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        data = client.get("/v1/models", headers=AUTH).json()["data"]

    by_id = {model["id"]: model for model in data}
    assert by_id["chain"]["deployments"] == ["a", "b"]
    assert by_id["minilm"]["task"] == "embedding"


def test_embeddings_batch_a_list_through_the_local_model_and_an_upstream(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    texts = ["How do I declare a path parameter?", "Path parameters go in the route.", "Tax."]
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        local = client.post(
            "/v1/embeddings", json={"model": "minilm", "input": texts}, headers=AUTH
        )
        remote = client.post(
            "/v1/embeddings", json={"model": "fake-embed", "input": texts}, headers=AUTH
        )
        one = client.post("/v1/embeddings", json={"model": "minilm", "input": "one"}, headers=AUTH)

    vectors = [row["embedding"] for row in local.json()["data"]]
    assert [len(v) for v in vectors] == [384, 384, 384]
    similar = sum(a * b for a, b in zip(vectors[0], vectors[1], strict=True))
    unrelated = sum(a * b for a, b in zip(vectors[0], vectors[2], strict=True))
    assert similar > unrelated
    assert [row["index"] for row in remote.json()["data"]] == [0, 1, 2]
    assert upstream.calls("/v1/embeddings") == 1  # one batched call for three texts
    assert len(one.json()["data"]) == 1


def test_a_litellm_deployment_answers_streams_and_falls_back(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with TestClient(gateway_app(tmp_path, upstream, local_client)) as client:
        answered = client.post(
            "/v1/chat/completions", json=chat_body(model="litellm-then-b"), headers=AUTH
        )
        streamed = client.post(
            "/v1/chat/completions",
            headers=AUTH,
            json=chat_body(model="litellm-then-b", stream=True),
        )
        upstream.script(error(500))
        fell_back = client.post(
            "/v1/chat/completions", json=chat_body("other", model="litellm-then-b"), headers=AUTH
        )

    assert answered.status_code == 200 and answered.headers["x-kit-deployment"] == "via-litellm"
    assert answered.json()["choices"][0]["message"]["content"] == "Hello from the fake upstream."
    assert answered.json()["usage"]["prompt_tokens"] == 12
    sent = next(r for r in upstream.requests if (r.body or {}).get("model") == "fake-litellm")
    assert sent.headers["authorization"] == "Bearer sk-fake-provider"  # the key from its variable
    assert "Hello" in streamed.text and streamed.text.rstrip().endswith("data: [DONE]")
    assert fell_back.headers["x-kit-deployment"] == "b"
