"""Apps for the bad-input and fuzzing tests: a gateway whose every model is the fake upstream, and
a RAG service over a small indexed corpus that answers through that gateway; and the loop that
fuzzes every operation of an OpenAPI schema with schemathesis.

No local chat model is configured, so nothing waits for SmolLM2 to load: a 5xx seen by these
tests can only be the services' own bug, never a slow or missing model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import schemathesis
import yaml
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from kit.core.ports import Embedder
from kit.gateway.app import create_app as create_gateway
from kit.gateway.auth import ApiKey, KeyStore, hash_key
from kit.gateway.settings import GatewaySettings
from kit.llm.gateway_client import GatewayClient
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import QdrantStore
from kit.rag_service.app import create_app as create_rag
from kit.rag_service.settings import RagSettings
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import KEY, write_models
from tests.integration.rag_helpers import rag_keys
from tests.support.fake_openai import FakeUpstream

# Seeded (`derandomize`), so CI runs the same cases every time and a failure reproduces; modest,
# so a module runs in well under a minute on two busy cores (raise max_examples to dig deeper).
FUZZ = settings(
    max_examples=60,
    deadline=None,  # a shared CI machine's pauses are not the service's slowness
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]


def fuzz_every_operation(url: str, headers: Mapping[str, str] | None = None) -> list[str]:
    """Send each operation of the service at `url` requests drawn from its OpenAPI schema, valid
    and deliberately invalid, and check each response: no 5xx, a documented status, a body that
    matches the documented schema. Returns the operations fuzzed.

    A loop rather than `@schema.parametrize()`: schemathesis 4.32's pytest plugin reads a node
    attribute (`_nodeid`) that pytest 9 removed, and a plain loop needs no plugin."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    fuzzed = []
    for result in schema.get_all_operations():
        if isinstance(result, Err):  # an operation the schema describes wrongly: say which
            raise result.err()
        operation = result.ok()
        cases = st.one_of([operation.as_strategy(mode) for mode in schemathesis.GenerationMode])

        @FUZZ
        @given(case=cases)
        def call(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(headers=dict(headers or {}), checks=CHECKS)

        call()
        fuzzed.append(operation.label)
    return fuzzed


def fake_gateway(folder: Path, upstream: FakeUpstream, **settings: Any) -> FastAPI:
    """The test gateway (gateway_helpers.write_models) without its local deployments; keys on."""
    folder.mkdir(parents=True, exist_ok=True)
    models_file = write_models(folder / "models.yaml", upstream.base_url)
    spec = yaml.safe_load(models_file.read_text())
    spec["deployments"] = {
        name: d for name, d in spec["deployments"].items() if d["provider"] != "local"
    }
    spec["models"] = {
        alias: chain
        for alias, chain in spec["models"].items()
        if all(name in spec["deployments"] for name in chain)
    }
    spec["default_model"] = "chain"
    models_file.write_text(yaml.safe_dump(spec))
    gateway_settings = GatewaySettings(
        _env_file=None,
        environment="test",
        data_dir=folder / "data",
        cache_dir=folder / "cache",
        models_file=models_file,
        **settings,
    )
    return create_gateway(
        gateway_settings,
        environ={"FAKE_PROVIDER_KEY": "sk-fake-provider"},
        keys=KeyStore([ApiKey(id="team-a", sha256=hash_key(KEY))]),
    )


@contextmanager
def rag_app(
    folder: Path, upstream: FakeUpstream, embedder: Embedder, pages: Mapping[str, str]
) -> Iterator[FastAPI]:
    """A RAG app over `pages` (file name -> markdown), answering with model alias "chain".
    Callers send `rag_helpers.ADMIN` (or ASKER): keys are on, as in production."""
    corpus = folder / "data" / "docs"
    corpus.mkdir(parents=True, exist_ok=True)
    for name, text in pages.items():
        (corpus / name).write_text(text)
    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], store, embedder, IngestOptions(), root=corpus)
    settings = RagSettings(
        _env_file=None,
        environment="test",
        data_dir=folder / "state",
        model="chain",
        docs_root=corpus,
    )
    with EmbeddedServer(fake_gateway(folder / "gateway", upstream)) as gateway:
        llm = GatewayClient(gateway.url, api_key=KEY)
        yield create_rag(settings, llm=llm, store=store, embedder=embedder, keys=rag_keys())
