"""POST /v1/chat/completions: the OpenAI chat API, whole answers or server-sent events."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from kit.core.errors import ERROR_RESPONSES
from kit.gateway.deps import GatewayDep, KeyDep
from kit.gateway.errors import InvalidRequest
from kit.gateway.responses import json_response, sse
from kit.gateway.schemas import ChatCompletionRequest
from kit.web.request_limits import StrictJSONRoute

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
    if body.max_tokens is not None and body.max_completion_tokens is not None:
        # Otherwise the cap could check one while a provider honours the other: max_tokens=1
        # passes the cap, and max_completion_tokens=1000000 is what gets generated.
        raise InvalidRequest(
            "Send either max_tokens or max_completion_tokens, not both (they mean the same: "
            "max_completion_tokens is OpenAI's newer name).",
            param="max_completion_tokens",
        )
    requested = body.requested_tokens()
    if requested is not None and requested > settings.max_tokens_limit:
        field = "max_tokens" if body.max_tokens is not None else "max_completion_tokens"
        raise InvalidRequest(
            f"{field}={requested} is above this gateway's limit of "
            f"{settings.max_tokens_limit}; lower it, or raise GATEWAY_MAX_TOKENS_LIMIT.",
            param=field,
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
