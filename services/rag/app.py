"""The RAG service's app factory; every client (Qdrant, embedder, gateway) is made in the lifespan.

    app = create_app(RagSettings())       # what `kit serve rag` runs under uvicorn

The model is reached through the gateway: GATEWAY_URL when set, else a gateway started inside
this process (embedded mode). Tests pass their own `llm` and `store`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from prometheus_client import CollectorRegistry
from starlette.responses import JSONResponse

from pipelines.ingest.index import ChunkStore, open_client
from services.common.embedded import EmbeddedServer
from services.common.errors import KitError
from services.common.gateway_client import AsyncGatewayClient, GatewayRequestError
from services.common.local_models import LocalEmbedder, load_embedder
from services.common.logging import configure_logging
from services.common.metrics import HttpMetrics, HttpMetricsMiddleware, add_metrics_route
from services.common.request_id import RequestIdMiddleware
from services.common.settings import load_settings
from services.rag.answer import load_prompt
from services.rag.metrics import RagMetrics
from services.rag.routes import ask, health, ingest
from services.rag.service import AsyncLLM, RagService
from services.rag.settings import RagSettings


def create_app(
    settings: RagSettings | None = None,
    *,
    llm: AsyncLLM | None = None,
    store: ChunkStore | None = None,
    embedder: LocalEmbedder | None = None,
) -> FastAPI:
    settings = settings or load_settings(RagSettings)
    configure_logging(settings)
    try:
        load_prompt(settings.prompt)  # fail at start-up on a missing or invalid prompt file
    except ValueError as exc:
        raise KitError(str(exc)) from None
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

    @app.exception_handler(GatewayRequestError)
    async def model_failed(_: Request, exc: GatewayRequestError) -> JSONResponse:
        body = {
            "error": {"type": "model_unavailable", "message": str(exc), "code": None, "param": None}
        }
        return JSONResponse(body, status_code=502 if exc.status >= 500 else exc.status)

    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry, service="rag"))
    app.add_middleware(RequestIdMiddleware)
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
    embedder: LocalEmbedder | None = None,
) -> AsyncIterator[RagService]:
    """A ready `RagService` with its clients, closed on exit (the app's lifespan, `kit ask`)."""
    chunk_store = store or ChunkStore(open_client(settings), settings.collection)
    embed = embedder if embedder is not None else await asyncio.to_thread(load_embedder, settings)
    server: EmbeddedServer | None = None
    client: AsyncGatewayClient | None = None
    model = llm
    if model is None:
        if settings.gateway_url is not None:
            key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
            client = AsyncGatewayClient(str(settings.gateway_url), api_key=key)
        else:  # embedded mode: the gateway runs inside this process
            from services.common.gateway_client import start_embedded_gateway

            started, key = await asyncio.to_thread(start_embedded_gateway, settings)
            server = started
            client = AsyncGatewayClient(started.url, api_key=key)
        model = client
    try:
        yield RagService(settings, chunk_store, embed.embed, embed.dimension, model, metrics)
    finally:
        if client is not None:
            await client.aclose()
        if server is not None:
            await asyncio.to_thread(server.stop)
        if store is None:
            chunk_store.close()
