"""The two ports through which every part of the kit calls a model: chat, and embed.

RAG, evaluation judges, prompt patterns, fine-tuning baselines and notebooks depend on these
protocols, never on a provider SDK or a client class, so the model behind them changes by
configuration alone. The adapters that implement them:

    port        adapter                                   where it runs
    ChatModel   kit.llm.gateway_client.GatewayClient      any model of a gateway, over HTTP
                kit.llm.local_client.LocalClient          the shipped SmolLM2, in this process
                kit.llm.scripted.ScriptedModel      a script (tests, demonstrations)
    Embedder    kit.llm.local_models.LocalEmbedder        the shipped MiniLM, in this process
                kit.llm.embedders.GatewayEmbedder         an embedding alias of a gateway

Messages use the OpenAI chat format (`{"role": "user", "content": "..."}`) because every
provider and tool in the field reads it. This module defines shapes only; it loads nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, TypedDict

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


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


class ChatModel(Protocol):
    """A model that answers a conversation: whole (`chat`, or `achat` in async code, where a
    blocking call would stall every other request), or piece by piece (`stream_chat`).

    `model` names a model where the adapter serves several (a gateway alias); None is the
    adapter's default."""

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult: ...

    async def achat(
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


class Embedder(Protocol):
    """A model that turns texts into vectors. `name` is the model (what an index records, so a
    collection is never searched with vectors of another model); `dimension` its vector size."""

    name: str
    dimension: int

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(len(texts), dimension) float32 rows of unit length, in order."""
        ...
