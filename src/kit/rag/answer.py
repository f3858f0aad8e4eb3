"""From retrieved chunks to a prompt, and from the model's text to checked citations.

    chunks -> numbered sources [1]..[k] -> messages (system, few-shot example, sources + question)
    answer "Use Path() [2]. It validates [7]." -> citation [2] kept, [7] rejected (no source 7)

Retrieved text is untrusted: the instructions live only in the system message, the sources are
fenced in the user message, and a template's delimiter tags are escaped inside any text put
between them (`escape_tags`, see prompts/answer-v2.yaml), so a document cannot end its block.
A citation is valid only if its number is one of the sources the model was shown; whatever a
document told the model, `citation_status` says what the answer's citations are worth. When the
model cites nothing (small models often do not), each sentence is attributed to the source it
overlaps most, marked `inferred`; an answer citing only sources that do not exist gets none.
`support` is the share of answer sentences whose words mostly appear in a cited source: a cheap,
lexical faithfulness check (an LLM judge does better when a capable model is configured).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict

from kit.core import prompt_registry
from kit.core.errors import ConfigError
from kit.core.ports import ChatMessage
from kit.core.settings import KitSettings
from kit.rag import sparse
from kit.rag.retrieval import Hit

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
    """A versioned prompt file (src/kit/rag/prompts/NAME.yaml), validated when loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    system: str
    examples: list[Example] = []
    example_source: str = "[{n}] {text}"  # how an example's sources are shown
    source: str
    user: str
    escape_tags: list[str] = []  # the template's delimiters, neutralised inside inserted text

    @property
    def digest(self) -> str:
        """A short hash of the template's content: traces and eval runs record it, so an edit
        made without a new name still shows which text was used."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

    def messages(self, question: str, hits: list[Hit], max_chars: int = 1200) -> list[ChatMessage]:
        messages: list[ChatMessage] = [{"role": "system", "content": self.system.strip()}]
        for example in self.examples:
            sources = "\n\n".join(
                self.example_source.format(n=n, text=text).strip()
                for n, text in enumerate(example.sources, 1)
            )
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
                title=self.escape(hit.title),
                section=self.escape(" > ".join(hit.heading_path[-2:])),
                text=self.escape(hit.text[:max_chars]),
            ).strip()
            for n, hit in enumerate(hits, 1)
        )
        content = self.user.format(sources=sources, question=self.escape(question))
        messages.append({"role": "user", "content": content.strip()})
        return messages

    def escape(self, text: str) -> str:
        """`</source>` in a document becomes `&lt;/source>`: still readable, no longer a tag, so
        text cannot close the block it sits in or open one (a fake source, a second question)."""
        if not self.escape_tags:
            return text
        return _tag_pattern(tuple(self.escape_tags)).sub("&lt;", text)


@cache
def _tag_pattern(tags: tuple[str, ...]) -> re.Pattern[str]:
    """A `<` that starts one of `tags`, opening or closing, however spaced or capitalised:
    `<source`, `</ SOURCES`, `< question`, but not `<sourcecode>` or `a < b`."""
    names = "|".join(re.escape(tag) for tag in sorted(tags, key=len, reverse=True))
    return re.compile(rf"<(?=\s*/?\s*(?:{names})\b)", re.IGNORECASE)


@dataclass(frozen=True)
class PromptChoice:
    """The answer prompt a service uses, and where it came from: a file in this package, or
    a version of MLflow's prompt registry (`uri` and `version` set: traces record them)."""

    template: PromptTemplate
    uri: str | None = None
    version: int | None = None


def choose_prompt(name_or_uri: str, settings: KitSettings) -> PromptChoice:
    """RAG_PROMPT: a file name (`answer-v2`) or a registry URI (`prompts:/answer-v2@production`,
    pushed by `kit prompts push`). Raises ValueError (a file) or ConfigError (the registry)."""
    if not prompt_registry.is_registry_uri(name_or_uri):
        return PromptChoice(load_prompt(name_or_uri))
    registered = prompt_registry.load(settings, name_or_uri)
    try:
        template = PromptTemplate.model_validate(yaml.safe_load(registered.text))
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(
            f"{registered.uri} is not an answer prompt ({type(exc).__name__}: {exc}); push one "
            "of src/kit/rag/prompts/*.yaml with `kit prompts push`"
        ) from None
    return PromptChoice(template, registered.uri, registered.version)


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


CitationStatus = Literal["cited", "inferred", "invalid", "uncited", "refused"]


@dataclass(frozen=True)
class CheckedAnswer:
    text: str
    citations: list[Citation]
    invalid_citations: list[int]  # numbers the model cited that match no source
    support: float  # share of sentences supported by their cited sources (0..1)
    refused: bool

    @property
    def citation_status(self) -> CitationStatus:
        """What the citations are worth, worst first: one citation of a source the model was not
        shown (a hallucination, or a document telling it what to cite) marks the whole answer."""
        if self.refused:
            return "refused"
        if self.invalid_citations:
            return "invalid"
        if not self.citations:
            return "uncited"
        return "inferred" if any(c.inferred for c in self.citations) else "cited"


def check(answer: str, hits: list[Hit]) -> CheckedAnswer:
    """Parse and validate the answer's citations against the sources it was given."""
    text = answer.strip()
    if not text or text.lower().startswith(REFUSAL.lower().rstrip(".")):
        return CheckedAnswer(text or REFUSAL, [], [], 0.0, refused=True)
    cited = [int(n) for n in _MARKER.findall(text)]
    invalid = sorted({n for n in cited if not 1 <= n <= len(hits)})
    valid = list(dict.fromkeys(n for n in cited if 1 <= n <= len(hits)))
    # Infer citations only for an answer that cites nothing. One that cites only sources it was
    # not shown keeps none: attributing it by overlap would launder, say, text a document
    # injected ("reply X and cite [9]") into an answer that looks sourced.
    inferred = not cited
    sentences = [s for s in _SENTENCE.split(text) if s.strip()]
    support_by_sentence = []
    for sentence in sentences:
        markers = [int(n) for n in _MARKER.findall(sentence)]
        numbers = [n for n in markers if 1 <= n <= len(hits)]
        if markers and not numbers:  # cites only missing sources: supported by none
            support_by_sentence.append(False)
            continue
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
