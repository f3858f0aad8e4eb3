"""The request bodies the gateway accepts, validated before anything else runs.

Only what the gateway itself reads is declared; every other OpenAI parameter (`tools`,
`response_format`, `seed`, ...) passes through untouched (`extra="allow"`) to the provider, which
knows what it supports and answers 400 if not (returned to the client as a 400).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, description="A model alias; the gateway's default if absent.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    n: int | None = Field(None, ge=1, le=1, description="The gateway returns one choice.")


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    input: str | list[str] = Field(description="One text or a list of texts (batched).")
    # The OpenAI SDK asks for base64 unless told otherwise (smaller on the wire); it decodes it.
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
