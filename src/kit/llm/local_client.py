"""`LocalClient`: the shipped models in this process, the chat one behind the `ChatModel` port.

No server, no key, no network: what `kit models chat`, the gateway's local deployments and the
tests use, and what a notebook can start from. Each model loads on first use (so a client that
only embeds never loads the chat model), once, even when several threads ask at the same moment.
`embedder` is the shipped MiniLM, which is itself an `Embedder` (kit.core.ports).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence

from kit.core.errors import ModelUnavailableError
from kit.core.ports import ChatMessage, ChatResult
from kit.core.settings import KitSettings
from kit.llm.local_models import (
    SMOLLM2,
    ChatEngine,
    LocalEmbedder,
    load_chat_model,
    load_embedder,
)


class LocalClient:
    def __init__(self, settings: KitSettings) -> None:
        self.settings = settings
        # One lock per model: loading the embedder (seconds: torch) must not hold up chat.
        self._chat_lock = threading.Lock()
        self._embedder_lock = threading.Lock()
        self._chat: ChatEngine | None = None
        self._embedder: LocalEmbedder | None = None

    @property
    def chat_engine(self) -> ChatEngine:
        with self._chat_lock:
            if self._chat is None:
                self._chat = load_chat_model(self.settings)
            return self._chat

    @property
    def embedder(self) -> LocalEmbedder:
        with self._embedder_lock:
            if self._embedder is None:
                self._embedder = load_embedder(self.settings)
            return self._embedder

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        _check_model(model, SMOLLM2.name)
        return self.chat_engine.complete(messages, max_tokens=max_tokens, temperature=temperature)

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        """`chat` in a worker thread: generation is CPU-bound and would block the event loop."""
        return await asyncio.to_thread(
            self.chat, messages, model=model, max_tokens=max_tokens, temperature=temperature
        )

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        _check_model(model, SMOLLM2.name)
        for delta in self.chat_engine.stream(
            messages, max_tokens=max_tokens, temperature=temperature
        ):
            if delta.text:
                yield delta.text


def _check_model(requested: str | None, served: str) -> None:
    if requested not in (None, served):
        raise ModelUnavailableError(
            f"The local client serves only {served!r}, not {requested!r}. Other models are "
            "reached through the gateway (set GATEWAY_URL or use the gateway client)."
        )
