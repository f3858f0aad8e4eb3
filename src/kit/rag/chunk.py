"""Split documents into chunks that follow their structure and fit the embedder's token budget.

    # Path Parameters                 -> section ["Path Parameters"]
    ## Data conversion                -> section ["Path Parameters", "Data conversion"]
    paragraph, paragraph, ```code```  -> blocks, packed greedily up to `max_tokens`

A chunk never crosses a heading; within a section, blocks (paragraphs, lists, code fences) are
packed until the budget is reached; a block too large on its own is split by sentences, then by
words. Consecutive chunks of a section share `overlap_tokens` of text, so an answer that spans a
boundary is still found whole in one of them. A short record stays one chunk.

Tokens are counted with the embedder's own tokenizer (MiniLM's word pieces), because its limit
(256 pieces; anything beyond is cut off unseen) is what the budget protects. Chunk ids are a
hash of the document id and the chunk's content: re-running on unchanged text gives the same ids,
which is what makes re-ingestion incremental.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kit.rag.documents import Document, MetadataValue

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9`\"'(\[])")
_FENCE = re.compile(r"^(```|~~~)")


class ChunkingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(200, ge=16, le=2048, description="Budget per chunk, in word pieces.")
    overlap_tokens: int = Field(32, ge=0, le=512, description="Shared between neighbours.")

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkingConfig:
        if self.overlap_tokens >= self.max_tokens // 2:
            raise ValueError("overlap_tokens must be under half of max_tokens")
        return self

    def fingerprint(self) -> str:
        return f"max{self.max_tokens}-overlap{self.overlap_tokens}"


@dataclass(frozen=True)
class Chunk:
    id: str  # a UUID derived from the document id and the chunk's text: stable across runs
    doc_id: str
    index: int  # position in the document
    text: str  # the chunk's own text
    heading_path: tuple[str, ...]  # ("Path Parameters", "Data conversion")
    title: str
    source: str
    metadata: dict[str, MetadataValue] = field(default_factory=dict)
    path: str = ""  # the document's file below KIT_DOCS_ROOT: what --prune goes by

    def embedding_text(self) -> str:
        """What is embedded: the title and section path give a paragraph its context."""
        context = " > ".join(dict.fromkeys((self.title, *self.heading_path)))
        return f"{context}\n\n{self.text}" if context else self.text


@cache
def _minilm_tokenizer() -> Callable[[str], int]:
    from tokenizers import Tokenizer

    from kit.llm.local_models import MINILM

    tokenizer = Tokenizer.from_file(str(MINILM.path() / "tokenizer.json"))
    tokenizer.no_padding()  # the shipped file pads to 128, which would count every text as 128
    tokenizer.no_truncation()
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def count_tokens(text: str) -> int:
    return _minilm_tokenizer()(text)


def chunk_id(doc_id: str, text: str) -> str:
    digest = hashlib.sha256(f"{doc_id}\x00{text}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def chunk_document(
    document: Document, config: ChunkingConfig, count: Callable[[str], int] = count_tokens
) -> list[Chunk]:
    chunks: list[Chunk] = []
    for heading_path, blocks in _sections(document.text):
        for text in _pack(blocks, config, count):
            chunks.append(
                Chunk(
                    id=chunk_id(document.id, f"{' > '.join(heading_path)}\n{text}"),
                    doc_id=document.id,
                    index=len(chunks),
                    text=text,
                    heading_path=heading_path,
                    title=document.title,
                    source=document.source,
                    metadata=document.metadata,
                    path=document.path,
                )
            )
    return chunks


def _sections(text: str) -> Iterator[tuple[tuple[str, ...], list[str]]]:
    """(heading path, blocks) per section; a block is a paragraph, a list or a code fence."""
    path: list[tuple[int, str]] = []
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False

    def close_block() -> None:
        if current and "".join(current).strip():
            blocks.append("\n".join(current).strip("\n"))
        current.clear()

    for line in text.splitlines():
        if _FENCE.match(line.strip()):
            if not in_fence:
                close_block()
            current.append(line)
            in_fence = not in_fence
            if not in_fence:
                close_block()
            continue
        if in_fence:
            current.append(line)
            continue
        heading = _HEADING.match(line)
        if heading:
            close_block()
            if blocks:
                yield tuple(title for _, title in path), blocks
                blocks = []
            level = len(heading.group(1))
            path = [(lvl, title) for lvl, title in path if lvl < level] + [
                (level, heading.group(2))
            ]
        elif not line.strip():
            close_block()
        else:
            current.append(line)
    close_block()
    if blocks:
        yield tuple(title for _, title in path), blocks


def _pack(blocks: list[str], config: ChunkingConfig, count: Callable[[str], int]) -> list[str]:
    """Greedy packing of blocks into chunks of at most `max_tokens`, with overlap."""
    pieces: list[tuple[str, int]] = []
    for block in blocks:
        tokens = count(block)
        if tokens <= config.max_tokens:
            pieces.append((block, tokens))
        else:
            pieces.extend((part, count(part)) for part in _split_large(block, config, count))

    chunks: list[str] = []
    current: list[tuple[str, int]] = []
    size = 0
    for piece, tokens in pieces:
        if current and size + tokens > config.max_tokens:
            chunks.append("\n\n".join(text for text, _ in current))
            current, size = _overlap(
                current, config.overlap_tokens, config.max_tokens - tokens, count
            )
        current.append((piece, tokens))
        size += tokens
    if current:
        chunks.append("\n\n".join(text for text, _ in current))
    return chunks


def _overlap(
    previous: list[tuple[str, int]],
    overlap_tokens: int,
    room: int,
    count: Callable[[str], int],
) -> tuple[list[tuple[str, int]], int]:
    """The tail of the previous chunk to start the next one with: whole pieces while they fit,
    then the last sentences of the piece that does not."""
    budget = min(overlap_tokens, room)
    kept: list[tuple[str, int]] = []
    size = 0
    for text, tokens in reversed(previous):
        if size + tokens <= budget:
            kept.insert(0, (text, tokens))
            size += tokens
            continue
        if not _FENCE.match(text.strip()):  # never start a chunk in the middle of code
            tail: list[str] = []
            for sentence in reversed(_SENTENCE_END.split(text)):
                candidate = " ".join([sentence, *tail])
                if size + count(candidate) > budget:
                    break
                tail.insert(0, sentence)
            if tail:
                text = " ".join(tail)
                tokens = count(text)
                kept.insert(0, (text, tokens))
                size += tokens
        break
    return kept, size


def _split_large(block: str, config: ChunkingConfig, count: Callable[[str], int]) -> list[str]:
    """Split one oversized block: code by lines, prose by sentences, then by words."""
    is_code = bool(_FENCE.match(block.strip()))
    units = block.splitlines() if is_code else _SENTENCE_END.split(block)
    parts: list[str] = []
    current: list[str] = []
    for unit in units:
        if count(unit) > config.max_tokens:  # a giant sentence or line: cut it by words
            words = unit.split(" ")
            step = max(1, len(words) * config.max_tokens // (2 * count(unit)))
            units_of_words = [" ".join(words[i : i + step]) for i in range(0, len(words), step)]
        else:
            units_of_words = [unit]
        for piece in units_of_words:
            candidate = ("\n" if is_code else " ").join([*current, piece])
            if current and count(candidate) > config.max_tokens:
                parts.append(("\n" if is_code else " ").join(current))
                current = []
            current.append(piece)
    if current:
        parts.append(("\n" if is_code else " ").join(current))
    return parts
