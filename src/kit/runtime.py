"""How one process reaches its models: the wiring the settings ask for, in one place.

    with connect_gateway(settings) as client:     # GATEWAY_URL, or a gateway in this process
        client.chat([{"role": "user", "content": "Hi"}], model="local")
    with open_embedder(settings) as embedder:     # KIT_EMBEDDER: MiniLM here, or a gateway alias
        embedder.embed(["a text"])
    async with rag_service(settings) as service:  # the RAG pipeline with its models (kit ask)
        await service.ask("How do I declare a path parameter?")
    app = rag_app(settings)                       # the RAG service's app (kit serve rag)

This is the composition root: the only module that knows both the services and the clients.
The gateway knows nothing of who embeds it; the RAG service takes its chat model and embedder as
ports (kit.core.ports) and knows nothing of where they run; the model clients know nothing of
either. So "GATEWAY_URL unset means a gateway in this process" is decided here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from kit.core.ports import Embedder
from kit.core.settings import KitSettings
from kit.llm.embedders import GatewayEmbedder, gateway_model
from kit.llm.gateway_client import GatewayClient
from kit.llm.local_models import load_embedder
from kit.rag_service.app import create_app, rag_service_with
from kit.rag_service.metrics import RagMetrics
from kit.rag_service.service import RagService
from kit.rag_service.settings import RagSettings


def connect_gateway(settings: KitSettings) -> GatewayClient:
    """A client of the gateway at GATEWAY_URL, or of one started in this process when it is
    unset (the same app, with a key made for this client); closing the client stops it."""
    if settings.gateway_url is not None:
        key = settings.gateway_api_key.get_secret_value() if settings.gateway_api_key else None
        return GatewayClient(str(settings.gateway_url), api_key=key)
    # Imported here: the gateway's own libraries (the `gateway` extra: LiteLLM, aiohttp, Redis)
    # are needed only to run one in this process. The RAG image, which always has a GATEWAY_URL,
    # does not carry them.
    from kit.gateway.embedded import start_in_process

    server, key = start_in_process(settings)
    return GatewayClient(server.url, api_key=key, on_close=server.stop)


@contextmanager
def open_embedder(settings: KitSettings, spec: str | None = None) -> Iterator[Embedder]:
    """The embedder that `spec` (default: KIT_EMBEDDER) names, closed on exit."""
    model = gateway_model(spec or settings.embedder)
    if model is None:
        yield load_embedder(settings)
        return
    with connect_gateway(settings) as client:
        yield GatewayEmbedder(client, model, settings.embed_batch_size)


@asynccontextmanager
async def rag_models(settings: RagSettings) -> AsyncIterator[tuple[GatewayClient, Embedder]]:
    """The RAG service's chat model (a gateway alias, RAG_MODEL) and its embedder (KIT_EMBEDDER),
    both open until the block ends. One gateway serves both when the embedder is an alias."""
    async with AsyncExitStack() as stack:
        client = await asyncio.to_thread(connect_gateway, settings)
        stack.callback(client.close)
        alias = gateway_model(settings.embedder)
        embedder: Embedder
        if alias is None:
            embedder = await asyncio.to_thread(load_embedder, settings)
        else:
            embedder = await asyncio.to_thread(
                GatewayEmbedder, client, alias, settings.embed_batch_size
            )
        yield client, embedder


@asynccontextmanager
async def rag_service(settings: RagSettings) -> AsyncIterator[RagService]:
    """The RAG pipeline with the models the settings name, outside any web app (`kit ask`,
    `kit eval answers`, notebooks)."""
    async with (
        rag_models(settings) as (chat, embedder),
        rag_service_with(settings, RagMetrics(CollectorRegistry()), chat, embedder) as service,
    ):
        yield service


def rag_app(settings: RagSettings) -> FastAPI:
    """The RAG service's app, with the models the settings name (what `kit serve rag` runs)."""
    return create_app(settings, models=rag_models)
