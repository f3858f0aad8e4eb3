"""Turn each input file into Documents: Markdown, text, HTML, PDF, JSON and JSONL records.

A bad input never stops a run: it becomes a `Skipped` with a reason a person can act on, and
the other inputs still load. This module reads files and decodes them; `paths` decides which
files may be read (those below KIT_DOCS_ROOT) and finds them, `clean` owns what happens to the
text, and nothing here knows about chunks, embeddings or Qdrant.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pypdf import PdfReader

from kit.rag.clean import clean_html, clean_markdown, clean_text, title_from_markdown
from kit.rag.documents import Document, MetadataValue, Skipped

# File suffix -> the `format` recorded in each Document's metadata.
FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".json": "json",
    ".jsonl": "jsonl",
}


@dataclass(frozen=True)
class JsonlFields:
    """Which fields of a JSON or JSONL record hold its id, text, title and metadata."""

    id: str = "id"
    text: tuple[str, ...] = ("text",)  # several fields are joined with blank lines
    title: str | None = "title"  # the record's id when absent
    metadata: tuple[str, ...] = ()  # copied into metadata; only str/int/float/bool values


class _Skip(Exception):
    """Raised by the helpers below; `load_file` turns it into a `Skipped` with this reason."""


def load_file(
    path: Path, root: Path, *, jsonl: JsonlFields = JsonlFields(), max_bytes: int = 10_000_000
) -> Iterator[Document | Skipped]:
    """Yield the Documents in one file (one per file, or one per JSON/JSONL record).

    `root` is the docs root the file lies below: ids, sources and skip reports name the file by
    its path from there ("tutorial/body.md"), never by the server's absolute path.
    Never raises for bad input: an empty, oversized, binary, undecodable or corrupt file, or one
    with no text, yields a single `Skipped`; a bad JSONL line skips that record only.
    """
    source = path.relative_to(root).as_posix()  # "tutorial/path-params.md", on any OS
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        kind, supported = path.suffix or "(no suffix)", ", ".join(sorted(FORMATS))
        yield Skipped(source, f"unsupported file type {kind}; supported: {supported}")
        return
    try:
        data = _read(path, max_bytes)
        if fmt == "pdf":
            yield _load_pdf(data, path, root)
        elif fmt == "json":
            yield from _json_documents(_decode(data), source, jsonl)
        elif fmt == "jsonl":
            yield from _jsonl_documents(data, source, jsonl)
        else:
            yield _load_text(_decode(data), fmt, path, root)
    except _Skip as skip:
        yield Skipped(source, str(skip))


def _read(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:  # checked before reading, so a 5 GB dump is never loaded
            limit = f"{_size(max_bytes)} limit"
            raise _Skip(f"{_size(size)} is over the {limit}; raise --max-bytes")
        data = path.read_bytes()
    except OSError as error:
        raise _Skip(f"cannot read the file ({error.strerror})") from error
    if not data:
        raise _Skip("empty file")
    return data


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes:,} bytes"


def _decode(data: bytes) -> str:
    # UTF-16 text also contains NUL bytes, but it is rare in documentation; ask for UTF-8.
    if b"\x00" in data:
        raise _Skip("binary content in a text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        byte, offset = data[error.start], error.start
        reason = f"not UTF-8 text (byte 0x{byte:02x} at offset {offset}); convert it to UTF-8"
        raise _Skip(reason) from error
    return text.removeprefix("\ufeff")  # the byte order mark some Windows editors write


def _load_text(text: str, fmt: str, path: Path, root: Path) -> Document:
    if fmt == "markdown":
        title, text = title_from_markdown(text, path.stem), clean_markdown(text)
    elif fmt == "html":
        title, text = clean_html(text)
    else:
        title, text = path.stem, clean_text(text)
    return _file_document(path, root, title or path.stem, text, fmt)


def _load_pdf(data: bytes, path: Path, root: Path) -> Document:
    # pypdf raises many exception types on malformed files (its own, ValueError, KeyError,
    # struct.error...). Any of them means the same to the user: this PDF cannot be read.
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Skip("encrypted PDF; remove the password first")
        pages = [page.extract_text() for page in reader.pages]
        info = reader.metadata
        metadata_title = info.title if info is not None else None
    except _Skip:
        raise
    except Exception as error:
        raise _Skip(f"corrupt PDF: {error}") from error
    # Pages become paragraphs; "\f" and other control characters go in clean_text.
    text = clean_text("\n\n".join(page.strip() for page in pages))
    if not text.strip():
        raise _Skip("PDF has no text layer (scanned?); OCR it first")
    title = metadata_title.strip() if isinstance(metadata_title, str) else ""
    return _file_document(path, root, title or path.stem, text, "pdf", pages=len(pages))


def _file_document(
    path: Path, root: Path, title: str, text: str, fmt: str, **extra: MetadataValue
) -> Document:
    if not text.strip():
        raise _Skip("no text left after cleaning")
    relative = path.relative_to(root).as_posix()
    metadata: dict[str, MetadataValue] = {"format": fmt, "path": relative, **extra}
    return Document(
        id=relative, source=relative, title=title, text=text, metadata=metadata, path=relative
    )


def _json_documents(text: str, file: str, fields: JsonlFields) -> Iterator[Document | Skipped]:
    try:
        parsed: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise _Skip(f"invalid JSON ({error.msg} at line {error.lineno})") from error
    if isinstance(parsed, dict):  # one record
        yield _record_document(parsed, file, file, "record", "json", fields)
    elif isinstance(parsed, list):  # records are named like jq names them: file.json[3]
        for index, record in enumerate(parsed):
            where, item = f"record {index}", f"{file}[{index}]"
            yield _record_document(record, file, item, where, "json", fields)
    else:
        raise _Skip(f"expected a list of records or one record, got a JSON {_json_type(parsed)}")


def _jsonl_documents(data: bytes, file: str, fields: JsonlFields) -> Iterator[Document | Skipped]:
    # Decoded line by line, so one line with a bad byte skips that record, not the whole file.
    if b"\x00" in data:
        raise _Skip("binary content in a text file")
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        where, line_source = f"line {number}", f"{file}:{number}"
        try:
            record: Any = json.loads(raw.decode("utf-8").removeprefix("\ufeff"))
        except UnicodeDecodeError as error:
            reason = f"not UTF-8 text (byte 0x{raw[error.start]:02x} at column {error.start})"
            yield Skipped(line_source, f"{where}: {reason}; convert it to UTF-8")
        except json.JSONDecodeError as error:
            yield Skipped(line_source, f"{where}: invalid JSON ({error.msg})")
        else:
            yield _record_document(record, file, line_source, where, "jsonl", fields)


def _record_document(
    record: Any, file: str, source: str, where: str, fmt: str, fields: JsonlFields
) -> Document | Skipped:
    """One record as a Document. Its id is the record's own, so it stays the same if the record
    moves to another file; `path` records the file, so `--prune` can still tell it is gone."""
    if not isinstance(record, dict):
        return Skipped(source, f"{where}: expected a JSON object, got {_json_type(record)}")

    record_id = record.get(fields.id)
    if record_id is None or record_id == "":
        return Skipped(source, f"{where}: no '{fields.id}' field; set --id-field")
    if not isinstance(record_id, str | int) or isinstance(record_id, bool):
        kind = _json_type(record_id)
        return Skipped(source, f"{where}: '{fields.id}' is a JSON {kind}, not a string or integer")
    texts = [record[name] for name in fields.text if isinstance(record.get(name), str)]
    if not texts:
        names = " or ".join(f"'{name}'" for name in fields.text)
        return Skipped(source, f"{where}: no {names} field; set --text-field")
    text = clean_text("\n\n".join(texts))
    if not text.strip():
        return Skipped(source, f"{where}: no text left after cleaning")

    title = record.get(fields.title) if fields.title else None
    metadata: dict[str, MetadataValue] = {
        name: record[name]
        for name in fields.metadata
        if isinstance(record.get(name), str | int | float | bool)
    }
    metadata["format"] = fmt  # set last: a record field called "format" must not hide it
    return Document(
        id=str(record_id),
        source=source,
        title=title.strip() if isinstance(title, str) and title.strip() else str(record_id),
        text=text,
        metadata=metadata,
        path=file,
    )


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages: "array", not Python's "list"."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")
