"""The RAG pipeline's options, each with real parts: embeddings through a real gateway, a
cross-encoder reranking stage, and an LLM judge reached over HTTP (the fake upstream)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient
from qdrant_client import QdrantClient

from kit.core.errors import ConfigError
from kit.core.ports import ChatMessage, Embedder
from kit.evaluate.judge import Judge, load_judge_prompt
from kit.llm.embedders import GatewayEmbedder
from kit.llm.gateway_client import GatewayClient
from kit.llm.local_client import LocalClient
from kit.llm.local_models import MINILM
from kit.llm.scripted import ScriptedModel
from kit.rag.ingest import IngestOptions, ingest
from kit.rag.qdrant_store import QdrantStore
from kit.rag.rerank import CrossEncoderReranker, load_reranker
from kit.rag.retrieval import Retriever
from kit.rag_service.app import create_app
from kit.rag_service.service import AskResult
from kit.rag_service.settings import RagSettings
from kit.web.embedded import EmbeddedServer
from tests.integration.gateway_helpers import KEY, gateway_app
from tests.support.fake_openai import FakeUpstream, ok

PAGES = {
    "background.md": "# Background Tasks\n\nBackground tasks run after the response is sent. "
    "Declare a parameter of type BackgroundTasks and call add_task on it.",
    "paths.md": "# Path Parameters\n\nPath parameters are declared in the path string and "
    "typed with annotations, so FastAPI converts and validates them.",
    "cors.md": "# CORS\n\nCORSMiddleware lets a browser page on another origin call your API. "
    "List the allowed origins explicitly.",
    "testing.md": "# Testing\n\nTestClient calls your application in tests without a server, "
    "using the requests-style API.",
}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    for name, text in PAGES.items():
        (root / name).write_text(text)
    return root


@pytest.fixture
def gateway(
    tmp_path: Path, upstream: FakeUpstream, local_client: LocalClient
) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(gateway_app(tmp_path / "gw", upstream, local_client)) as server:
        yield server


# --- Embeddings through the gateway ---------------------------------------------------------------


def test_ingesting_through_the_gateway_gives_the_in_process_vectors_and_results(
    corpus: Path, gateway: EmbeddedServer, local_client: LocalClient
) -> None:
    local = local_client.embedder
    with GatewayClient(gateway.url, api_key=KEY) as client:
        remote = GatewayEmbedder(client, "all-minilm-l6-v2", batch_size=3)
        texts = [f"sentence number {n} about path parameters" for n in range(7)]
        np.testing.assert_allclose(remote.embed(texts), local.embed(texts), atol=1e-5)

        by_gateway = QdrantStore(QdrantClient(":memory:"), "docs")
        report = ingest([corpus], by_gateway, remote, IngestOptions(), root=corpus)
        question = "how do I run work after sending the response?"
        remote_ids = [h.chunk_id for h in Retriever(by_gateway, remote.embed).search(question)]

    in_process = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], in_process, local, IngestOptions(), root=corpus)
    local_ids = [h.chunk_id for h in Retriever(in_process, local.embed).search(question)]

    assert remote.dimension == 384 and report.chunks["added"] == len(PAGES)
    assert by_gateway.embedder() == MINILM.name == in_process.embedder()
    assert remote_ids == local_ids and remote_ids[0] == local_ids[0]


def test_an_index_refuses_vectors_and_queries_from_another_embedder(
    corpus: Path, gateway: EmbeddedServer, local_client: LocalClient
) -> None:
    store = QdrantStore(QdrantClient(":memory:"), "docs")
    with GatewayClient(gateway.url, api_key=KEY) as client:
        other = GatewayEmbedder(client, "fake-embed")
        ingest([corpus], store, other, IngestOptions(), root=corpus)
    stored = store.count()

    with pytest.raises(ConfigError, match=r"built with the embedder 'fake-embed'.*KIT_EMBEDDER"):
        ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    settings = RagSettings(_env_file=None, environment="test", model="chain")  # type: ignore[call-arg]
    app = create_app(settings, llm=object(), store=store, embedder=local_client.embedder)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fake-embed"), TestClient(app):
        pass

    assert store.embedder() == "fake-embed" and store.count() == stored  # nothing was mixed in


# --- Reranking -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cross-encoder made from the shipped MiniLM with a new, seeded scoring head: no trained
    reranker ships (src/kit/rag/rerank.py says why), so this checks the mechanics, not quality."""
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cross-encoder")
    CrossEncoder(str(MINILM.path()), num_labels=1, device="cpu").save(str(folder))
    return folder


def test_the_reranker_orders_the_first_stage_by_its_own_scores(
    corpus: Path, cross_encoder: Path, local_client: LocalClient
) -> None:
    from sentence_transformers import CrossEncoder

    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    reranker = load_reranker(str(cross_encoder))
    retriever = Retriever(store, local_client.embedder.embed, reranker=reranker, rerank_depth=4)
    question = "how do I test my app?"

    candidates = retriever.search(question, k=4, rerank=False)
    reranked = retriever.search(question, k=2)

    scores = CrossEncoder(str(cross_encoder), device="cpu").predict(
        [(question, hit.text) for hit in candidates]
    )
    expected = [candidates[i].chunk_id for i in np.argsort(-scores)[:2]]
    assert isinstance(reranker, CrossEncoderReranker) and len(candidates) == 4
    assert [hit.chunk_id for hit in reranked] == expected
    assert [hit.score for hit in reranked] == pytest.approx(sorted(scores, reverse=True)[:2])


def test_the_answer_reports_rerank_time_when_a_reranker_is_set(
    tmp_path: Path,
    corpus: Path,
    cross_encoder: Path,
    gateway: EmbeddedServer,
    upstream: FakeUpstream,
    local_client: LocalClient,
) -> None:
    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    settings = RagSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        data_dir=tmp_path / "state",  # the question log goes here, not to the user's folder
        model="chain",
        rerank_model=str(cross_encoder),
        rerank_depth=4,
        auth="open",  # about reranking; who may call is test_rag_auth.py's subject
    )
    upstream.default = ok("TestClient calls your application without a server [1].")
    llm = GatewayClient(gateway.url, api_key=KEY)
    app = create_app(settings, llm=llm, store=store, embedder=local_client.embedder)
    with TestClient(app) as client:
        question = {"question": "How do I test my app?", "k": 2, "include_contexts": True}
        body = client.post("/ask", json=question).json()
        metrics = client.get("/metrics").text

    assert set(body["latency_ms"]) == {"retrieve", "rerank", "generate", "total"}
    assert len(body["contexts"]) == 2
    assert 'rag_stage_duration_seconds_count{stage="rerank"} 1.0' in metrics


def test_an_unloadable_reranker_says_how_to_fix_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "empty").mkdir()

    with pytest.raises(ConfigError, match=r"RAG_RERANK_MODEL=.*CrossEncoder"):
        load_reranker(str(tmp_path / "empty"))
    assert load_reranker(None) is None


# --- The LLM judge -------------------------------------------------------------------------------


def test_the_judge_scores_answers_over_http_and_retries_an_invalid_reply(
    gateway: EmbeddedServer, upstream: FakeUpstream
) -> None:
    upstream.script(
        ok(
            '{"verdicts": [{"sentence": "A", "supported": true}, '
            '{"sentence": "B", "supported": false, "reason": "not in [1]"}]}'
        ),
        ok("Sure! Here is my verdict: supported."),  # no JSON: sent back once
        ok('```json\n{"verdicts": [{"sentence": "C", "supported": true}]}\n```'),
        ok("not json"),
        ok('{"verdicts": []}'),  # an empty list is invalid too: counted as a failure
    )

    async def run() -> list[float | None]:
        client = GatewayClient(gateway.url, api_key=KEY)

        async def chat(messages: list[ChatMessage]) -> str:
            return (await client.achat(messages, model="chain", max_tokens=400)).text

        judge = Judge(chat, load_judge_prompt(), "chain")
        scores = []
        for answer in ("A. B.", "C.", "D."):
            judged = await judge.judge("Q?", answer, ["source one", "source two"])
            scores.append(judged.faithfulness if judged else None)
        await client.aclose()
        return scores

    assert asyncio.run(run()) == [0.5, 1.0, None]
    first = upstream.requests[0].body["messages"]
    assert first[0]["content"] == load_judge_prompt().system
    assert "[1] source one" in first[1]["content"] and "Answer: A. B." in first[1]["content"]
    retry = upstream.requests[2].body["messages"]
    assert retry[-2]["content"] == "Sure! Here is my verdict: supported."
    assert "not valid" in retry[-1]["content"]


def test_answer_evaluation_adds_the_judges_faithfulness(
    corpus: Path, gateway: EmbeddedServer, upstream: FakeUpstream, local_client: LocalClient
) -> None:
    from prometheus_client import CollectorRegistry

    from kit.evaluate.answers import evaluate_answers
    from kit.evaluate.rag import Question
    from kit.rag_service.app import rag_service_with
    from kit.rag_service.metrics import RagMetrics

    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    settings = RagSettings(_env_file=None, environment="test", model="chain")  # type: ignore[call-arg]
    upstream.script(  # answer 1, its verdict, answer 2, its verdict; question 3 is refused
        ok("Background tasks run after the response is sent [1]."),
        ok('{"verdicts": [{"sentence": "Background tasks run after", "supported": true}]}'),
        ok("Path parameters are typed [1]. They also cache results [1]."),
        ok(
            '{"verdicts": [{"sentence": "typed", "supported": true}, '
            '{"sentence": "cache", "supported": false}]}'
        ),
    )
    questions = [
        Question("q1", "When do background tasks run?", frozenset({"background.md"})),
        Question("q2", "How are path parameters typed?", frozenset({"paths.md"})),
        Question("q3", "What is a good lasagna recipe?", frozenset()),
    ]

    async def run():  # type: ignore[no-untyped-def]
        llm = GatewayClient(gateway.url, api_key=KEY)
        async with rag_service_with(
            settings,
            RagMetrics(CollectorRegistry()),
            llm,
            local_client.embedder,
            store=store,
        ) as service:

            async def chat(messages: list[ChatMessage]) -> str:
                return (await llm.achat(messages, model="chain", max_tokens=400)).text

            judge = Judge(chat, load_judge_prompt(), "chain")
            result = await evaluate_answers(service.ask, questions, judge)
        await llm.aclose()
        return result

    result = asyncio.run(run())

    assert [row["judge_faithfulness"] for row in result.rows] == [1.0, 0.5, None]
    assert result.metrics["judge_faithfulness"] == 0.75
    assert result.metrics["judge_failures"] == 0
    assert len(upstream.requests) == 4


class CountingEmbedder:
    """The shipped embedder, counting the texts it is asked to embed."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.dimension = inner.name, inner.dimension
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        return self.inner.embed(texts)


@pytest.mark.parametrize("mode", ["hybrid", "keyword", "dense"])
def test_an_answer_embeds_its_question_once_whatever_it_retrieves(
    corpus: Path, cross_encoder: Path, local_client: LocalClient, mode: str
) -> None:
    """The first stage, the relevance check (a dense search) and the reranker's stage reuse one
    vector: before, /ask embedded the question twice."""
    from prometheus_client import CollectorRegistry

    from kit.rag_service.app import rag_service_with
    from kit.rag_service.metrics import RagMetrics

    store = QdrantStore(QdrantClient(":memory:"), "docs")
    ingest([corpus], store, local_client.embedder, IngestOptions(), root=corpus)
    settings = RagSettings(
        _env_file=None,  # type: ignore[call-arg]
        environment="test",
        mode=mode,
        rerank_model=str(cross_encoder),
        rerank_depth=4,
    )
    counting = CountingEmbedder(local_client.embedder)
    question = "How do I test my app?"

    async def ask() -> AskResult:
        model = ScriptedModel.repeating("Use TestClient [1].")
        metrics = RagMetrics(CollectorRegistry())
        async with rag_service_with(settings, metrics, model, counting, store=store) as service:
            return await service.ask(question, k=2)

    result = asyncio.run(ask())

    assert counting.calls == [[question]]
    assert not result.answer.refused and "rerank" in result.latency_ms
