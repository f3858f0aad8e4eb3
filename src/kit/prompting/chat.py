"""The chat callable: the one way the prompting patterns call a model, and how to make one.

    chat = bind(model, "local", max_tokens=32)   # any ChatModel: GatewayClient, LocalClient, ...
    result = chat([{"role": "user", "content": "Hi"}])   # -> ChatResult: text, model, usage

A pattern takes a `Chat` and never sees a provider, a URL or the gateway, so a test hands it a
scripted model (kit.llm.scripted) and a notebook a bound gateway client. This module also says which
cloud alias a configured key enables; it calls nothing itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence

from kit.core.ports import ChatMessage, ChatModel, ChatResult

Chat = Callable[[Sequence[ChatMessage]], ChatResult]

# The provider key -> the gateway alias it enables (src/kit/gateway/models.yaml). Each of these
# aliases falls back to the local model when the provider fails, so read `ChatResult.model` to
# see who really answered.
CLOUD_ALIASES = {
    "OPENAI_API_KEY": "gpt-4o-mini",
    "ANTHROPIC_API_KEY": "claude-haiku",
    "GEMINI_API_KEY": "gemini-flash",
    "MISTRAL_API_KEY": "mistral-small",
    "COHERE_API_KEY": "command-r",
}


def bind(
    client: ChatModel, model: str | None, *, max_tokens: int = 64, temperature: float = 0.0
) -> Chat:
    """A chat callable that sends every call to `model` with these generation settings."""

    def chat(messages: Sequence[ChatMessage]) -> ChatResult:
        return client.chat(messages, model=model, max_tokens=max_tokens, temperature=temperature)

    return chat


def cloud_alias(environ: Mapping[str, str] | None = None) -> str | None:
    """The gateway alias of the first provider whose key is set, or None (offline)."""
    environ = os.environ if environ is None else environ
    return next((alias for key, alias in CLOUD_ALIASES.items() if environ.get(key)), None)
