"""Draft more evaluation questions with an LLM, for a person to review before they are used.

For each sampled document, a model is asked for questions that the page answers, as a user
would ask them; each draft is labelled with that page as the relevant document and marked
`"drafted": true`. Drafts are a starting point: an LLM writes questions close to the page's
wording, which flatters retrieval, so review and paraphrase them before adding them to a set.
A 135M local model cannot do this well; use a capable model through the gateway.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kit.core.ports import ChatMessage
from kit.rag.documents import Document

Chat = Callable[[list[ChatMessage]], Awaitable[str]]

INSTRUCTIONS = (
    "You write evaluation questions for a documentation search system. Read the page and write "
    "{n} questions that a developer would ask and that this page answers. Ask the way a user "
    "would, in your own words, not copying headings. Reply with a JSON list of strings only."
)
_JSON_LIST = re.compile(r"\[.*\]", re.S)


def parse_questions(reply: str) -> list[str]:
    """The JSON list of strings in a model's reply (models often wrap it in prose or fences)."""
    match = _JSON_LIST.search(reply)
    if not match:
        return []
    try:
        items = json.loads(match.group())
    except json.JSONDecodeError:
        return []
    return [item.strip() for item in items if isinstance(item, str) and item.strip()]


async def draft_questions(
    chat: Chat,
    documents: Sequence[Document],
    *,
    per_document: int = 2,
    sample: int = 20,
    seed: int = 0,
    max_chars: int = 4000,
) -> list[dict[str, Any]]:
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    chosen = rng.sample(list(documents), min(sample, len(documents)))
    drafts: list[dict[str, Any]] = []
    for document in chosen:
        messages: list[ChatMessage] = [
            {"role": "system", "content": INSTRUCTIONS.format(n=per_document)},
            {"role": "user", "content": f"Page: {document.title}\n\n{document.text[:max_chars]}"},
        ]
        for question in parse_questions(await chat(messages))[:per_document]:
            drafts.append(
                {
                    "id": f"draft-{len(drafts) + 1:03d}",
                    "question": question,
                    "relevant": [document.id],
                    "drafted": True,
                }
            )
    return drafts
