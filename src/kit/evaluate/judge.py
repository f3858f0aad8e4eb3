"""Faithfulness by an LLM judge: is every sentence of an answer supported by its sources?

The lexical check in src/kit/rag/answer.py counts shared words, so it passes a sentence that
reuses the source's words to say the opposite. A capable model reading the answer and the
sources together catches that. The judge replies with JSON per sentence, validated by pydantic;
an invalid reply is sent back once with the validation error, then counted as a failure (never
as a pass): the retry is the structured-output loop of src/kit/prompting/structured.py. The
judge sees the same sources the answering model saw.

A 135M local model is not a judge: use a cloud alias through the gateway
(`kit eval answers --judge gpt-4o-mini` with OPENAI_API_KEY set).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from kit.core.ports import ChatMessage
from kit.prompting.structured import (
    InvalidOutput,
    StructuredOutputError,
    ask_structured_async,
    extract_json,
)

Chat = Callable[[list[ChatMessage]], Awaitable[str]]
PROMPTS = Path(__file__).parent / "prompts"


class Verdict(BaseModel):
    sentence: str
    supported: bool
    reason: str = ""


class Judgement(BaseModel):
    verdicts: list[Verdict] = Field(min_length=1)

    @property
    def faithfulness(self) -> float:
        """The share of the answer's sentences that the judge found supported."""
        return sum(v.supported for v in self.verdicts) / len(self.verdicts)


class JudgePrompt(BaseModel):
    name: str
    system: str
    user: str


def load_judge_prompt(name: str = "faithfulness-v1") -> JudgePrompt:
    path = PROMPTS / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROMPTS.glob("*.yaml"))
        raise ValueError(f"No judge prompt {name!r}; choose one of {known}")
    return JudgePrompt.model_validate(yaml.safe_load(path.read_text()))


def parse_judgement(reply: str) -> Judgement:
    """The judgement in a reply (models wrap JSON in prose or fences); raises ValueError."""
    try:
        return Judgement.model_validate(extract_json(reply))
    except ValidationError as exc:  # "verdicts.0.supported: Input should be a valid boolean"
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise InvalidOutput("; ".join(problems)) from None


@dataclass
class Judge:
    chat: Chat
    prompt: JudgePrompt
    model: str

    async def judge(self, question: str, answer: str, sources: Sequence[str]) -> Judgement | None:
        """The judge's verdicts, or None when it gave no valid reply in two tries."""
        numbered = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(sources, 1))
        messages: list[ChatMessage] = [
            {"role": "system", "content": self.prompt.system},
            {
                "role": "user",
                "content": self.prompt.user.format(
                    sources=numbered, question=question, answer=answer
                ),
            },
        ]
        try:
            judged = await ask_structured_async(self.chat, messages, parse_judgement, retries=1)
        except StructuredOutputError:
            return None
        return judged.value
