"""The models shipped with the kit as a provider: always there, no key, no network, no cost.

Generation is CPU-bound, so it runs in a worker thread and the event loop keeps serving other
requests meanwhile; the engine itself runs one generation at a time. Answers are shaped as
OpenAI objects so the rest of the gateway cannot tell a local deployment from a cloud one.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from kit.core.ports import ChatMessage
from kit.gateway.config import ResolvedDeployment
from kit.gateway.providers.base import ChatAnswer, ChatCall, EmbedAnswer, ProviderError
from kit.llm.local_client import LocalClient
from kit.llm.local_models import ChatDelta

_ROLES = {"system", "user", "assistant"}


class LocalProvider:
    def __init__(self, deployment: ResolvedDeployment, client: LocalClient) -> None:
        self.model = deployment.spec.model
        self.task = deployment.spec.task
        self.client = client  # shared: the models load once per process

    def warm_up(self) -> None:
        """Load the model now (blocking), so the first request does not pay for it."""
        _ = self.client.chat_engine if self.task == "chat" else self.client.embedder

    async def chat(self, call: ChatCall, timeout: float) -> ChatAnswer:
        messages, max_tokens, temperature = _arguments(call)
        try:
            result = await asyncio.wait_for(
                asyncio.to_thread(
                    self.client.chat, messages, max_tokens=max_tokens, temperature=temperature
                ),
                timeout,
            )
        except TimeoutError:
            raise ProviderError("timeout", f"local generation took over {timeout}s") from None
        body = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": result.text},
                    "finish_reason": result.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": result.usage.prompt_tokens,
                "completion_tokens": result.usage.completion_tokens,
                "total_tokens": result.usage.total_tokens,
            },
        }
        return ChatAnswer(body, result.usage.prompt_tokens, result.usage.completion_tokens)

    async def stream(self, call: ChatCall, timeout: float) -> AsyncIterator[dict[str, Any]]:
        messages, max_tokens, temperature = _arguments(call)
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict[str, Any] | None, finish: str | None = None) -> dict[str, Any]:
            body: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.model,
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return body

        yield chunk({"role": "assistant", "content": ""})
        async with _generate_in_thread(self.client, messages, max_tokens, temperature) as deltas:
            while True:
                try:
                    piece = await asyncio.wait_for(deltas.get(), timeout)
                except TimeoutError:
                    raise ProviderError("timeout", f"no token within {timeout}s") from None
                if isinstance(piece, BaseException):
                    raise ProviderError("server_error", f"local generation failed: {piece}")
                if piece.text:
                    yield chunk({"content": piece.text})
                if piece.usage is not None:
                    yield chunk({}, piece.finish_reason or "stop")
                    final = chunk(None)
                    final["usage"] = {
                        "prompt_tokens": piece.usage.prompt_tokens,
                        "completion_tokens": piece.usage.completion_tokens,
                        "total_tokens": piece.usage.total_tokens,
                    }
                    yield final
                    return

    async def embed(self, texts: list[str], timeout: float) -> EmbedAnswer:
        try:
            vectors = await asyncio.wait_for(asyncio.to_thread(self._embed, texts), timeout)
        except TimeoutError:
            raise ProviderError("timeout", f"local embedding took over {timeout}s") from None
        # MiniLM's word-piece count is not exposed cheaply; words are a fair, stated estimate.
        return EmbedAnswer(vectors, sum(len(text.split()) for text in texts))

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.client.embedder.embed(texts).tolist()
        return vectors

    async def aclose(self) -> None:
        """The local models stay loaded for the process; nothing to close per deployment."""


@contextlib.asynccontextmanager
async def _generate_in_thread(
    client: LocalClient, messages: list[ChatMessage], max_tokens: int, temperature: float
) -> AsyncIterator[asyncio.Queue[ChatDelta | BaseException]]:
    """Run the engine's token generator in a worker thread, handing tokens over in a queue.

    On exit (finished, client gone, timeout) the worker is told to stop and closes the
    generator itself, which releases the engine for the next request.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[ChatDelta | BaseException] = asyncio.Queue()
    stop = threading.Event()

    def produce() -> None:
        def hand_over(item: ChatDelta | BaseException) -> None:
            with contextlib.suppress(RuntimeError):  # the loop may be gone at shutdown
                loop.call_soon_threadsafe(queue.put_nowait, item)

        try:
            engine = client.chat_engine
            deltas = engine.stream(messages, max_tokens=max_tokens, temperature=temperature)
            with contextlib.closing(deltas):
                for delta in deltas:
                    if stop.is_set():
                        return
                    hand_over(delta)
        except Exception as exc:  # reported to the consumer, which raises it there
            hand_over(exc)

    worker = asyncio.ensure_future(asyncio.to_thread(produce))
    try:
        yield queue
    finally:
        stop.set()
        # Do not wait for the worker: it stops at its next token and frees the engine then.
        worker.add_done_callback(lambda task: task.exception())


def _arguments(call: ChatCall) -> tuple[list[ChatMessage], int, float]:
    messages: list[ChatMessage] = []
    for message in call.messages:
        role, content = message.get("role"), message.get("content")
        if role not in _ROLES or not isinstance(content, str):
            raise ProviderError(
                "bad_request",
                "the local model takes system, user and assistant messages with text content",
                status=400,
            )
        messages.append({"role": role, "content": content})
    max_tokens = int(
        call.params.get("max_tokens") or call.params.get("max_completion_tokens") or 256
    )
    temperature = float(call.params.get("temperature") or 0.0)
    return messages, max_tokens, temperature
