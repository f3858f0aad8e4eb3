"""Clients of the gateway: the official OpenAI SDK (plain and streamed) and the kit's own client."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from kit.core.settings import KitSettings
from kit.llm.gateway_client import GatewayClient, GatewayRequestError
from kit.llm.local_client import LocalClient
from kit.runtime import connect_gateway
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import KEY, gateway_app
from tests.support.fake_openai import FakeUpstream, error, slow_stream

QUESTION = [
    {"role": "system", "content": "Answer with one word."},
    {"role": "user", "content": "What is the capital of France?"},
]


def sdk(server: EmbeddedServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0)


def test_the_openai_sdk_parses_a_streamed_answer_with_usage(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    upstream.script(error(500), slow_stream("one two three four", interval=0.01))
    with EmbeddedServer(gateway_app(tmp_path, upstream, local_client)) as server:
        stream = sdk(server).chat.completions.create(
            model="chain", messages=QUESTION, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() == "one two three four"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert upstream.requests[-1].body["model"] == "fake-b"  # fell back before the first byte


def test_the_sdk_gets_the_same_embeddings_as_base64_its_default_and_as_floats(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    texts = ["How do I declare a path parameter?", "The weather is nice today."]
    with EmbeddedServer(gateway_app(tmp_path, upstream, local_client)) as server:
        client = sdk(server)
        default = client.embeddings.create(model="minilm", input=texts)  # base64 on the wire
        floats = client.embeddings.create(model="minilm", input=texts, encoding_format="float")

    assert [len(item.embedding) for item in default.data] == [384, 384]
    for packed, plain in zip(default.data, floats.data, strict=True):
        assert packed.embedding == pytest.approx(plain.embedding, abs=1e-6)


def test_the_local_model_answers_through_the_sdk_whole_and_streamed(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with EmbeddedServer(gateway_app(tmp_path, upstream, local_client)) as server:
        client = sdk(server)
        whole = client.chat.completions.create(model="local", messages=QUESTION, max_tokens=16)
        streamed = client.chat.completions.create(
            model="local",
            messages=QUESTION,
            max_tokens=16,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(streamed)
        models = [m.id for m in client.models.list()]

    assert "Paris" in (whole.choices[0].message.content or "")
    assert whole.usage is not None and whole.usage.prompt_tokens > 10
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert "local" in models


def test_the_sdk_sees_gateway_errors_as_its_own_exceptions(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    with EmbeddedServer(gateway_app(tmp_path, upstream, local_client)) as server:
        with pytest.raises(openai.NotFoundError, match="not served by this gateway"):
            sdk(server).chat.completions.create(model="gpt-9", messages=QUESTION)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(
                base_url=f"{server.url}/v1", api_key="wrong", max_retries=0
            ).chat.completions.create(model="local", messages=QUESTION)


def test_the_kit_client_runs_an_embedded_gateway_with_no_server_to_start(
    settings: KitSettings,
) -> None:
    with connect_gateway(settings) as client:
        answer = client.chat(QUESTION, model="local", max_tokens=16)
        streamed = "".join(client.stream_chat(QUESTION, model="local", max_tokens=16))
        vectors = client.embed(["cat", "kitten"], model="all-minilm-l6-v2")
        with pytest.raises(GatewayRequestError) as refused:
            client.chat(QUESTION, model="gpt-9")

    assert "Paris" in answer.text and answer.usage.completion_tokens > 0
    assert streamed == answer.text
    assert [len(v) for v in vectors] == [384, 384]
    assert refused.value.status == 404 and refused.value.type == "invalid_request_error"


def test_the_kit_client_talks_to_a_gateway_over_http(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient, settings: KitSettings
) -> None:
    with EmbeddedServer(gateway_app(tmp_path, upstream, local_client)) as server:
        remote = settings.model_copy(update={"gateway_url": server.url})
        with pytest.raises(GatewayRequestError) as no_key:
            connect_gateway(remote).chat(QUESTION, model="chain")
        with GatewayClient(server.url, api_key=KEY) as client:
            answer = client.chat(QUESTION, model="chain")

    assert no_key.value.status == 401
    assert answer.text == "Hello from the fake upstream."
