"""Bad input gets a 4xx with the error body, never a 500, on both services: oversized bodies
(declared or chunked), deep nesting, invalid UTF-8, lone surrogates, NaN, other content types,
JSON that is not an object; and a regression test for each 500 the fuzzers found."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kit.llm.local_client import LocalClient
from kit.rag_service.settings import RagSettings
from kit.web.request_limits import MAX_JSON_DEPTH
from tests.integration.bad_input_apps import fake_gateway, rag_app
from tests.integration.gateway_helpers import AUTH, chat_body
from tests.integration.rag_helpers import ADMIN
from tests.support.fake_openai import FakeUpstream

JSON = {"content-type": "application/json"}
GATEWAY_LIMIT = 300_000


@pytest.fixture
def gateway(tmp_path: Path, upstream: FakeUpstream) -> Iterator[TestClient]:
    # Room for the 200 KB nesting bombs below, so that nesting, not size, is what they test.
    app = fake_gateway(tmp_path, upstream, max_body_bytes=GATEWAY_LIMIT)
    # "localhost" is a trusted host by default; TestClient's own "testserver" is not.
    with TestClient(app, base_url="http://localhost", headers=AUTH) as client:
        yield client


@pytest.fixture(scope="module")
def rag(
    _upstream_server: FakeUpstream,
    local_client: LocalClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    folder = tmp_path_factory.mktemp("bad-input-rag")
    pages = {"tasks.md": "# Background Tasks\n\nBackground tasks run after the response."}
    with (
        rag_app(folder, _upstream_server, local_client.embedder, pages) as app,
        TestClient(app, base_url="http://localhost", headers=ADMIN) as client,
    ):
        yield client


def ask_body(question: str = "When do background tasks run?") -> bytes:
    return json.dumps({"question": question}).encode()


def error_of(response: object) -> dict[str, str]:
    error: dict[str, str] = response.json()["error"]  # type: ignore[attr-defined]
    assert error["message"] and error["type"] and error["code"], error
    return error


def chunks(total: int, size: int = 1024) -> Iterator[bytes]:
    """A body sent chunked: no Content-Length is declared, so only counting can stop it."""
    sent = 0
    while sent < total:
        yield b" " * min(size, total - sent)
        sent += size


# Gateway ----------------------------------------------------------------------------------------


def test_gateway_refuses_a_declared_oversized_body_with_413(gateway: TestClient) -> None:
    response = gateway.post("/v1/chat/completions", json=chat_body("x" * GATEWAY_LIMIT))

    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "request_too_large" and "GATEWAY_MAX_BODY_BYTES" in error["message"]


def test_gateway_refuses_a_chunked_oversized_body_with_413(gateway: TestClient) -> None:
    response = gateway.post("/v1/chat/completions", content=chunks(GATEWAY_LIMIT + 1), headers=JSON)

    assert response.status_code == 413 and error_of(response)["code"] == "request_too_large"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("[" * 100_000 + "]" * 100_000, id="100k-nested-lists"),  # json: RecursionError
        pytest.param('{"a":' * 40_000 + "1" + "}" * 40_000, id="40k-nested-objects"),
        pytest.param(
            json.dumps(chat_body(tools=json.loads("[" * 300 + "]" * 300))), id="300-deep-field"
        ),  # parsed fine, but orjson cannot re-encode it for the provider: was a 500
    ],
)
def test_gateway_refuses_deeply_nested_json_with_400(gateway: TestClient, body: str) -> None:
    response = gateway.post("/v1/chat/completions", content=body.encode(), headers=JSON)

    assert response.status_code == 400, response.text
    error = error_of(response)
    assert error["code"] == "json_too_deep" and str(MAX_JSON_DEPTH) in error["message"]


def test_gateway_refuses_invalid_utf8_with_400_naming_the_byte(gateway: TestClient) -> None:
    body = b'{"model": "chain", "messages": [{"role": "user", "content": "caf\xe9"}]}'

    response = gateway.post("/v1/chat/completions", content=body, headers=JSON)

    assert response.status_code == 400
    bad_byte = body.index(b"\xe9")
    assert f"not valid UTF-8 (byte {bad_byte} is" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        pytest.param(
            b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
            "surrogate",
            id="lone-surrogate",
        ),  # was a 500: orjson cannot encode it for the provider
        pytest.param(b'{"messages": [], "temperature": NaN}', "not valid JSON", id="nan"),
        pytest.param(b'{"messages": [], "seed": 1e400}', "infinity", id="infinity"),
        pytest.param(b'{"messages": [', "not valid JSON", id="truncated"),
        pytest.param(b"[1, 2]", "must be a JSON object", id="a-list"),
        pytest.param(b'"hello"', "must be a JSON object", id="a-string"),
    ],
)
def test_gateway_refuses_invalid_json_with_400(gateway: TestClient, body: bytes, says: str) -> None:
    response = gateway.post("/v1/chat/completions", content=body, headers=JSON)

    assert response.status_code == 400 and says in error_of(response)["message"]


def test_gateway_regression_an_integer_past_64_bits_in_a_relayed_field_is_not_a_500(
    gateway: TestClient, upstream: FakeUpstream
) -> None:
    """Found by schemathesis: `"seed": 1e25`-sized integers went to orjson, which refuses them.
    `seed` is now declared (a 64-bit integer, as OpenAI's), so it is refused before any upstream
    call, naming the field."""
    body = b'{"model": "chain", "seed": 34023654621313572452433, "messages": [{"role": "user"}]}'
    calls_before = upstream.calls()

    response = gateway.post("/v1/chat/completions", content=body, headers=JSON)

    assert response.status_code == 400, response.text
    assert error_of(response)["param"] == "seed"
    assert upstream.calls() == calls_before


@pytest.mark.parametrize(
    ("content_type", "status"),
    [("text/plain", 415), ("application/x-www-form-urlencoded", 415), (None, 415)],
)
def test_gateway_refuses_a_body_that_is_not_sent_as_json(
    gateway: TestClient, content_type: str | None, status: int
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    body = json.dumps(chat_body()).encode()

    response = gateway.post("/v1/chat/completions", content=body, headers=headers)

    assert response.status_code == status
    assert "Content-Type: application/json" in error_of(response)["message"]


def test_gateway_refuses_an_empty_body_saying_so(gateway: TestClient) -> None:
    response = gateway.post("/v1/embeddings", content=b"", headers=JSON)

    assert response.status_code == 400 and "body is empty" in error_of(response)["message"]


# RAG --------------------------------------------------------------------------------------------


def test_rag_refuses_declared_and_chunked_oversized_bodies_with_413(rag: TestClient) -> None:
    limit = RagSettings.model_fields["max_body_bytes"].default
    declared = rag.post("/ask", content=ask_body("x" * limit), headers=JSON)
    chunked = rag.post("/ask", content=chunks(limit + 1), headers=JSON)

    for response in (declared, chunked):
        assert response.status_code == 413
        assert error_of(response)["code"] == "request_too_large"
        assert "RAG_MAX_BODY_BYTES" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        pytest.param(b"[" * 30_000 + b"]" * 30_000, 400, "levels deep", id="30k-nested"),
        pytest.param(b'{"question": "caf\xe9?"}', 400, "not valid UTF-8", id="invalid-utf8"),
        pytest.param(b'{"question": "\\udfff?"}', 400, "surrogate", id="lone-surrogate"),
        pytest.param(b'{"question": NaN}', 400, "not valid JSON", id="nan"),
        pytest.param(b'["question"]', 400, "must be a JSON object", id="a-list"),
        pytest.param(b"", 400, "body is empty", id="empty"),
        pytest.param(b'{"question": ""}', 422, "question", id="schema"),
    ],
)
def test_rag_refuses_bad_json_with_a_clear_error(
    rag: TestClient, body: bytes, status: int, says: str
) -> None:
    response = rag.post("/ask", content=body, headers=JSON)

    assert response.status_code == status and says in error_of(response)["message"]


def test_rag_refuses_a_body_that_is_not_sent_as_json(rag: TestClient) -> None:
    response = rag.post("/ask", content=ask_body(), headers={"content-type": "text/plain"})

    assert response.status_code == 415 and error_of(response)["code"] == "unsupported_media_type"


@pytest.mark.parametrize("key", ["", "two words", "a..b"])
def test_rag_regression_a_filter_key_qdrant_cannot_read_is_a_422_not_a_500(
    rag: TestClient, key: str
) -> None:
    """Found by schemathesis: Qdrant raised "Invalid path" on these keys, a 500."""
    response = rag.post("/ask", json={"question": "When?", "filters": {key: "x"}})

    assert response.status_code == 422 and "filters" in error_of(response)["message"]


@pytest.mark.parametrize(
    "path", [pytest.param("docs\x00.md", id="nul-byte"), pytest.param("x" * 300, id="too-long")]
)
def test_rag_regression_a_path_the_os_cannot_look_up_is_a_400_not_a_500(
    rag: TestClient, path: str
) -> None:
    """Path.resolve() raised ValueError (NUL) and exists() OSError (name too long): 500s."""
    response = rag.post("/ingest", json={"paths": [path]})

    assert response.status_code == 400 and "not a usable path" in error_of(response)["message"]
