"""Drafting questions with an LLM: replies parsed robustly, each draft labelled with its page."""

from __future__ import annotations

import asyncio

from kit.core.ports import ChatMessage
from kit.evaluate.draft import draft_questions, parse_questions
from kit.rag.documents import Document


def test_the_json_list_is_found_inside_prose_and_code_fences() -> None:
    reply = 'Sure! Here they are:\n```json\n["How do I X?", "Why Y?", 3, ""]\n```'

    assert parse_questions(reply) == ["How do I X?", "Why Y?"]
    assert parse_questions("no list here") == []
    assert parse_questions("[not json") == []


def test_drafts_are_labelled_with_the_page_they_came_from() -> None:
    documents = [
        Document(id=f"page{i}.md", source=f"page{i}.md", title=f"Page {i}", text=f"Text {i}")
        for i in range(5)
    ]
    asked: list[str] = []

    async def chat(messages: list[ChatMessage]) -> str:
        page = messages[1]["content"].splitlines()[0]
        asked.append(page)
        return f'["What does {page} say?", "More about {page}?", "A third?"]'

    drafts = asyncio.run(draft_questions(chat, documents, per_document=2, sample=3, seed=1))

    assert len(drafts) == 6 and len(asked) == 3
    for draft in drafts:
        page_id = draft["relevant"][0]
        assert draft["drafted"] is True and page_id.removesuffix(".md") in draft[
            "question"
        ].lower().replace(" ", "")
    assert drafts == asyncio.run(draft_questions(chat, documents, per_document=2, sample=3, seed=1))
