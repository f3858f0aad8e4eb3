"""POST /v1/chat/completions: the OpenAI chat API, whole answers or server-sent events."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from services.common.errors import ERROR_RESPONSES
from services.common.request_limits import StrictJSONRoute
from services.gateway.deps import GatewayDep, KeyDep
from services.gateway.errors import InvalidRequest
from services.gateway.responses import json_response, sse
from services.gateway.schemas import ChatCompletionRequest

router = APIRouter(route_class=StrictJSONRoute, responses=ERROR_RESPONSES)


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, key: KeyDep, gateway: GatewayDep
) -> Response:
    settings = gateway.settings
    if len(body.messages) > settings.max_messages:
        raise InvalidRequest(
            f"{len(body.messages)} messages is more than this gateway's limit of "
            f"{settings.max_messages}; send fewer (summarise older turns), or raise "
            "GATEWAY_MAX_MESSAGES.",
            param="messages",
        )
    requested = body.max_tokens or body.max_completion_tokens
    if requested is not None and requested > settings.max_tokens_limit:
        raise InvalidRequest(
            f"max_tokens={requested} is above this gateway's limit of "
            f"{settings.max_tokens_limit}; lower it, or raise GATEWAY_MAX_TOKENS_LIMIT.",
            param="max_tokens",
        )
    payload = body.model_dump(exclude_none=True)
    if requested is None:
        payload["max_tokens"] = settings.default_max_tokens  # never unbounded by omission

    if body.stream:
        _, deployment, chunks = await gateway.stream(key, payload)
        return StreamingResponse(
            sse(chunks),
            media_type="text/event-stream",
            headers={"x-kit-deployment": deployment, "cache-control": "no-cache"},
        )
    use_cache = "no-cache" not in request.headers.get("cache-control", "").lower()
    outcome = await gateway.chat(key, payload, use_cache=use_cache)
    return json_response(
        outcome.body,
        headers={
            "x-kit-deployment": outcome.deployment,
            "x-kit-cache": outcome.cache,
            "x-kit-fallbacks": str(outcome.fallbacks),
        },
    )
