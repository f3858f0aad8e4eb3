"""Chunking: follows headings, respects the token budget, overlaps, and has stable ids."""

from __future__ import annotations

import itertools
import re

import pytest

from kit.rag.chunk import ChunkingConfig, chunk_document, count_tokens
from kit.rag.documents import Document

PAGE = """# Path Parameters

You can declare path parameters with the same syntax used by Python format strings.

## Data conversion

If you run this example and open your browser, you will see the value converted to an int.

```Python
@app.get("/items/{item_id}")
async def read_item(item_id: int):
    return {"item_id": item_id}
```

## Order matters

When creating path operations, you can find situations where you have a fixed path.
"""


def doc(text: str, doc_id: str = "tutorial/path-params.md") -> Document:
    return Document(id=doc_id, source=f"docs/{doc_id}", title="Path Parameters", text=text)


def test_chunks_never_cross_a_heading_and_carry_their_heading_path() -> None:
    chunks = chunk_document(doc(PAGE), ChunkingConfig())

    assert [c.heading_path for c in chunks] == [
        ("Path Parameters",),
        ("Path Parameters", "Data conversion"),
        ("Path Parameters", "Order matters"),
    ]
    assert "```Python" in chunks[1].text and chunks[1].text.rstrip().endswith("```")
    assert chunks[1].embedding_text().startswith("Path Parameters > Data conversion\n\n")
    assert [c.index for c in chunks] == [0, 1, 2]


def test_every_chunk_fits_the_budget_and_neighbours_overlap() -> None:
    sentences = [
        f"Sentence number {i} explains one more detail about dependencies." for i in range(60)
    ]
    paragraphs = "\n\n".join(" ".join(sentences[i : i + 3]) for i in range(0, 60, 3))
    config = ChunkingConfig(max_tokens=64, overlap_tokens=16)

    chunks = chunk_document(doc(f"# Dependencies\n\n{paragraphs}"), config)

    assert len(chunks) > 5
    assert max(count_tokens(c.text) for c in chunks) <= 64
    for previous, following in itertools.pairwise(chunks):
        first_sentence = re.split(r"(?<=\.)\s+", following.text)[0]
        assert first_sentence in previous.text  # the next chunk starts with the previous tail
    joined = " ".join(c.text for c in chunks)
    assert all(sentence in joined for sentence in sentences)  # nothing lost


def test_a_huge_paragraph_is_split_by_sentences_within_budget() -> None:
    giant = " ".join(
        f"Clause {i} keeps going without a heading or a blank line." for i in range(80)
    )
    config = ChunkingConfig(max_tokens=50, overlap_tokens=0)

    chunks = chunk_document(doc(giant), config)

    assert len(chunks) > 5
    assert max(count_tokens(c.text) for c in chunks) <= 50
    assert " ".join(c.text for c in chunks).split() == giant.split()


def test_a_short_record_stays_one_chunk() -> None:
    chunks = chunk_document(doc("Refunds take five working days.", "faq-17"), ChunkingConfig())

    assert len(chunks) == 1 and chunks[0].text == "Refunds take five working days."


def test_ids_are_stable_and_change_only_with_content() -> None:
    first = chunk_document(doc(PAGE), ChunkingConfig())
    again = chunk_document(doc(PAGE), ChunkingConfig())
    edited = chunk_document(doc(PAGE.replace("fixed path", "fixed route")), ChunkingConfig())

    assert [c.id for c in first] == [c.id for c in again]
    assert [c.id for c in first][:2] == [c.id for c in edited][:2]  # untouched sections
    assert first[2].id != edited[2].id
    assert len({c.id for c in first}) == len(first)


def test_overlap_must_stay_under_half_the_budget() -> None:
    with pytest.raises(ValueError, match="overlap_tokens must be under half"):
        ChunkingConfig(max_tokens=100, overlap_tokens=60)
