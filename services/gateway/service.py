"""What happens to one model request, from an authenticated key to an accounted answer.

    budget check -> rate limit -> cache look-up -> single flight -> router (fallback chain)
      -> tokens and cost recorded -> cache store -> one log line

This is the gateway without HTTP: the routes only parse, call these methods and shape responses,
so the same steps can be read (and tested) in one place.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from services.common.logging import get_logger
from services.gateway.auth import ApiKey
from services.gateway.cache import CacheBackend, SingleFlight, cache_key, is_cacheable
from services.gateway.config import ResolvedDeployment
from services.gateway.errors import error_body
from services.gateway.limits import Budgets, Limits
from services.gateway.metrics import GatewayMetrics
from services.gateway.pricing import Pricing
from services.gateway.providers.base import ChatAnswer, ChatCall, ProviderError
from services.gateway.redact import redact
from services.gateway.router import Routed, Router, without_key
from services.gateway.semantic_cache import SemanticCache
from services.gateway.settings import GatewaySettings

log = get_logger("gateway")

# Request fields that are not model parameters, so are not sent to providers as such.
_ENVELOPE = frozenset({"model", "messages", "stream", "stream_options"})


@dataclass(frozen=True)
class Outcome:
    body: dict[str, Any]
    alias: str
    deployment: str
    cache: str  # hit | semantic_hit | miss | shared | bypass | off
    fallbacks: int = 0


class Gateway:
    def __init__(
        self,
        settings: GatewaySettings,
        router: Router,
        cache: CacheBackend | None,
        limits: Limits,
        budgets: Budgets,
        pricing: Pricing,
        metrics: GatewayMetrics,
        semantic: SemanticCache | None = None,
    ) -> None:
        self.settings = settings
        self.router = router
        self.cache = cache
        self.limits = limits
        self.budgets = budgets
        self.pricing = pricing
        self.metrics = metrics
        self.semantic = semantic
        self.flight = SingleFlight()

    async def admit(self, key: ApiKey) -> None:
        """Budget first (a spent key gets the budget message, not a rate limit), then limits."""
        try:
            await self.budgets.check(key)
        except Exception:
            self.metrics.rejected.labels(key.id, "budget").inc()
            raise
        try:
            await self.limits.admit(key)
        except Exception:
            self.metrics.rejected.labels(key.id, "rate").inc()
            raise

    async def chat(self, key: ApiKey, request: dict[str, Any], *, use_cache: bool) -> Outcome:
        started = time.perf_counter()
        await self.admit(key)
        alias, _ = self.router.chain(request.get("model"), "chat")
        call = ChatCall(
            request["messages"], {k: v for k, v in request.items() if k not in _ENVELOPE}
        )

        caches_on = self.cache is not None or self.semantic is not None
        if not (
            caches_on and use_cache and is_cacheable(request, self.settings.cache_nondeterministic)
        ):
            routed = await self.router.chat(alias, call)
            outcome = await self._answered(key, alias, routed, "bypass" if caches_on else "off")
        else:
            outcome = await self._cached_or_called(key, alias, call, request)
            self.metrics.cache.labels(alias, outcome.cache).inc()
        self._log(key, outcome, started, request)
        return outcome

    async def _cached_or_called(
        self, key: ApiKey, alias: str, call: ChatCall, request: dict[str, Any]
    ) -> Outcome:
        """Exact cache, then semantic cache, then one upstream call per identical burst."""
        entry_key = cache_key(alias, request)
        if self.cache is not None and (entry := await self.cache.get(entry_key)) is not None:
            return Outcome(entry["body"], alias, entry["deployment"], "hit")
        if self.semantic is not None:
            found = await self.semantic.get(alias, request)
            if found is not None:
                entry, similarity = found
                log.debug("semantic_cache_hit", alias=alias, similarity=round(similarity, 4))
                return Outcome(entry["body"], alias, entry["deployment"], "semantic_hit")

        async def call_upstream() -> Outcome:
            routed = await self.router.chat(alias, call)
            answered = await self._answered(key, alias, routed, "miss")
            entry = {"body": answered.body, "deployment": answered.deployment}
            if self.cache is not None:
                await self.cache.set(entry_key, entry)
            if self.semantic is not None:
                await self.semantic.set(alias, request, entry)
            return answered

        outcome, shared = await self.flight.run(entry_key, call_upstream)
        return Outcome(outcome.body, alias, outcome.deployment, "shared") if shared else outcome

    async def _answered(
        self, key: ApiKey, alias: str, routed: Routed[ChatAnswer], cache: str
    ) -> Outcome:
        answer, deployment = routed.result, routed.deployment
        await self._account(key, alias, deployment, answer.prompt_tokens, answer.completion_tokens)
        return Outcome(answer.body, alias, deployment.name, cache, routed.fallbacks)

    async def stream(
        self, key: ApiKey, request: dict[str, Any]
    ) -> tuple[str, str, AsyncIterator[dict[str, Any]]]:
        """Start a stream; returns (alias, deployment, chunks). Streams are not cached."""
        started = time.perf_counter()
        await self.admit(key)
        alias, _ = self.router.chain(request.get("model"), "chat")
        call = ChatCall(
            request["messages"], {k: v for k, v in request.items() if k not in _ENVELOPE}
        )
        routed = await self.router.stream(alias, call)
        first, rest = routed.result
        deployment = routed.deployment
        self.metrics.ttft.labels(alias, deployment.name).observe(time.perf_counter() - started)
        wants_usage = bool((request.get("stream_options") or {}).get("include_usage"))

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            usage: dict[str, Any] = {}
            pieces: list[str] = []
            status = "error"  # until the stream completes
            try:
                async for chunk in _starting_with(first, rest):
                    if chunk.get("usage"):
                        usage = chunk["usage"]
                        if not wants_usage:
                            continue  # the client did not ask for the usage chunk
                    if self.settings.log_prompts:
                        pieces.extend(
                            c.get("delta", {}).get("content") or ""
                            for c in chunk.get("choices", [])
                        )
                    yield chunk
                status = "200"
            except ProviderError as raw:
                # Headers and the first chunks are already sent, so the status cannot change:
                # OpenAI's streams end with an error event instead, which the SDKs raise.
                error = without_key(raw, deployment)
                log.warning(
                    "stream_interrupted", alias=alias, deployment=deployment.name, error=str(error)
                )
                message = f"The upstream stream of {deployment.name!r} broke off: {error}"
                yield error_body(message, "upstream_error", "stream_interrupted")
            finally:
                await self._account(
                    key,
                    alias,
                    deployment,
                    usage.get("prompt_tokens", 0),
                    usage.get("completion_tokens", 0),
                    status=status,
                )
                outcome = Outcome({"usage": usage}, alias, deployment.name, "off", routed.fallbacks)
                self._log(key, outcome, started, request, answer="".join(pieces), stream=True)

        return alias, deployment.name, chunks()

    async def embed(self, key: ApiKey, alias: str | None, texts: list[str]) -> Outcome:
        started = time.perf_counter()
        await self.admit(key)
        routed = await self.router.embed(alias, texts)
        name, deployment = routed.deployment.name, routed.deployment
        resolved_alias, _ = self.router.chain(alias, "embedding")
        await self._account(key, resolved_alias, deployment, routed.result.prompt_tokens, 0)
        body = {
            "object": "list",
            "model": deployment.spec.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(routed.result.vectors)
            ],
            "usage": {
                "prompt_tokens": routed.result.prompt_tokens,
                "total_tokens": routed.result.prompt_tokens,
            },
        }
        outcome = Outcome(body, resolved_alias, name, "off", routed.fallbacks)
        self._log(key, outcome, started, {"input_count": len(texts)})
        return outcome

    async def _account(
        self,
        key: ApiKey,
        alias: str,
        deployment: ResolvedDeployment,
        prompt_tokens: int,
        completion_tokens: int,
        status: str = "200",
    ) -> None:
        name = deployment.name
        self.metrics.requests.labels(alias, name, status).inc()
        self.metrics.tokens.labels(alias, name, "prompt").inc(prompt_tokens)
        self.metrics.tokens.labels(alias, name, "completion").inc(completion_tokens)
        cost = self.pricing.cost(deployment, prompt_tokens, completion_tokens)
        if cost:
            self.metrics.cost.labels(alias, name, key.id).inc(cost)
        spent = await self.budgets.spend(key, cost)
        if key.budget_usd:
            self.metrics.budget_used.labels(key.id).set(spent / key.budget_usd)
        await self.limits.charge_tokens(key, prompt_tokens + completion_tokens)

    def _log(
        self,
        key: ApiKey,
        outcome: Outcome,
        started: float,
        request: dict[str, Any],
        *,
        answer: str | None = None,
        stream: bool = False,
    ) -> None:
        seconds = time.perf_counter() - started
        self.metrics.latency.labels(outcome.alias, outcome.deployment).observe(seconds)
        usage = outcome.body.get("usage") or {}
        fields: dict[str, Any] = {
            "key_id": key.id,
            "alias": outcome.alias,
            "deployment": outcome.deployment,
            "latency_ms": round(seconds * 1000, 2),
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "cache": outcome.cache,
            "fallbacks": outcome.fallbacks,
            "stream": stream,
        }
        if self.settings.log_prompts:
            if answer is None:
                choices = outcome.body.get("choices") or [{}]
                answer = str((choices[0].get("message") or {}).get("content") or "")
            prompt = "\n".join(str(m.get("content", "")) for m in request.get("messages", []))
            clean = redact if self.settings.redact else str
            fields |= {"prompt": clean(prompt), "answer": clean(answer)}
        log.info("model_request", **fields)


async def _starting_with(
    first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """The chunk the router already received (to commit to a deployment), then the others."""
    yield first
    async for chunk in rest:
        yield chunk
