"""The gateway's app factory: configuration validated here, every client made in the lifespan.

    app = create_app(GatewaySettings())        # what `kit serve gateway` runs under uvicorn

Tests build apps with their own settings and models file; nothing is created at import time.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.datastructures import State

from kit.core import tracking
from kit.core.logging import configure_logging, get_logger
from kit.core.settings import load_settings
from kit.gateway.auth import ApiKey, KeyStore, watch_keys
from kit.gateway.cache import CacheBackend, MemoryCache, RedisCache
from kit.gateway.config import load_models
from kit.gateway.errors import install_error_handlers
from kit.gateway.limits import Budgets, Limits
from kit.gateway.metrics import GatewayMetrics
from kit.gateway.pricing import Pricing
from kit.gateway.providers import build_providers
from kit.gateway.providers.local import LocalProvider
from kit.gateway.redis_health import RedisLink
from kit.gateway.router import Router
from kit.gateway.routes import chat, embeddings, health, models
from kit.gateway.service import Gateway
from kit.gateway.settings import GatewaySettings
from kit.llm.local_client import LocalClient
from kit.web.http_security import add_http_security
from kit.web.metrics import HttpMetrics, HttpMetricsMiddleware, add_metrics_route
from kit.web.request_id import RequestIdMiddleware
from kit.web.request_limits import BodySizeLimitMiddleware
from kit.web.tracing import instrument_app

log = get_logger("gateway")


def create_app(
    settings: GatewaySettings | None = None,
    *,
    local: LocalClient | None = None,
    environ: Mapping[str, str] | None = None,
    keys: KeyStore[ApiKey] | None = None,
) -> FastAPI:
    """Build the gateway. `local` shares already-loaded local models (tests, embedded mode);
    `environ` is where provider keys are read from (default: the process environment);
    `keys` replaces the keys file (the embedded client uses one ephemeral key)."""
    settings = settings or load_settings(GatewaySettings)
    configure_logging(settings)
    # Fail fast, before serving: a broken models or keys file stops start-up with its message.
    gateway_models = load_models(settings.models_file, os.environ if environ is None else environ)
    if keys is None:
        keys = watch_keys(settings.resolved_keys_file)
    if settings.auth == "keys" and not len(keys):
        log.warning(
            "no_api_keys",
            keys_file=str(settings.resolved_keys_file),
            fix="create one with `kit gateway keys create --id NAME`",
        )

    registry = CollectorRegistry()
    metrics = GatewayMetrics(registry, redis=settings.redis_url is not None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Every client is pushed on one exit stack as soon as it exists: if a later step fails
        # (a provider that cannot be built, say), the ones already open are closed, in reverse.
        async with AsyncExitStack() as stack:
            redis: RedisLink | None = None
            if settings.redis_url is not None:
                redis = RedisLink(
                    settings.redis_url.get_secret_value(), on_change=metrics.redis_up.set
                )
                stack.push_async_callback(redis.aclose)
                # Redis down at start-up is not fatal: the gateway starts degraded (memory,
                # logged, /readyz says so) and switches to Redis when it answers. Refusing to
                # start would turn a Redis outage plus one pod restart into a gateway outage.
                await redis.check()
            app.state.redis = redis
            # One connection pool for every OpenAI-compatible deployment, kept alive.
            http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=512, ttl_dns_cache=300)
            )
            stack.push_async_callback(http.close)
            local_client = local or LocalClient(settings)
            providers = build_providers(
                gateway_models, http, local_client, tracking_uri=tracking.tracking_uri(settings)
            )
            for provider in providers.values():
                stack.push_async_callback(provider.aclose)
            router = Router(
                gateway_models,
                providers,
                on_fallback=lambda alias, frm, why: metrics.fallbacks.labels(alias, frm, why).inc(),
            )
            cache: CacheBackend | None = None
            if settings.cache_ttl_s > 0:
                memory = MemoryCache(settings.cache_ttl_s, settings.cache_max_entries)
                cache = memory if redis is None else RedisCache(redis, settings.cache_ttl_s, memory)
                stack.push_async_callback(cache.aclose)
            semantic = None
            if settings.semantic_cache:
                from kit.gateway.semantic_cache import SemanticCache

                semantic = SemanticCache(
                    local_client,
                    threshold=settings.semantic_threshold,
                    ttl_s=settings.cache_ttl_s or 300,
                    qdrant_url=str(settings.qdrant_url) if settings.qdrant_url else None,
                    qdrant_api_key=(
                        settings.qdrant_api_key.get_secret_value()
                        if settings.qdrant_api_key
                        else None
                    ),
                )
                stack.push_async_callback(semantic.aclose)
            app.state.gateway = Gateway(
                settings,
                router,
                cache,
                Limits(redis),
                Budgets(redis, hold_s=settings.budget_hold_s),
                Pricing(),
                metrics,
                semantic,
            )
            # Load local models in the background; /readyz answers 503 until they are in memory.
            app.state.warm = asyncio.Event()
            app.state.warm_error = None
            locals_ = [p for p in providers.values() if isinstance(p, LocalProvider)]
            warming = asyncio.create_task(_warm_up(locals_, app.state))
            stack.callback(warming.cancel)
            log.info(
                "gateway_started",
                aliases=sorted(gateway_models.chains),
                disabled=gateway_models.disabled,
                redis=redis.status if redis else "not configured",
            )
            yield

    app = FastAPI(
        title="AI engineering kit: model gateway",
        summary="An OpenAI-compatible API in front of local and cloud models.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.keys = keys
    app.state.registry = registry
    install_error_handlers(app)
    # The last added runs first: the host check and CORS, request ids (on every log line),
    # metrics, then the body limit.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        fix="send less (fewer or shorter messages), or raise GATEWAY_MAX_BODY_BYTES.",
    )
    app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(registry, service="gateway"))
    app.add_middleware(RequestIdMiddleware)
    add_http_security(app, settings)
    instrument_app(app, settings, service="gateway")  # a server span per request
    for module in (chat, embeddings, models, health):
        app.include_router(module.router)
    add_metrics_route(app, registry)
    return app


async def _warm_up(providers: list[LocalProvider], state: State) -> None:
    """Load each local model; a failure is logged and reported by /readyz, never swallowed."""
    for provider in providers:
        try:
            await asyncio.to_thread(provider.warm_up)
        except Exception:
            # /readyz is unauthenticated: it names the model, and the log holds the exception
            # (its text may carry server paths or library internals).
            state.warm_error = f"{provider.model} failed to load (see event local_model_failed)"
            log.exception("local_model_failed", model=provider.model)
            return
    state.warm.set()
