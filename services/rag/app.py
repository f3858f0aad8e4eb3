"""The RAG service's app factory; every client (Qdrant, embedder, gateway) is made in the lifespan.

    app = create_app(RagSettings())       # what `kit serve rag` runs under uvicorn

Callers need a key from RAG_KEYS_FILE (`kit rag keys create`; RAG_AUTH=keys, the default), read
here and re-read when it changes, so a revoked key stops working without a restart.
The model is reached through the gateway: GATEWAY_URL when set, else a gateway started inside
this process (embedded mode). So are the embeddings when KIT_EMBEDDER=gateway:ALIAS; by default
MiniLM runs in this process. Tests pass their own `llm`, `store`, `embedder` and `keys`.
Qdrant being down does not stop start-up: /readyz and /ask answer 503 until it is back.
Each /ask question also goes to the query log (RAG_QUERY_LOG), the sample store `kit drift` reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from pipelines.drift.store import QueryLog
from pipelines.ingest.index import ChunkStore, StoreUnavailableError, open_client
from pipelines.rerank import load_reranker
from services.common.embedded import EmbeddedServer
from services.common.embedders import Embedder, GatewayEmbedder, gateway_model
from services.common.errors import KitError
from services.common.gateway_client import (
    AsyncGatewayClient,
    GatewayClient,
    start_embedded_gateway,
)
from services.common.http_security import add_http_security
from services.common.keys import KeyStore
from services.common.local_models import load_embedder
from services.common.logging import configure_logging, get_logger
from services.common.metrics import HttpMetrics, HttpMetricsMiddleware, add_metrics_route
from services.common.request_id import RequestIdMiddleware
from services.common.request_limits import BodySizeLimitMiddleware
from services.common.settings import load_settings
from services.rag.answer import load_prompt
from services.rag.auth import RagKey, watch_keys
from services.rag.errors import install_error_handlers
from services.rag.metrics import RagMetrics
from services.rag.routes import ask, health, ingest
from services.rag.service import AsyncLLM, RagService
from services.rag.settings import RagSettings

log = get_logger("rag")


def create_app(
    settings: RagSettings | None = None,
    *,
    llm: AsyncLLM | None = None,
    store: ChunkStore | None = None,
    embedder: Embedder | None = None,
    keys: KeyStore[RagKey] | None = None,
) -> FastAPI:
    settings = settings or load_settings(RagSettings)
    configure_logging(settings)
    try:
        load_prompt(settings.prompt)  # fail at start-up on a missing or invalid prompt file
    except ValueError as exc:
        raise KitError(str(exc)) from None
    if keys is None:  # a broken keys file stops start-up here, with its message
        keys = watch_keys(settings.resolved_keys_file)
    if settings.auth == "keys" and not len(keys):
        log.warning(
            "no_api_keys",
            message="No RAG keys yet: every /ask and /ingest is refused with 401. Create one "
            "with `kit rag keys create --id NAME` (--admin for /ingest).",
            keys_file=str(settings.resolved_keys_file),
        )
    registry = CollectorRegistry()
    metrics = RagMetrics(registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with rag_service(settings, metrics, llm=llm, store=store, embedder=embedder) as svc:
            app.state.service = svc
            yield

    app = FastAPI(
        title="AI engineering kit: RAG service",
        version="0.1.0",
        lifespan=lifespan,
        summary="Answers from your documents, with checked citations.",
    )
    app.state.settings = settings
    app.state.keys = keys
    # Only a path and a rate here: the file is opened on each write, never at start-up.
    app.state.query_log = (
        QueryLog(settings.query_log, settings.query_log_sample_rate)
        if settings.query_log is not None and settings.query_log_sample_rate > 0
        else None
    )

    install_error_handlers(app)  # the body's shape, 4xx and model failures: services/rag/errors.py
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        fix="send a shorter question, ingest a folder instead of many paths, or raise "
        "RAG_MAX_BODY_BYTES.",
    )

    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry, service="rag"))
    app.add_middleware(RequestIdMiddleware)
    add_http_security(app, settings)  # host check and CORS: before anything else runs
    for module in (ask, ingest, health):
        app.include_router(module.router)
    add_metrics_route(app, registry)
    return app


@asynccontextmanager
async def rag_service(
    settings: RagSettings,
    metrics: RagMetrics,
    *,
    llm: AsyncLLM | None = None,
    store: ChunkStore | None = None,
    embedder: Embedder | None = None,
) -> AsyncIterator[RagService]:
    """A ready `RagService` with its clients, closed on exit (the app's lifespan, `kit ask`)."""
    embedding_alias = gateway_model(settings.embedder)
    needs_gateway = llm is None or (embedder is None and embedding_alias is not None)
    server: EmbeddedServer | None = None
    if needs_gateway and settings.gateway_url is not None:
        url = str(settings.gateway_url)
        key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
    elif needs_gateway:  # embedded mode: the gateway runs inside this process
        started, key = await asyncio.to_thread(start_embedded_gateway, settings)
        server, url = started, started.url
    chunk_store = store or ChunkStore(open_client(settings), settings.collection)
    client: AsyncGatewayClient | None = None
    embedding_client: GatewayClient | None = None
    service: RagService | None = None
    try:
        if llm is None:
            client = AsyncGatewayClient(url, api_key=key)
        if embedder is None and embedding_alias is not None:
            embedding_client = GatewayClient(url, api_key=key)
            embedder = await asyncio.to_thread(
                GatewayEmbedder, embedding_client, embedding_alias, settings.embed_batch_size
            )
        elif embedder is None:
            embedder = await asyncio.to_thread(load_embedder, settings)
        reranker = await asyncio.to_thread(load_reranker, settings.rerank_model)
        model = llm if llm is not None else client
        assert model is not None  # one of the two, by construction
        service = RagService(settings, chunk_store, embedder, model, metrics, reranker)
        try:  # a mismatched collection stops start-up; Qdrant being down does not (see below)
            await asyncio.to_thread(service.check_collection)
        except StoreUnavailableError as exc:
            # Start anyway: /readyz answers 503 with the reason, /ask answers 503, and both
            # recover on their own once Qdrant is back, with no restart (a crash loop would
            # only hide the reason behind a restart counter).
            log.warning("qdrant_unavailable_at_start", error=str(exc))
        yield service
    finally:
        if service is not None:
            service.jobs.close()
        if client is not None:
            await client.aclose()
        if embedding_client is not None:
            embedding_client.close()
        if server is not None:
            await asyncio.to_thread(server.stop)
        if store is None:
            chunk_store.close()
