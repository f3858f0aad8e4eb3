"""Fuzzing the RAG API from its OpenAPI schema: no request, valid or not, makes it answer 500.

The model behind it is the fake upstream through a real gateway, and it always succeeds, so a
5xx here is the service's own bug. Seeded and modest, like test_fuzz_gateway.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kit.llm.local_client import LocalClient
from kit.web.embedded import EmbeddedServer
from tests.integration.bad_input_apps import fuzz_every_operation, rag_app
from tests.integration.rag_helpers import ADMIN
from tests.support.fake_openai import FakeUpstream

PAGES = {
    "background.md": "# Background Tasks\n\nBackground tasks run after the response is sent.",
    "paths.md": "# Path Parameters\n\nPath parameters are typed with annotations.",
}


@pytest.fixture(scope="module")
def rag_url(
    _upstream_server: FakeUpstream,
    local_client: LocalClient,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    _upstream_server.reset()
    folder = tmp_path_factory.mktemp("fuzz-rag")
    with (
        rag_app(folder, _upstream_server, local_client.embedder, PAGES) as app,
        EmbeddedServer(app) as server,
    ):
        yield server.url


def test_no_operation_answers_a_server_error_or_an_undocumented_body(rag_url: str) -> None:
    fuzzed = fuzz_every_operation(rag_url, headers=ADMIN)  # an admin key: every route is open

    assert {"POST /ask", "POST /ingest", "GET /ingest/{job_id}"} <= set(fuzzed)
