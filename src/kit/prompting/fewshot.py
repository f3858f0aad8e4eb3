"""Few-shot prompts: worked examples as earlier turns of the conversation, fixed or nearest.

    examples = [Example({"query": "Card still not here"}, "card_arrival"), ...]
    messages = few_shot(template, NearestExamples(examples, embedder).select(query, k=3),
                        labels=labels, query="Where is my new card?")
    # system, (user: example, assistant: its label) x 3, user: the query

Each example's user turn is rendered with the template's own user text, so the examples look
exactly like the real question. `NearestExamples` embeds the pool once and picks the k examples
most similar to the query (cosine on unit vectors); the most similar comes last, closest to the
question. This module builds messages; it calls no chat model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kit.core.ports import ChatMessage, Embedder
from kit.prompting.templates import PromptTemplate


@dataclass(frozen=True)
class Example:
    inputs: Mapping[str, Any]  # the template's variables for this example: {"query": "..."}
    output: str  # the reply we want the model to imitate


class FixedExamples:
    """The same examples for every query (the first k of them)."""

    def __init__(self, examples: Sequence[Example]) -> None:
        self.examples = list(examples)

    def select(self, text: str, k: int) -> list[Example]:
        return self.examples[:k]


class NearestExamples:
    """The k examples whose `key` input is most similar to the query, by embedding."""

    def __init__(self, examples: Sequence[Example], embedder: Embedder, key: str = "query") -> None:
        if not examples:
            raise ValueError("NearestExamples needs at least one example to choose from")
        self.examples = list(examples)
        self.embedder = embedder
        self.vectors = embedder.embed([str(e.inputs[key]) for e in self.examples])  # (n, d)

    def select(self, text: str, k: int) -> list[Example]:
        similarity = self.vectors @ self.embedder.embed([text])[0]  # (n,): cosine, unit vectors
        nearest = np.argsort(-similarity, kind="stable")[:k]
        return [self.examples[i] for i in nearest[::-1]]  # the most similar last


def few_shot(
    template: PromptTemplate, examples: Sequence[Example], **values: Any
) -> list[ChatMessage]:
    """System message, one (user, assistant) pair per example, then the real user turn.

    An example's inputs override `values` for its own turn, so shared variables (the label
    list) need not be repeated in every example.
    """
    messages: list[ChatMessage] = [{"role": "system", "content": template.render_system(**values)}]
    for example in examples:
        messages.append(
            {"role": "user", "content": template.render_user(**{**values, **example.inputs})}
        )
        messages.append({"role": "assistant", "content": example.output})
    messages.append({"role": "user", "content": template.render_user(**values)})
    return messages
