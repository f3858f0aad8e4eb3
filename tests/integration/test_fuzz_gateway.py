"""Fuzzing the gateway: no input, schema-shaped or not, makes it answer 500.

Two generators, each seeded (`derandomize=True`), so CI runs the same cases every time and a
failure reproduces: schemathesis draws requests for every operation from the gateway's own OpenAPI
schema (valid ones and deliberately invalid ones), and hypothesis draws chat bodies the schema
cannot express (unicode, any JSON type in any field, huge and negative numbers). The fake upstream
always succeeds, so a 5xx here is a gateway bug, never a provider failure. Case counts are kept
modest (well under a minute on two busy cores); raise them locally to dig deeper.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kit.web.embedded import EmbeddedServer
from tests.integration.bad_input_apps import FUZZ, fake_gateway, fuzz_every_operation
from tests.integration.gateway_helpers import AUTH
from tests.support.fake_openai import FakeUpstream


@pytest.fixture(scope="module")
def gateway_url(
    _upstream_server: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """One gateway for the module, served on 127.0.0.1: the fuzzers speak real HTTP to it."""
    _upstream_server.reset()
    app = fake_gateway(tmp_path_factory.mktemp("fuzz-gateway"), _upstream_server)
    with EmbeddedServer(app) as server:
        yield server.url


def test_no_operation_answers_a_server_error_or_an_undocumented_body(gateway_url: str) -> None:
    fuzzed = fuzz_every_operation(gateway_url, headers=AUTH)  # a valid key: bodies get checked

    assert {"POST /v1/chat/completions", "POST /v1/embeddings", "GET /v1/models"} <= set(fuzzed)


ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "x", ""])
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
NUMBERS = st.integers(min_value=-(2**70), max_value=2**70) | st.floats(
    allow_nan=False, allow_infinity=False
)
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES},
    optional={"content": st.text() | st.none() | ANY_JSON, "name": st.text()},
)
CHAT_BODY = st.fixed_dictionaries(
    {"messages": st.lists(MESSAGE, max_size=4) | ANY_JSON},
    optional={
        "model": st.sampled_from(["chain", "solo", "nope", ""]) | ANY_JSON,
        "max_tokens": NUMBERS | ANY_JSON,
        "temperature": NUMBERS,
        "top_p": NUMBERS,
        "n": NUMBERS,
        "stream": st.booleans() | ANY_JSON,
        "stop": ANY_JSON,
        "tools": ANY_JSON,
        "user": st.text(),
    },
)


@pytest.fixture(scope="module")
def client(gateway_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway_url, headers=AUTH, timeout=30) as http:
        yield http


@FUZZ
@given(body=CHAT_BODY)
def test_any_chat_body_gets_an_answer_or_an_openai_style_error(
    client: httpx.Client, body: dict[str, Any]
) -> None:
    response = client.post("/v1/chat/completions", json=body)

    assert response.status_code == 200 or 400 <= response.status_code < 500, response.text
    if response.status_code != 200:
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error" and error["message"], error


@FUZZ
@given(text=st.text(max_size=50) | st.lists(st.text(max_size=20), max_size=3) | ANY_JSON)
def test_any_embeddings_input_gets_vectors_or_an_error(client: httpx.Client, text: Any) -> None:
    response = client.post("/v1/embeddings", json={"model": "fake-embed", "input": text})

    assert response.status_code in (200, 400), response.text
    if response.status_code == 400:
        assert response.json()["error"]["message"]
    else:
        assert len(response.json()["data"]) == (1 if isinstance(text, str) else len(text))
