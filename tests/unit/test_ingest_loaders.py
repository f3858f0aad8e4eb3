"""Loaders turn each supported file into Documents, and each bad input into a Skipped that says why.

Inputs are written under tmp_path (PDFs made with fpdf2), except the last tests, which load the
real FastAPI docs corpus in data/fastapi-docs/docs. Every id, source and skip names the file by
its path from the root it was loaded under, never by an absolute path. Which files are found is
tests/unit/test_ingest_paths.py's subject.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fpdf import FPDF

from kit.rag.documents import Document, Skipped
from kit.rag.loaders import JsonlFields, load_file
from kit.rag.paths import DocsRoot, discover

DATA = Path(__file__).resolve().parents[2] / "data"
CORPUS = DATA / "fastapi-docs" / "docs"


def load(
    path: Path,
    root: Path | None = None,
    *,
    jsonl: JsonlFields | None = None,
    max_bytes: int = 10_000_000,
) -> list[Document | Skipped]:
    """Everything one file yields; the root defaults to the file's folder."""
    fields = jsonl or JsonlFields()
    return list(load_file(path, root or path.parent, jsonl=fields, max_bytes=max_bytes))


def load_one(
    path: Path, root: Path | None = None, *, jsonl: JsonlFields | None = None
) -> Document | Skipped:
    (item,) = load(path, root, jsonl=jsonl)
    return item


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return path


def pdf_bytes(*pages: str, title: str | None = None) -> bytes:
    """A PDF with one page per string; an empty string gives a page with no text at all."""
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.cell(text=text)
    return bytes(pdf.output())


# Each format loads ------------------------------------------------------------------------------


def test_markdown_file_loads_cleaned_with_its_root_relative_path_as_id(tmp_path: Path) -> None:
    page = write(
        tmp_path / "tutorial" / "path-params.md",
        "# Path Parameters { #path-parameters }\n\n/// tip\n\nUse types.\n\n///\n",
    )

    document = load_one(page, root=tmp_path)

    assert document == Document(
        id="tutorial/path-params.md",
        source="tutorial/path-params.md",  # not str(page): no server path leaves the loader
        title="Path Parameters",
        text="# Path Parameters\n\nTip:\n\nUse types.",
        metadata={"format": "markdown", "path": "tutorial/path-params.md"},
        path="tutorial/path-params.md",
    )


def test_markdown_without_a_heading_takes_the_file_stem_as_title(tmp_path: Path) -> None:
    document = load_one(write(tmp_path / "release-notes.markdown", "Fixed a bug.\n"))

    assert isinstance(document, Document)
    assert document.title == "release-notes"


def test_text_file_loads_with_the_stem_as_title(tmp_path: Path) -> None:
    document = load_one(write(tmp_path / "notes.txt", "First line.\r\n\r\n\r\n\r\nSecond.\n"))

    assert isinstance(document, Document)
    assert (document.id, document.title, document.text) == (
        "notes.txt",
        "notes",
        "First line.\n\nSecond.",
    )
    assert document.metadata == {"format": "text", "path": "notes.txt"}


def test_html_file_loads_with_the_page_title_and_headings(tmp_path: Path) -> None:
    html = "<html><head><title>Deploy</title></head><body><h1>Docker</h1><p>Build it.</p></body>"

    document = load_one(write(tmp_path / "site" / "deploy.htm", html), root=tmp_path)

    assert isinstance(document, Document)
    assert (document.id, document.title, document.text) == (
        "site/deploy.htm",
        "Deploy",
        "# Docker\n\nBuild it.",
    )
    assert document.metadata["format"] == "html"


def test_pdf_loads_the_text_of_every_page_and_its_metadata_title(tmp_path: Path) -> None:
    pdf = write(
        tmp_path / "guide.pdf", pdf_bytes("Run the server.", "Then deploy it.", title="Guide")
    )

    document = load_one(pdf)

    assert isinstance(document, Document)
    assert document.text == "Run the server.\n\nThen deploy it."
    assert document.title == "Guide"
    assert document.metadata == {"format": "pdf", "path": "guide.pdf", "pages": 2}


def test_pdf_without_a_metadata_title_takes_the_file_stem(tmp_path: Path) -> None:
    document = load_one(write(tmp_path / "handbook.pdf", pdf_bytes("Some text.")))

    assert isinstance(document, Document)
    assert document.title == "handbook"


def test_json_list_gives_one_document_per_record(tmp_path: Path) -> None:
    records = [
        {"id": "faq-1", "title": "Install", "text": "pip install fastapi", "lang": "en"},
        {"id": 2, "text": "Run it with fastapi dev."},
    ]
    path = write(tmp_path / "faq.json", json.dumps(records))

    documents = load(path, jsonl=JsonlFields(metadata=("lang",)))

    assert documents == [
        Document(
            "faq-1",
            "faq.json[0]",
            "Install",
            "pip install fastapi",
            {"lang": "en", "format": "json"},
            path="faq.json",  # the record keeps its own id, and says which file it came from
        ),
        Document(
            "2", "faq.json[1]", "2", "Run it with fastapi dev.", {"format": "json"}, "faq.json"
        ),
    ]


def test_json_file_with_one_object_is_one_record(tmp_path: Path) -> None:
    path = write(tmp_path / "one.json", '{"id": "a", "text": "Hello"}')

    assert load(path) == [Document("a", "one.json", "a", "Hello", {"format": "json"}, "one.json")]


def test_jsonl_joins_text_fields_and_copies_scalar_metadata(tmp_path: Path) -> None:
    record = {
        "doc_id": "q-7",
        "question": "How do I run it?",
        "answer": "With fastapi dev.",
        "votes": 12,
        "accepted": True,
        "tags": ["cli"],  # not a scalar: left out of metadata
    }
    path = write(tmp_path / "qa.jsonl", json.dumps(record) + "\n")
    fields = JsonlFields(
        id="doc_id", text=("question", "answer"), title=None, metadata=("votes", "accepted", "tags")
    )

    document = load_one(path, jsonl=fields)

    assert document == Document(
        id="q-7",
        source="qa.jsonl:1",
        title="q-7",
        text="How do I run it?\n\nWith fastapi dev.",
        metadata={"votes": 12, "accepted": True, "format": "jsonl"},
        path="qa.jsonl",
    )


# Bad inputs are skipped with a reason -----------------------------------------------------------


def test_empty_file_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "empty.md", "")

    assert load(path) == [Skipped("empty.md", "empty file")]


def test_file_over_the_size_limit_is_skipped_before_it_is_read(tmp_path: Path) -> None:
    path = write(tmp_path / "big.txt", "x" * 1_230_000)

    assert load(path, max_bytes=1_000_000) == [
        Skipped("big.txt", "1.2 MB is over the 1.0 MB limit; raise --max-bytes")
    ]


def test_nul_bytes_in_a_text_format_are_skipped_as_binary(tmp_path: Path) -> None:
    path = write(tmp_path / "image.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    assert load(path) == [Skipped("image.md", "binary content in a text file")]


def test_latin_1_text_is_skipped_with_the_offending_byte(tmp_path: Path) -> None:
    path = write(tmp_path / "cafe.txt", "Caf\u00e9 menu".encode("latin-1"))

    assert load(path) == [
        Skipped("cafe.txt", "not UTF-8 text (byte 0xe9 at offset 3); convert it to UTF-8")
    ]


def test_utf8_byte_order_mark_is_not_part_of_the_text(tmp_path: Path) -> None:
    document = load_one(write(tmp_path / "bom.md", "\ufeff# Title\n\nText"))

    assert isinstance(document, Document)
    assert document.text == "# Title\n\nText"


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(bytes(range(256)) * 8, id="arbitrary-bytes"),
        pytest.param(pdf_bytes("Hello")[:400], id="truncated-download"),
    ],
)
def test_corrupt_pdf_is_skipped_with_pypdfs_message(tmp_path: Path, content: bytes) -> None:
    path = write(tmp_path / "broken.pdf", content)

    skipped = load_one(path)

    assert isinstance(skipped, Skipped)
    assert skipped.reason.startswith("corrupt PDF: ")
    assert len(skipped.reason) > len("corrupt PDF: ")


def test_pdf_without_text_is_skipped_as_needing_ocr(tmp_path: Path) -> None:
    path = write(tmp_path / "scan.pdf", pdf_bytes(""))

    assert load(path) == [Skipped("scan.pdf", "PDF has no text layer (scanned?); OCR it first")]


def test_unsupported_suffix_is_skipped_and_the_supported_ones_are_listed(tmp_path: Path) -> None:
    path = write(tmp_path / "slides.pptx", b"PK\x03\x04")

    (skipped,) = load(path)

    assert isinstance(skipped, Skipped)
    assert skipped.reason.startswith("unsupported file type .pptx; supported: ")
    assert ".md" in skipped.reason and ".jsonl" in skipped.reason


def test_document_with_no_text_after_cleaning_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "include-only.md", "{* ../../docs_src/app/tutorial001.py *}\n")

    assert load(path) == [Skipped("include-only.md", "no text left after cleaning")]


def test_bad_jsonl_line_is_skipped_and_the_good_lines_still_load(tmp_path: Path) -> None:
    lines = [
        '{"id": "a", "text": "First"}',
        '{"id": "b", "text": ',
        "",
        '{"id": "c", "text": "Third"}',
    ]
    path = write(tmp_path / "records.jsonl", "\n".join(lines) + "\n")

    items = load(path)

    assert [item.id for item in items if isinstance(item, Document)] == ["a", "c"]
    assert [item for item in items if isinstance(item, Skipped)] == [
        Skipped("records.jsonl:2", "line 2: invalid JSON (Expecting value)")
    ]


def test_jsonl_record_without_the_text_field_is_skipped_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "records.jsonl", '{"id": "a", "body": "Text"}\n')

    assert load(path) == [Skipped("records.jsonl:1", "line 1: no 'text' field; set --text-field")]


def test_jsonl_record_without_the_id_field_is_skipped_with_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "records.jsonl", '{"text": "Orphan"}\n{"id": "b", "text": "Kept"}\n')

    items = load(path)

    assert items[0] == Skipped("records.jsonl:1", "line 1: no 'id' field; set --id-field")
    assert isinstance(items[1], Document) and items[1].id == "b"


def test_json_record_that_is_not_an_object_is_skipped(tmp_path: Path) -> None:
    path = write(tmp_path / "mixed.json", '[{"id": "a", "text": "Fine"}, "just a string"]')

    assert load(path)[1] == Skipped("mixed.json[1]", "record 1: expected a JSON object, got string")


def test_invalid_json_file_is_skipped_with_the_parser_message(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.json", '[{"id": "a", "text": "x"},]')

    (skipped,) = load(path)

    assert isinstance(skipped, Skipped)
    assert skipped.reason.startswith("invalid JSON (")


# The real corpus --------------------------------------------------------------------------------


def test_the_fastapi_docs_corpus_loads_as_125_documents_and_no_skips() -> None:
    root = DocsRoot.at(DATA)  # KIT_DOCS_ROOT's default, seen from the repository
    found = list(discover([CORPUS], root))
    items = [
        item for file in found if isinstance(file, Path) for item in load_file(file, root.path)
    ]

    assert [item for item in [*found, *items] if isinstance(item, Skipped)] == []
    ids = {item.id for item in items if isinstance(item, Document)}
    assert len(ids) == 125
    pages = ("tutorial/path-params.md", "deployment/docker.md", "index.md")
    assert {f"fastapi-docs/docs/{page}" for page in pages} <= ids  # the question set's ids


def test_corpus_documents_have_titles_from_their_first_heading() -> None:
    page = CORPUS / "tutorial" / "path-params.md"

    document = load_one(page, root=CORPUS)

    assert isinstance(document, Document)
    assert document.title == "Path Parameters"
    assert document.text.startswith("# Path Parameters\n")
