"""From retrieved chunks to a prompt, and from the model's text to checked citations.

    chunks -> numbered sources [1]..[k] -> messages (system, few-shot example, sources + question)
    answer "Use Path() [2]. It validates [7]." -> citation [2] kept, [7] rejected (no source 7)

A citation is valid only if its number is one of the sources the model was shown. When the model
cites nothing (small models often do not), each answer sentence is attributed to the source it
overlaps most, and those citations are marked `inferred`, never passed off as the model's own.
`support` is the share of answer sentences whose words mostly appear in a cited source: a cheap,
lexical faithfulness check (an LLM judge does better when a capable model is configured).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict

from pipelines.ingest import sparse
from pipelines.retrieval import Hit
from services.common.llm import ChatMessage

PROMPTS = Path(__file__).resolve().parent / "prompts"
REFUSAL = "I don't know."
_MARKER = re.compile(r"\[(\d{1,3})\]")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    question: str
    sources: list[str]
    answer: str


class PromptTemplate(BaseModel):
    """A versioned prompt file (services/rag/prompts/NAME.yaml), validated when loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    system: str
    examples: list[Example] = []
    source: str
    user: str

    def messages(self, question: str, hits: list[Hit], max_chars: int = 1200) -> list[ChatMessage]:
        messages: list[ChatMessage] = [{"role": "system", "content": self.system.strip()}]
        for example in self.examples:
            sources = "\n\n".join(f"[{n}] {text}" for n, text in enumerate(example.sources, 1))
            messages.append(
                {
                    "role": "user",
                    "content": self.user.format(sources=sources, question=example.question).strip(),
                }
            )
            messages.append({"role": "assistant", "content": example.answer})
        sources = "\n\n".join(
            self.source.format(
                n=n,
                title=hit.title,
                section=" > ".join(hit.heading_path[-2:]),
                text=hit.text[:max_chars],
            ).strip()
            for n, hit in enumerate(hits, 1)
        )
        messages.append(
            {
                "role": "user",
                "content": self.user.format(sources=sources, question=question).strip(),
            }
        )
        return messages


@cache
def load_prompt(name: str) -> PromptTemplate:
    path = PROMPTS / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROMPTS.glob("*.yaml"))
        raise ValueError(f"No prompt template {name!r}; RAG_PROMPT can be one of {known}")
    return PromptTemplate.model_validate(yaml.safe_load(path.read_text()))


@dataclass(frozen=True)
class Citation:
    number: int  # [n] in the answer
    chunk_id: str
    doc_id: str
    source: str
    title: str
    snippet: str
    inferred: bool = False  # attributed by overlap, not cited by the model


@dataclass(frozen=True)
class CheckedAnswer:
    text: str
    citations: list[Citation]
    invalid_citations: list[int]  # numbers the model cited that match no source
    support: float  # share of sentences supported by their cited sources (0..1)
    refused: bool


def check(answer: str, hits: list[Hit]) -> CheckedAnswer:
    """Parse and validate the answer's citations against the sources it was given."""
    text = answer.strip()
    if not text or text.lower().startswith(REFUSAL.lower().rstrip(".")):
        return CheckedAnswer(text or REFUSAL, [], [], 0.0, refused=True)
    cited = [int(n) for n in _MARKER.findall(text)]
    invalid = sorted({n for n in cited if not 1 <= n <= len(hits)})
    valid = list(dict.fromkeys(n for n in cited if 1 <= n <= len(hits)))
    inferred = not valid
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    support_by_sentence = []
    for sentence in sentences:
        numbers = [int(n) for n in _MARKER.findall(sentence) if 1 <= int(n) <= len(hits)]
        if not numbers:  # uncited sentence: the best-overlapping source, if any overlaps
            best = max(
                range(len(hits)), key=lambda i: _overlap(sentence, hits[i].text), default=None
            )
            numbers = [best + 1] if best is not None else []
            if inferred and numbers and _overlap(sentence, hits[numbers[0] - 1].text) >= 0.5:
                valid.append(numbers[0])
        support_by_sentence.append(
            max((_overlap(sentence, hits[n - 1].text) for n in numbers), default=0.0) >= 0.5
        )
    citations = [_citation(n, hits[n - 1], inferred) for n in dict.fromkeys(valid)]
    support = sum(support_by_sentence) / len(support_by_sentence) if sentences else 0.0
    return CheckedAnswer(text, citations, invalid, round(support, 3), refused=False)


def _overlap(sentence: str, source: str) -> float:
    """Share of the sentence's content words (stemmed) that appear in the source."""
    words = set(sparse.terms(_MARKER.sub("", sentence)))
    return len(words & set(sparse.terms(source))) / len(words) if words else 0.0


def _citation(number: int, hit: Hit, inferred: bool) -> Citation:
    snippet = " ".join(hit.text.split())[:240]
    return Citation(number, hit.chunk_id, hit.doc_id, hit.source, hit.title, snippet, inferred)
