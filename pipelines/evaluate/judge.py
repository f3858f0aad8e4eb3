"""Faithfulness by an LLM judge: is every sentence of an answer supported by its sources?

The lexical check in services/rag/answer.py counts shared words, so it passes a sentence that
reuses the source's words to say the opposite. A capable model reading the answer and the
sources together catches that. The judge replies with JSON per sentence, validated by pydantic;
an invalid reply is sent back once with the validation error, then counted as a failure (never
as a pass). The judge sees the same sources the answering model saw.

A 135M local model is not a judge: use a cloud alias through the gateway
(`kit eval answers --judge gpt-4o-mini` with OPENAI_API_KEY set).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, Field, ValidationError

from services.common.llm import ChatMessage

Chat = Callable[[list[ChatMessage]], Awaitable[str]]
PROMPTS = Path(__file__).parent / "prompts"
_JSON_OBJECT = re.compile(r"\{.*\}", re.S)


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
    match = _JSON_OBJECT.search(reply)
    if not match:
        raise ValueError("the reply holds no JSON object")
    try:
        return Judgement.model_validate(json.loads(match.group()))
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    except ValidationError as exc:  # "verdicts.0.supported: Input should be a valid boolean"
        problems = [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
        raise ValueError("; ".join(problems)) from None


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
        for attempt in range(2):
            reply = await self.chat(messages)
            try:
                return parse_judgement(reply)
            except ValueError as exc:
                if attempt == 0:
                    messages += [
                        {"role": "assistant", "content": reply},
                        {
                            "role": "user",
                            "content": f"That reply was not valid ({exc}). Reply with the JSON "
                            "object only, in the shape shown.",
                        },
                    ]
        return None
