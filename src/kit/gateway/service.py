"""What happens to one model request, from an authenticated key to an accounted answer.

    media check -> hold the worst-case cost (budget, requests in flight) -> rate limit
      -> cache look-up (the key's tenant only) -> single flight -> router (fallback chain)
      -> tokens and cost recorded, hold released -> cache store -> one log line

This is the gateway without HTTP: the routes only parse, call these methods and shape responses,
so the same steps can be read (and tested) in one place.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.trace import Span

from kit.core.logging import get_logger
from kit.core.redact import redact
from kit.core.tracing import GenAI, input_messages, output_messages, record_content, tracer
from kit.gateway.auth import ApiKey
from kit.gateway.cache import CacheBackend, SingleFlight, cache_key, is_cacheable
from kit.gateway.config import ResolvedDeployment
from kit.gateway.errors import ConcurrencyLimited, InvalidRequest, error_body
from kit.gateway.limits import Budgets, Hold, Limits
from kit.gateway.metrics import GatewayMetrics
from kit.gateway.pricing import Pricing
from kit.gateway.providers.base import ChatAnswer, ChatCall, ProviderError
from kit.gateway.router import Routed, Router, without_key
from kit.gateway.schemas import FORWARDED_CHAT_PARAMS
from kit.gateway.semantic_cache import SemanticCache
from kit.gateway.settings import GatewaySettings

log = get_logger("gateway")


def estimate_tokens(text: str) -> int:
    """A deliberate over-estimate of the tokens in `text`: one per 3 bytes of UTF-8.

    English runs about 4 bytes per token with OpenAI's and most other tokenizers, and scripts
    such as Chinese about 3 (one character, 3 bytes, per token): erring high means a budget is
    never passed on an estimate. Used to hold a request's cost before the call, and to charge a
    request whose provider never reported its usage (a stream cut before the last chunk)."""
    return math.ceil(len(text.encode("utf-8", "replace")) / 3)


def prompt_text(request: dict[str, Any]) -> str:
    """What a provider reads and bills as the prompt: message texts and tool definitions."""
    parts: list[str] = []
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(part.get("text", "")) for part in content)
    if request.get("tools"):
        parts.append(orjson.dumps(request["tools"]).decode())
    return "\n".join(parts)


@dataclass(frozen=True)
class Outcome:
    body: dict[str, Any]
    alias: str
    deployment: str
    cache: str  # hit | semantic_hit | miss | shared | bypass | off
    fallbacks: int = 0


@dataclass
class _Usage:
    """What to charge for one request: tokens, and whether they were counted or estimated."""

    prompt: int = 0
    completion: int = 0
    estimated: bool = False


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

    async def admit(
        self, key: ApiKey, chain: list[ResolvedDeployment], prompt_tokens: int, max_tokens: int
    ) -> Hold:
        """Hold the request's worst-case cost (refused if the budget would be passed, or if the
        key has its limit of requests in flight), then apply the rate limits.

        Budget first, so a spent key gets the budget message rather than a rate limit. The worst
        case is the dearest deployment of the chain (a fallback may answer) answering with every
        token the request may generate."""
        worst = max(self.pricing.cost(d, prompt_tokens, max_tokens) for d in chain)
        concurrent = key.max_concurrent or self.settings.max_concurrent
        try:
            hold = await self.budgets.reserve(key, worst, concurrent)
        except Exception as exc:
            reason = "concurrency" if isinstance(exc, ConcurrencyLimited) else "budget"
            self.metrics.rejected.labels(key.id, reason).inc()
            raise
        try:
            await self.limits.admit(key)
        except Exception:
            self.metrics.rejected.labels(key.id, "rate").inc()
            await self.budgets.settle(hold, 0.0)
            raise
        return hold

    def _checked(
        self, alias: str | None, request: dict[str, Any]
    ) -> tuple[str, ChatCall, list[ResolvedDeployment]]:
        """Resolve the alias, refuse media URLs its deployments would fetch, build the call."""
        name, chain = self.router.chain(alias, "chat")
        if urls := _media_urls(request):
            fetching = [d.name for d in chain if not d.spec.remote_media_urls]
            if fetching:
                raise InvalidRequest(
                    f"{urls[0][:100]!r}: this gateway does not pass media URLs to "
                    f"{', '.join(fetching)}: its provider library would download them from the "
                    "gateway's own network. Send the image or file inline as a data: URL.",
                    param="messages",
                )
        params = {k: v for k, v in request.items() if k in FORWARDED_CHAT_PARAMS}
        return name, ChatCall(request["messages"], params), chain

    def _max_tokens(self, request: dict[str, Any]) -> int:
        """The most tokens the answer may have (the route fills in the default when absent)."""
        requested = request.get("max_tokens") or request.get("max_completion_tokens")
        return int(requested or self.settings.default_max_tokens)

    async def chat(self, key: ApiKey, request: dict[str, Any], *, use_cache: bool) -> Outcome:
        """One chat request, traced as a GenAI `chat` span for the alias: the deployment that
        answered, the fallbacks and cache outcome, tokens and cost; each try below it."""
        alias = request.get("model") or self.router.models.default_model
        with tracer().start_as_current_span(
            f"chat {alias}", attributes=_span_attributes("chat", alias, key, request)
        ) as span:
            record_content(span, GenAI.INPUT_MESSAGES, input_messages(request["messages"]))
            outcome = await self._chat(key, request, use_cache=use_cache)
            _trace_outcome(span, outcome)
            return outcome

    async def _chat(self, key: ApiKey, request: dict[str, Any], *, use_cache: bool) -> Outcome:
        started = time.perf_counter()
        alias, call, chain = self._checked(request.get("model"), request)
        prompt_estimate = estimate_tokens(prompt_text(request))
        hold = await self.admit(key, chain, prompt_estimate, self._max_tokens(request))
        usage = _Usage()
        deployment: ResolvedDeployment | None = None
        try:
            caches_on = self.cache is not None or self.semantic is not None
            if not (
                caches_on
                and use_cache
                and is_cacheable(request, self.settings.cache_nondeterministic)
            ):
                routed = await self.router.chat(alias, call)
                deployment, usage = routed.deployment, _answer_usage(routed.result, request)
                outcome = _outcome(routed, alias, "bypass" if caches_on else "off")
            else:
                outcome, routed_here = await self._cached_or_called(key, alias, call, request)
                if routed_here is not None:  # this request paid for the upstream call
                    deployment = routed_here.deployment
                    usage = _answer_usage(routed_here.result, request)
                self.metrics.cache.labels(alias, outcome.cache).inc()
        finally:
            await self._account(key, hold, alias, deployment, usage)
        self._log(key, outcome, started, request)
        return outcome

    async def _cached_or_called(
        self, key: ApiKey, alias: str, call: ChatCall, request: dict[str, Any]
    ) -> tuple[Outcome, Routed[ChatAnswer] | None]:
        """Exact cache, then semantic cache, then one upstream call per identical burst.

        Every look-up is scoped to the key's tenant. Returns the outcome, and the upstream
        answer when this request is the one that called upstream (so it pays for it)."""
        tenant = key.tenant_id
        entry_key = cache_key(tenant, alias, request)
        if self.cache is not None and (entry := await self.cache.get(entry_key)) is not None:
            return Outcome(entry["body"], alias, entry["deployment"], "hit"), None
        semantic = self.semantic if self.semantic and await self.semantic.fits(request) else None
        if semantic is not None:
            found = await semantic.get(tenant, alias, request)
            if found is not None:
                entry, similarity = found
                log.debug("semantic_cache_hit", alias=alias, similarity=round(similarity, 4))
                return Outcome(entry["body"], alias, entry["deployment"], "semantic_hit"), None

        async def call_upstream() -> Routed[ChatAnswer]:
            routed = await self.router.chat(alias, call)
            entry = {"body": routed.result.body, "deployment": routed.deployment.name}
            if self.cache is not None:
                await self.cache.set(entry_key, entry)
            if semantic is not None:
                await semantic.set(tenant, alias, request, entry)
            return routed

        routed, shared = await self.flight.run(entry_key, call_upstream)
        if shared:
            return Outcome(routed.result.body, alias, routed.deployment.name, "shared"), None
        return _outcome(routed, alias, "miss"), routed

    async def stream(
        self, key: ApiKey, request: dict[str, Any]
    ) -> tuple[str, str, AsyncIterator[dict[str, Any]]]:
        """Start a stream; returns (alias, deployment, chunks). Streams are not cached.

        A stream is charged what its last chunk reports; if it never arrives (the upstream or
        the client hung up first), what was sent is counted and charged as an estimate, never
        nothing."""
        started = time.perf_counter()
        name = request.get("model") or self.router.models.default_model
        # Started here, ended when the stream is settled: it outlives this call.
        span = tracer().start_span(
            f"chat {name}", attributes=_span_attributes("chat", name, key, request)
        )
        record_content(span, GenAI.INPUT_MESSAGES, input_messages(request["messages"]))
        try:
            with trace.use_span(span, end_on_exit=False):
                alias, call, chain = self._checked(request.get("model"), request)
                prompt_estimate = estimate_tokens(prompt_text(request))
                hold = await self.admit(key, chain, prompt_estimate, self._max_tokens(request))
                try:
                    routed = await self.router.stream(alias, call)
                except BaseException:
                    await self._account(key, hold, alias, None, _Usage(), span=span)
                    raise
        except BaseException:
            span.end()  # use_span recorded the error and set the status
            raise
        first, rest = routed.result
        deployment = routed.deployment
        self.metrics.ttft.labels(alias, deployment.name).observe(time.perf_counter() - started)
        wants_usage = bool((request.get("stream_options") or {}).get("include_usage"))

        async def chunks() -> AsyncIterator[dict[str, Any]]:
            reported: dict[str, Any] = {}
            pieces: list[str] = []  # the answer's text and tool arguments, to count if need be
            status = "error"  # until the stream completes
            try:
                async for chunk in _starting_with(first, rest):
                    if chunk.get("usage"):
                        reported = chunk["usage"]
                        if not wants_usage:
                            continue  # the client did not ask for the usage chunk
                    pieces.extend(_streamed_text(chunk))
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
                usage = _stream_usage(reported, prompt_estimate, "".join(pieces))

                async def settle() -> None:
                    await self._account(
                        key, hold, alias, deployment, usage, status=status, span=span
                    )
                    tokens = {"prompt_tokens": usage.prompt, "completion_tokens": usage.completion}
                    outcome = Outcome(
                        {"usage": tokens}, alias, deployment.name, "off", routed.fallbacks
                    )
                    answer = "".join(pieces) if self.settings.log_prompts else None
                    self._log(key, outcome, started, request, answer=answer, stream=True)
                    _trace_outcome(span, outcome, model=deployment.spec.model)
                    record_content(
                        span, GenAI.OUTPUT_MESSAGES, output_messages("".join(pieces), "stop")
                    )
                    if status != "200":
                        span.set_status(trace.StatusCode.ERROR, "stream interrupted")
                    span.end()

                # A client that hangs up mid-stream cancels this generator, and with it every
                # await here: the accounting runs as its own task, so a cut stream is still paid
                # for (else hanging up before the last chunk would make every answer free).
                await asyncio.shield(asyncio.ensure_future(settle()))

        return alias, deployment.name, chunks()

    async def embed(self, key: ApiKey, alias: str | None, texts: list[str]) -> Outcome:
        name = alias or self.router.models.default_model
        attributes = _span_attributes("embeddings", name, key, {}) | {
            "kit.gateway.inputs": len(texts)
        }
        with tracer().start_as_current_span(f"embeddings {name}", attributes=attributes) as span:
            outcome = await self._embed(key, alias, texts)
            _trace_outcome(span, outcome)
            return outcome

    async def _embed(self, key: ApiKey, alias: str | None, texts: list[str]) -> Outcome:
        started = time.perf_counter()
        resolved_alias, chain = self.router.chain(alias, "embedding")
        estimate = sum(estimate_tokens(text) for text in texts)
        hold = await self.admit(key, chain, estimate, 0)
        deployment: ResolvedDeployment | None = None
        usage = _Usage()
        try:
            routed = await self.router.embed(alias, texts)
            deployment = routed.deployment
            usage = _Usage(prompt=routed.result.prompt_tokens)
        finally:
            await self._account(key, hold, resolved_alias, deployment, usage)
        body = {
            "object": "list",
            "model": routed.deployment.spec.model,
            "data": [
                {"object": "embedding", "index": i, "embedding": vector}
                for i, vector in enumerate(routed.result.vectors)
            ],
            "usage": {
                "prompt_tokens": routed.result.prompt_tokens,
                "total_tokens": routed.result.prompt_tokens,
            },
        }
        outcome = Outcome(body, resolved_alias, routed.deployment.name, "off", routed.fallbacks)
        self._log(key, outcome, started, {"input_count": len(texts)})
        return outcome

    async def _account(
        self,
        key: ApiKey,
        hold: Hold,
        alias: str,
        deployment: ResolvedDeployment | None,
        usage: _Usage,
        status: str = "200",
        span: Span | None = None,
    ) -> None:
        """Release the request's hold, charging what it cost (nothing if no deployment
        answered: a refused or failed call, or an answer another request paid for). The cost
        goes on `span`, by default the request's current one."""
        if deployment is None:
            await self.budgets.settle(hold, 0.0)
            return
        name = deployment.name
        self.metrics.requests.labels(alias, name, status).inc()
        self.metrics.tokens.labels(alias, name, "prompt").inc(usage.prompt)
        self.metrics.tokens.labels(alias, name, "completion").inc(usage.completion)
        if usage.estimated:
            self.metrics.estimated.labels(alias, name).inc()
        cost = self.pricing.cost(deployment, usage.prompt, usage.completion)
        (span or trace.get_current_span()).set_attributes(
            {"kit.gateway.cost_usd": cost, "kit.gateway.usage_estimated": usage.estimated}
        )
        if cost:
            self.metrics.cost.labels(alias, name, key.id).inc(cost)
        spent = await self.budgets.settle(hold, cost)
        if key.budget_usd:
            self.metrics.budget_used.labels(key.id).set(spent / key.budget_usd)
        await self.limits.charge_tokens(key, usage.prompt + usage.completion)

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


def _span_attributes(
    operation: str, alias: str, key: ApiKey, request: dict[str, Any]
) -> dict[str, Any]:
    """What a request asked for, as span attributes (no content: see `record_content`)."""
    attributes: dict[str, Any] = {
        GenAI.OPERATION: operation,
        GenAI.REQUEST_MODEL: alias,
        "kit.gateway.key_id": key.id,
    }
    for name, value in (
        (
            GenAI.REQUEST_MAX_TOKENS,
            request.get("max_tokens") or request.get("max_completion_tokens"),
        ),
        (GenAI.REQUEST_TEMPERATURE, request.get("temperature")),
        (GenAI.REQUEST_STREAM, request.get("stream")),
    ):
        if value is not None:
            attributes[name] = value
    return attributes


def _trace_outcome(span: Span, outcome: Outcome, model: str | None = None) -> None:
    """Who answered and what it cost, on the request's span: the GenAI attributes MLflow shows
    as the model and its tokens, and the gateway's own (deployment, fallbacks, cache)."""
    usage = outcome.body.get("usage") or {}
    choices = outcome.body.get("choices") or []
    span.set_attributes(
        {
            GenAI.RESPONSE_MODEL: model or str(outcome.body.get("model") or outcome.deployment),
            GenAI.INPUT_TOKENS: int(usage.get("prompt_tokens") or 0),
            GenAI.OUTPUT_TOKENS: int(usage.get("completion_tokens") or 0),
            "kit.gateway.deployment": outcome.deployment,
            "kit.gateway.fallbacks": outcome.fallbacks,
            "kit.gateway.cache": outcome.cache,
        }
    )
    reasons = [str(c.get("finish_reason")) for c in choices if c.get("finish_reason")]
    if reasons:
        span.set_attribute(GenAI.FINISH_REASONS, reasons)
    if choices:
        message = choices[0].get("message") or {}
        text = str(message.get("content") or "")
        record_content(
            span, GenAI.OUTPUT_MESSAGES, output_messages(text, reasons[0] if reasons else "stop")
        )


def _outcome(routed: Routed[ChatAnswer], alias: str, cache: str) -> Outcome:
    return Outcome(routed.result.body, alias, routed.deployment.name, cache, routed.fallbacks)


def _answer_usage(answer: ChatAnswer, request: dict[str, Any]) -> _Usage:
    """The tokens an answer reported, or estimates for those it did not."""
    prompt, completion = answer.prompt_tokens, answer.completion_tokens
    if prompt is not None and completion is not None:
        return _Usage(prompt, completion)
    choices = answer.body.get("choices") or [{}]
    text = str((choices[0].get("message") or {}).get("content") or "")
    return _Usage(
        prompt if prompt is not None else estimate_tokens(prompt_text(request)),
        completion if completion is not None else estimate_tokens(text),
        estimated=True,
    )


def _stream_usage(reported: dict[str, Any], prompt_estimate: int, streamed: str) -> _Usage:
    prompt, completion = reported.get("prompt_tokens"), reported.get("completion_tokens")
    if isinstance(prompt, int) and isinstance(completion, int):
        return _Usage(prompt, completion)
    return _Usage(prompt_estimate, estimate_tokens(streamed), estimated=True)


def _streamed_text(chunk: dict[str, Any]) -> list[str]:
    """The text a chunk adds to the answer: content, and the arguments of tool calls."""
    pieces: list[str] = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") or {}
        pieces.append(str(delta.get("content") or ""))
        for call in delta.get("tool_calls") or []:
            pieces.append(str((call.get("function") or {}).get("arguments") or ""))
    return pieces


def _media_urls(request: dict[str, Any]) -> list[str]:
    """Remote URLs in message content parts (images, files) that a provider would fetch."""
    urls: list[str] = []
    for message in request.get("messages", []):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            image = (part.get("image_url") or {}).get("url")
            file = part.get("file") or {}
            urls.extend(u for u in (image, file.get("file_data"), file.get("file_id")) if u)
    return [u for u in urls if "://" in u and not u.startswith("data:")]


async def _starting_with(
    first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[dict[str, Any]]:
    """The chunk the router already received (to commit to a deployment), then the others."""
    yield first
    async for chunk in rest:
        yield chunk
