"""`LocalClient`: the `LLMClient` interface served by the shipped models, in this process.

No server, no key, no network: what `kit models chat` and the tests use, and what a notebook can
start from. Each model loads on first use (so a client that only embeds never loads the chat
model), once, even when several threads ask at the same moment.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from services.common.errors import ModelUnavailableError
from services.common.llm import ChatMessage, ChatResult
from services.common.local_models import (
    MINILM,
    SMOLLM2,
    ChatEngine,
    LocalEmbedder,
    load_chat_model,
    load_embedder,
)
from services.common.settings import KitSettings


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

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        _check_model(model, MINILM.name)
        vectors: list[list[float]] = self.embedder.embed(texts).tolist()
        return vectors


def _check_model(requested: str | None, served: str) -> None:
    if requested not in (None, served):
        raise ModelUnavailableError(
            f"The local client serves only {served!r}, not {requested!r}. Other models are "
            "reached through the gateway (set GATEWAY_URL or use the gateway client)."
        )
