"""A scripted chat model: the `ChatModel` port's test double and a teaching aid, never a model.

    model = ScriptedModel(["not json", '{"amount": 20, "currency": "EUR", "recipient": null}'])
    ask_json(model, messages, schema)   # first reply invalid, second valid: 2 attempts
    model.calls[1]                      # the messages it was sent the second time
    ScriptedModel.repeating("It is in the docs [1].")   # the same reply to every call

It replies with the given texts in order (or with what a function of the messages returns),
records every conversation it is sent, and counts tokens as words. When the script runs out it
raises, so a test cannot pass on a reply nobody wrote; `repeating` is for tests that need an
answer, any answer, as many times as the code asks. Anything shown with it (in a notebook)
must say so: it demonstrates a pattern's mechanics, not what a model does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from kit.core.errors import KitError
from kit.core.ports import ChatMessage, ChatResult, Usage

Reply = str | Callable[[list[ChatMessage]], str]


class ScriptExhausted(KitError):
    type = "script_exhausted"


class ScriptedModel:
    """A `Chat` (call it) and a `ChatModel` (kit.core.ports) that replies from a script."""

    def __init__(self, replies: Sequence[Reply], name: str = "scripted") -> None:
        self.replies = list(replies)
        self.name = name
        self.calls: list[list[ChatMessage]] = []
        self.repeat = False

    @classmethod
    def repeating(cls, reply: Reply, name: str = "scripted") -> ScriptedModel:
        """A model that answers every call with `reply`: it never runs out."""
        model = cls([reply], name)
        model.repeat = True
        return model

    def __call__(self, messages: Sequence[ChatMessage]) -> ChatResult:
        if len(self.calls) >= len(self.replies) and not self.repeat:
            raise ScriptExhausted(
                f"the script has {len(self.replies)} replies and call {len(self.calls) + 1} "
                "was made; add replies for every call the code under test makes"
            )
        sent = [ChatMessage(role=m["role"], content=m["content"]) for m in messages]
        reply = self.replies[min(len(self.calls), len(self.replies) - 1)]
        self.calls.append(sent)
        text = reply(sent) if callable(reply) else reply
        prompt_words = sum(len(m["content"].split()) for m in sent)
        return ChatResult(text, self.name, Usage(prompt_words, len(text.split())), "stop")

    def chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        return self(messages)

    async def achat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> ChatResult:
        return self(messages)

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
    ) -> Iterator[str]:
        """The scripted reply in one piece: a script has no tokens to stream."""
        yield self(messages).text
