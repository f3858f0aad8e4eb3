"""The LLM client interface: the one seam through which every module of the kit calls a model.

RAG, fine-tuning baselines, evaluation judges and notebooks depend on `LLMClient`, never on a
provider SDK, so the model behind it can change by configuration alone. Implementations:

- `services.common.local_client.LocalClient`: the models shipped with the kit, in-process;
- the gateway client (issue: model gateway): the gateway in-process or over HTTP.

Messages use the OpenAI chat format (`{"role": "user", "content": "..."}`) because every
provider and tool in the field reads it. This module defines shapes only; it loads nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict


class ChatMessage(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class ChatResult:
    """One completion. `model` names what actually answered (after any fallback)."""

    text: str
    model: str
    usage: Usage
    finish_reason: Literal["stop", "length"]


class LLMClient(Protocol):
    """What the rest of the kit needs from a model: chat, streamed chat, and embeddings."""

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult: ...

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """Yield the answer's text piece by piece as the model produces it."""
        ...

    def embed(self, texts: Sequence[str], *, model: str | None = None) -> list[list[float]]:
        """One unit-length vector per text, in order."""
        ...
