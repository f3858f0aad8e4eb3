"""The fake OpenAI upstream behaves as scripted, seen through real HTTP and the official SDK.

The gateway's tests trust this fake to stand in for a cloud provider, so these tests pin down
what they rely on: the wire format the openai SDK accepts, each scripted failure, and the record.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.support.fake_openai import (
    DEFAULT_TEXT,
    FakeUpstream,
    error,
    hang,
    malformed,
    ok,
    running_fake_upstream,
    slow_stream,
)

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def _served() -> Iterator[FakeUpstream]:
    with running_fake_upstream() as upstream:
        yield upstream


@pytest.fixture
def upstream(_served: FakeUpstream) -> FakeUpstream:
    """One server for the module, with a clean script and record for each test."""
    _served.reset()
    return _served


@pytest.fixture
def client(upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=upstream.base_url, api_key="x", max_retries=0) as sdk:
        yield sdk


def test_completion_returns_the_text_and_usage(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert answer.choices[0].finish_reason == "stop"
    assert answer.model == "gpt-test"
    assert answer.usage is not None
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (12, 5)
    assert answer.usage.total_tokens == 17


def test_stream_joins_back_to_the_text_and_ends_with_usage(
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    upstream.script(ok("one two  three", completion_tokens=3))
    chunks = list(
        client.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two  three"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 15


def test_stream_without_include_usage_has_no_usage_chunk(upstream: FakeUpstream) -> None:
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    response = httpx.post(f"{upstream.base_url}/chat/completions", json=body)

    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert all(chunk["choices"] and "usage" not in chunk for chunk in chunks)


def test_scripted_error_then_success_and_the_record(
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    upstream.script(error(500), ok("Recovered."))

    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    answer = client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    assert answer.choices[0].message.content == "Recovered."
    assert upstream.calls() == 2
    assert all(r.body is not None for r in upstream.requests)
    assert [(r.body or {}).get("model") for r in upstream.requests] == ["gpt-test", "gpt-test"]
    assert all((r.body or {}).get("messages") == MESSAGES for r in upstream.requests)
    assert upstream.requests[0].headers["authorization"] == "Bearer x"
    assert upstream.requests[0].time <= upstream.requests[1].time


def test_rate_limit_carries_retry_after(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.script(error(429, "slow down", retry_after=7, error_type="rate_limit_error"))
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)

    upstream.script(error(429, "slow down", retry_after=7, error_type="rate_limit_error"))
    response = httpx.post(f"{upstream.base_url}/chat/completions", json={"model": "m"})

    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert response.json() == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": None}
    }


def test_hang_outlasts_a_client_timeout_and_the_server_answers_next(
    upstream: FakeUpstream,
) -> None:
    upstream.script(hang(5))
    url = f"{upstream.base_url}/chat/completions"

    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url, json={"model": "m"}, timeout=0.3)
    assert time.monotonic() - started < 2

    response = httpx.post(url, json={"model": "m"}, timeout=2)
    assert response.json()["choices"][0]["message"]["content"] == DEFAULT_TEXT


def test_malformed_body_is_not_json(upstream: FakeUpstream) -> None:
    upstream.script(malformed())
    response = httpx.post(f"{upstream.base_url}/chat/completions", json={"model": "m"})

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_slow_stream_spaces_the_words(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.script(slow_stream("one two three four five", interval=0.1))
    arrivals: list[tuple[float, str]] = []
    stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))

    assert "".join(piece for _, piece in arrivals) == "one two three four five"
    assert len(arrivals) == 5
    assert arrivals[-1][0] - arrivals[0][0] >= 0.35


def test_embeddings_are_deterministic_unit_vectors_in_order(
    upstream: FakeUpstream, client: openai.OpenAI
) -> None:
    # The SDK asks for base64 by default; httpx asks for plain floats. Both must agree.
    batch = client.embeddings.create(model="embed", input=["cat", "kitten", "cat"])
    single = httpx.post(f"{upstream.base_url}/embeddings", json={"model": "e", "input": "kitten"})

    vectors = [item.embedding for item in batch.data]
    assert [item.index for item in batch.data] == [0, 1, 2]
    assert all(len(v) == 8 and math.isclose(math.hypot(*v), 1.0, rel_tol=1e-6) for v in vectors)
    assert vectors[0] == vectors[2]
    assert vectors[0] != vectors[1]
    assert single.json()["data"][0]["embedding"] == pytest.approx(vectors[1], rel=1e-6)
    assert single.json()["usage"] == {"prompt_tokens": 1, "total_tokens": 1}
    assert batch.usage.prompt_tokens == 3


def test_the_script_applies_to_embeddings(upstream: FakeUpstream, client: openai.OpenAI) -> None:
    upstream.script(error(503))

    with pytest.raises(openai.InternalServerError):
        client.embeddings.create(model="embed", input="cat")
    assert upstream.calls("/v1/embeddings") == 1
    assert upstream.calls() == 0


def test_models_and_paths_without_the_v1_prefix(upstream: FakeUpstream) -> None:
    root = upstream.base_url.removesuffix("/v1")

    models = httpx.get(f"{root}/models").json()
    answer = httpx.post(f"{root}/chat/completions", json={"model": "m"}).json()

    assert [m["id"] for m in models["data"]] == ["fake-model"]
    assert answer["choices"][0]["message"]["content"] == DEFAULT_TEXT
    assert upstream.calls("/chat/completions") == upstream.calls("/v1/chat/completions") == 1


def test_reset_clears_script_record_and_default(upstream: FakeUpstream) -> None:
    upstream.default = error(500)
    upstream.script(malformed())
    httpx.post(f"{upstream.base_url}/chat/completions", json={"model": "m"})

    upstream.reset()
    response = httpx.post(f"{upstream.base_url}/chat/completions", json={"model": "m"})

    assert response.status_code == 200
    assert upstream.calls() == 1


def test_api_key_mode_refuses_a_wrong_key() -> None:
    with running_fake_upstream(api_key="right") as upstream:
        wrong = openai.OpenAI(base_url=upstream.base_url, api_key="wrong", max_retries=0)
        right = openai.OpenAI(base_url=upstream.base_url, api_key="right", max_retries=0)

        with pytest.raises(openai.AuthenticationError) as refused:
            wrong.chat.completions.create(model="m", messages=MESSAGES)
        answer = right.chat.completions.create(model="m", messages=MESSAGES)

    assert refused.value.status_code == 401
    assert refused.value.code == "invalid_api_key"
    assert answer.choices[0].message.content == DEFAULT_TEXT
    assert upstream.calls() == 2
