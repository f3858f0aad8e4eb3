"""Cleaning keeps the words and the structure and drops the markup: rule by rule, then the corpus.

Snippets are adapted from the FastAPI docs in data/fastapi-docs/docs, the corpus the rules were
tuned on; the last tests run every page of that corpus through `clean_markdown`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kit.rag.clean import clean_html, clean_markdown, clean_text, title_from_markdown

CORPUS = Path(__file__).resolve().parents[2] / "data" / "fastapi-docs" / "docs"
CORPUS_PAGES = sorted(CORPUS.rglob("*.md"))
LEFTOVER_MARKUP = ("{ #", "{*", "*}", "///", "<div", "</div>", "<font", "<abbr")


def without_fenced_code(markdown: str) -> str:
    """The text with each fenced code block cut down to a "```" line: code may hold any markup."""
    kept, fence = [], ""
    for line in markdown.split("\n"):
        opening = re.match(r"\s*(`{3,}|~{3,})", line)
        if fence:
            if opening and line.strip() == opening.group(1) and opening.group(1)[0] == fence[0]:
                fence = ""
        elif opening:
            fence = opening.group(1)
            kept.append("```")
        else:
            kept.append(line)
    return "\n".join(kept)


# Markdown: MkDocs syntax ------------------------------------------------------------------------


def test_heading_anchors_are_removed() -> None:
    cleaned = clean_markdown("# First Steps { #first-steps }\n\n### Check it { #check-it }\n")

    assert cleaned == "# First Steps\n\n### Check it"


def test_admonition_becomes_a_label_line_and_keeps_its_content() -> None:
    markdown = "Copy that.\n\n/// tip\n\nFastAPI has an extension for VS Code.\n\n///\n\nRun it."

    cleaned = clean_markdown(markdown)

    assert cleaned == "Copy that.\n\nTip:\n\nFastAPI has an extension for VS Code.\n\nRun it."


def test_admonition_title_goes_in_parentheses() -> None:
    markdown = (
        "/// note | Technical Details\n\nYou could also use `from starlette import x`.\n\n///"
    )

    cleaned = clean_markdown(markdown)

    assert cleaned.splitlines()[0] == "Note (Technical Details):"
    assert "You could also use `from starlette import x`." in cleaned


def test_indented_admonition_inside_a_list_keeps_its_indentation() -> None:
    markdown = "4. Install the packages.\n\n    /// note\n\n    Only for `pip`.\n\n    ///\n"

    cleaned = clean_markdown(markdown)

    assert cleaned == "4. Install the packages.\n\n    Note:\n\n    Only for `pip`."


def test_include_directives_are_removed_without_leaving_blank_runs() -> None:
    markdown = (
        "The simplest FastAPI file:\n\n"
        "{* ../../docs_src/first_steps/tutorial001_py310.py hl[3] *}\n\n"
        "{!> ../../docs_src/python_types/tutorial008b_py310.py!}\n\n"
        "Copy that to a file `main.py`."
    )

    cleaned = clean_markdown(markdown)

    assert cleaned == "The simplest FastAPI file:\n\nCopy that to a file `main.py`."


def test_front_matter_at_the_top_is_removed() -> None:
    markdown = "---\ninclude_yaml:\n  sponsors: data/sponsors.yml\n---\n\n# FastAPI\n\n---\n\nText"

    cleaned = clean_markdown(markdown)

    assert cleaned == "# FastAPI\n\n---\n\nText"  # a later "---" is a horizontal rule: kept


def test_jinja_template_loops_are_removed() -> None:
    markdown = (
        "### Gold Sponsors\n\n{% for sponsor in sponsors.gold -%}\n"
        '<a href="{{ sponsor.url }}">{{ sponsor.title }}</a>\n{% endfor -%}\n\nThanks!'
    )

    assert clean_markdown(markdown) == "### Gold Sponsors\n\nThanks!"


# Markdown: links and images ---------------------------------------------------------------------


def test_links_keep_their_text() -> None:
    markdown = (
        "Open [http://127.0.0.1:8000/docs](http://127.0.0.1:8000/docs) or [ReDoc](https://x.io)."
    )

    assert clean_markdown(markdown) == "Open http://127.0.0.1:8000/docs or ReDoc."


def test_images_are_removed_even_inside_links() -> None:
    markdown = (
        "You will see:\n\n![Swagger UI](https://x.io/a.png)\n\n[![logo](l.png)](https://x.io)"
    )

    assert clean_markdown(markdown) == "You will see:"


def test_link_text_with_inline_code_is_kept_whole() -> None:
    markdown = "* [`httpx`](https://www.python-httpx.org) - Required for the `TestClient`."

    assert clean_markdown(markdown) == "* `httpx` - Required for the `TestClient`."


def test_emphasis_markers_are_kept() -> None:
    assert clean_markdown("**FastAPI** is _fast_.") == "**FastAPI** is _fast_."


# Markdown: inline HTML --------------------------------------------------------------------------


def test_abbr_and_dfn_keep_only_their_text() -> None:
    markdown = (
        'Tests if the <abbr title="Large Language Model">LLM</abbr> works. '
        '<dfn title="also known as auto-complete">Completion</dfn> everywhere.'
    )

    assert clean_markdown(markdown) == "Tests if the LLM works. Completion everywhere."


def test_html_links_keep_their_text_and_images_go() -> None:
    markdown = (
        '<a href="https://fastapi.tiangolo.com"><img src="logo.png" alt="FastAPI"></a>\n\n'
        '— Kabir Khan, <strong>Microsoft</strong> <a href="https://github.com/x/26">(ref)</a>'
    )

    assert clean_markdown(markdown) == "— Kabir Khan, Microsoft (ref)"


def test_termy_div_is_dropped_and_its_console_block_kept() -> None:
    markdown = (
        "Run the live server:\n\n"
        '<div class="termy">\n\n```console\n$ fastapi dev main.py\n```\n\n</div>\n\n'
        "In the output, there's a line."
    )

    cleaned = clean_markdown(markdown)

    assert cleaned == (
        "Run the live server:\n\n```console\n$ fastapi dev main.py\n```\n\n"
        "In the output, there's a line."
    )


def test_indented_html_loses_its_layout_indentation() -> None:
    markdown = '<p align="center">\n    <em>FastAPI framework, high performance</em>\n</p>'

    assert clean_markdown(markdown) == "FastAPI framework, high performance"


def test_html_table_cells_are_separated_and_code_tags_become_backticks() -> None:
    markdown = "<table><tr><td><code>name</code></td><td>The contact name.</td></tr></table>"

    assert clean_markdown(markdown) == "`name` The contact name."


def test_style_blocks_and_comments_are_removed_with_their_content() -> None:
    markdown = (
        "# FastAPI\n\n<style>\n.md-typeset h1 { display: none; }\n</style>\n\n"
        "<!-- sponsors -->\nText"
    )

    assert clean_markdown(markdown) == "# FastAPI\n\nText"


def test_html_entities_are_decoded() -> None:
    assert clean_markdown("Tom &amp; Jerry&#39;s &quot;API&quot;") == 'Tom & Jerry\'s "API"'


def test_escaped_markup_stays_as_visible_text() -> None:
    assert clean_markdown("Write &lt;div&gt; in the template.") == "Write <div> in the template."


def test_angle_brackets_that_are_not_html_survive() -> None:
    markdown = "A `List<int>` is not HTML, and neither is <your-token> or <https://x.io>."

    cleaned = clean_markdown(markdown)

    assert cleaned == "A `List<int>` is not HTML, and neither is <your-token> or https://x.io."


def test_html_inside_inline_code_is_kept() -> None:
    markdown = "Data from forms is sent in a `<form></form>` element."

    assert clean_markdown(markdown) == markdown


# Markdown: code and layout ----------------------------------------------------------------------


def test_fenced_code_is_kept_verbatim_even_when_it_looks_like_markup() -> None:
    code = (
        "```console\n"
        '$ <font color="#4E9A06">uv run fastapi</font> dev\n'
        "/// not an admonition\n"
        "{* not/an/include.py *}\n"
        "# not a heading { #nope }\n"
        "[not](a-link) &amp;   \n"
        "\n\n\n"
        "```"
    )

    cleaned = clean_markdown(f"Run it:\n\n{code}\n\nDone.")

    assert cleaned == f"Run it:\n\n{code}\n\nDone."


def test_tilde_fences_and_longer_fences_are_code_too() -> None:
    markdown = "~~~\n<div>kept</div>\n~~~\n\n````markdown\n```\n<abbr>kept</abbr>\n```\n````"

    assert clean_markdown(markdown) == markdown


def test_blank_line_runs_collapse_and_trailing_spaces_go() -> None:
    cleaned = clean_markdown("# Title   \n\n\n\n\nFirst paragraph.  \n\n\n\nSecond.\r\n")

    assert cleaned == "# Title\n\nFirst paragraph.\n\nSecond."


def test_list_items_stay_one_per_line() -> None:
    markdown = "The key features are:\n\n* **Fast**: very high performance.\n* **Easy**: to use."

    assert clean_markdown(markdown) == markdown


# Titles -----------------------------------------------------------------------------------------


def test_title_is_the_first_heading_without_its_anchor() -> None:
    markdown = "---\ntitle: x\n---\n\n# Path Parameters { #path-parameters }\n\n## Order"

    assert title_from_markdown(markdown, fallback="path-params") == "Path Parameters"


def test_title_ignores_comments_in_code_blocks() -> None:
    markdown = "Intro.\n\n```bash\n# Print a greeting\necho hi\n```\n\n## Real heading"

    assert title_from_markdown(markdown, fallback="x") == "Real heading"


def test_title_falls_back_when_there_is_no_heading() -> None:
    assert title_from_markdown("Just a paragraph.", fallback="notes") == "notes"


# HTML pages and plain text ----------------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><title>Deploy &amp; Run</title><style>p { color: red }</style></head>
<body>
  <nav><a href="/">Home</a></nav>
  <header><p>Site banner</p></header>
  <main>
    <h1>Deployment</h1>
    <p>Run the
       server with <b>Uvicorn</b>.</p>
    <script>track()</script>
    <ul><li>fast</li><li>simple</li></ul>
    <h2>Command</h2>
    <pre>$ fastapi run main.py
    --port 80</pre>
  </main>
  <footer>Copyright</footer>
</body></html>"""


def test_html_page_becomes_headings_paragraphs_lists_and_fenced_code() -> None:
    _, text = clean_html(PAGE)

    assert text == (
        "# Deployment\n\nRun the server with Uvicorn.\n\n- fast\n- simple\n\n## Command\n\n"
        "```\n$ fastapi run main.py\n    --port 80\n```"
    )


def test_html_page_drops_navigation_header_footer_scripts_and_styles() -> None:
    _, text = clean_html(PAGE)

    for noise in ("Home", "Site banner", "Copyright", "track()", "color: red"):
        assert noise not in text


def test_html_title_comes_from_the_title_tag() -> None:
    title, _ = clean_html(PAGE)

    assert title == "Deploy & Run"


def test_html_title_falls_back_to_the_first_h1() -> None:
    title, _ = clean_html("<body><h1>Bigger Applications</h1><p>Text</p></body>")

    assert title == "Bigger Applications"


def test_plain_text_loses_control_characters_but_keeps_tabs() -> None:
    assert clean_text("page one\x0c\x00\r\npage\ttwo\x07") == "page one\npage\ttwo"


def test_plain_text_blank_line_runs_collapse() -> None:
    assert clean_text("\n\nfirst\r\n\r\n\r\n\r\nsecond  \n\n\n") == "first\n\nsecond"


# The whole corpus -------------------------------------------------------------------------------


def test_the_corpus_is_where_the_tests_expect_it() -> None:
    assert len(CORPUS_PAGES) == 125


@pytest.mark.parametrize("page", CORPUS_PAGES, ids=lambda page: page.relative_to(CORPUS).as_posix())
def test_corpus_page_has_no_markup_left_outside_code(page: Path) -> None:
    prose = without_fenced_code(clean_markdown(page.read_text(encoding="utf-8")))

    assert [markup for markup in LEFTOVER_MARKUP if markup in prose] == []
    assert "\n\n\n" not in prose


def _has_heading(page: Path) -> bool:
    prose = without_fenced_code(page.read_text(encoding="utf-8"))
    return re.search(r"^#{1,6} ", prose, re.MULTILINE) is not None


# Only pages that have a heading are checked here (selected up front, so nothing is skipped).
PAGES_WITH_HEADINGS = [page for page in CORPUS_PAGES if _has_heading(page)]


@pytest.mark.parametrize(
    "page", PAGES_WITH_HEADINGS, ids=lambda page: page.relative_to(CORPUS).as_posix()
)
def test_corpus_page_with_a_heading_starts_with_it_or_has_a_title(page: Path) -> None:
    markdown = page.read_text(encoding="utf-8")

    cleaned = clean_markdown(markdown)

    assert cleaned.startswith("#") or title_from_markdown(markdown, fallback="") != ""
