"""The RAG service's app factory; every client (Qdrant, the models) is opened in the lifespan.

    app = create_app(settings, models=rag_models)   # kit.runtime.rag_app: what `kit serve rag` runs
    app = create_app(settings, llm=model, embedder=embedder)   # tests: models already made

The service takes its chat model and embedder as ports (kit.core.ports) and knows nothing of
where they run: `models` opens them for the app's lifetime (kit.runtime says: the gateway at
GATEWAY_URL or one in this process, MiniLM or a gateway alias). Callers need a key from
RAG_KEYS_FILE (`kit rag keys create`; RAG_AUTH=keys, the default), read here and re-read when it
changes, so a revoked key stops working without a restart. Qdrant being down does not stop
start-up: /readyz and /ask answer 503 until it is back. Each /ask question also goes to the
query log (RAG_QUERY_LOG), the sample store `kit drift` reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from kit.core.errors import KitError
from kit.core.keys import KeyStore
from kit.core.logging import configure_logging, get_logger
from kit.core.ports import ChatModel, Embedder
from kit.core.settings import load_settings
from kit.drift.store import QueryLog
from kit.rag.answer import PromptChoice, choose_prompt
from kit.rag.rerank import load_reranker
from kit.rag.store import ChunkStore, StoreUnavailableError, open_store
from kit.rag_service.auth import RagKey, watch_keys
from kit.rag_service.errors import install_error_handlers
from kit.rag_service.metrics import RagMetrics
from kit.rag_service.routes import ask, health, ingest
from kit.rag_service.service import RagService
from kit.rag_service.settings import RagSettings
from kit.web.http_security import add_http_security
from kit.web.metrics import HttpMetrics, HttpMetricsMiddleware, add_metrics_route
from kit.web.request_id import RequestIdMiddleware
from kit.web.request_limits import BodySizeLimitMiddleware
from kit.web.tracing import instrument_app

log = get_logger("rag")


# Opens the chat model and the embedder for as long as the block lasts (kit.runtime.rag_models).
ModelSource = Callable[[RagSettings], AbstractAsyncContextManager[tuple[ChatModel, Embedder]]]


def create_app(
    settings: RagSettings | None = None,
    *,
    models: ModelSource | None = None,
    llm: ChatModel | None = None,
    embedder: Embedder | None = None,
    store: ChunkStore | None = None,
    keys: KeyStore[RagKey] | None = None,
) -> FastAPI:
    """The app, with its models opened by `models`, or given as `llm` and `embedder`."""
    if models is None and (llm is None or embedder is None):
        raise TypeError(
            "create_app needs its models: `models` (kit.runtime.rag_models opens those the "
            "settings name; kit.runtime.rag_app does it all), or both `llm` and `embedder`."
        )
    settings = settings or load_settings(RagSettings)
    configure_logging(settings)
    try:  # fail at start-up on a missing or invalid prompt file or registry version
        prompt = choose_prompt(settings.prompt, settings)
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
        # One exit stack: whatever was opened before a failure is closed, in reverse order.
        async with AsyncExitStack() as stack:
            if models is not None:
                chat, vectors = await stack.enter_async_context(models(settings))
            else:
                assert llm is not None and embedder is not None  # checked above
                chat, vectors = llm, embedder
            app.state.service = await stack.enter_async_context(
                rag_service_with(settings, metrics, chat, vectors, store=store, prompt=prompt)
            )
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

    install_error_handlers(app)  # the body's shape, 4xx and model failures: errors.py
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        fix="send a shorter question, ingest a folder instead of many paths, or raise "
        "RAG_MAX_BODY_BYTES.",
    )

    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry, service="rag"))
    app.add_middleware(RequestIdMiddleware)
    add_http_security(app, settings)  # host check and CORS: before anything else runs
    instrument_app(app, settings, service="rag")  # a server span per request
    for module in (ask, ingest, health):
        app.include_router(module.router)
    add_metrics_route(app, registry)
    return app


@asynccontextmanager
async def rag_service_with(
    settings: RagSettings,
    metrics: RagMetrics,
    llm: ChatModel,
    embedder: Embedder,
    *,
    store: ChunkStore | None = None,
    prompt: PromptChoice | None = None,
) -> AsyncIterator[RagService]:
    """A ready `RagService` over these models, its store (made from the settings unless given,
    and then closed on exit) and the reranker RAG_RERANK_MODEL names."""
    async with AsyncExitStack() as stack:
        if store is None:
            store = stack.enter_context(open_store(settings))
        reranker = await asyncio.to_thread(load_reranker, settings.rerank_model)
        service = RagService(settings, store, embedder, llm, metrics, reranker, prompt=prompt)
        stack.callback(service.jobs.close)
        try:  # a mismatched collection stops start-up; Qdrant being down does not (see below)
            await asyncio.to_thread(service.check_collection)
        except StoreUnavailableError as exc:
            # Start anyway: /readyz answers 503 with the reason, /ask answers 503, and both
            # recover on their own once Qdrant is back, with no restart (a crash loop would
            # only hide the reason behind a restart counter).
            log.warning("qdrant_unavailable_at_start", error=str(exc))
        yield service
