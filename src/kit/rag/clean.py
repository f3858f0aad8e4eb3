"""Turn markup into clean text that keeps its structure: `#` headings, paragraphs, lists, code.

Pure functions on strings: no files, no I/O. Tuned on the FastAPI docs (MkDocs Markdown
with admonitions, include directives and inline HTML) but safe on any Markdown. Fenced code
blocks are copied verbatim: code is content, and nothing here may rewrite it.
"""

from __future__ import annotations

import html
import re

from bs4 import BeautifulSoup

# A fence opens with 3+ backticks or tildes and closes with a line of the same character, at
# least as long (CommonMark). Everything between is code and is never touched.
_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---[ \t]*\n", re.DOTALL)

# MkDocs extensions whose output a reader never sees as written.
_ANCHOR = re.compile(r"[ \t]*\{[ \t]*#[^}\n]*\}[ \t]*$", re.MULTILINE)  # "# Title { #title }"
_INCLUDE = re.compile(r"\{\*.*?\*\}|\{!.*?!\}")  # {* ../docs_src/x.py hl[3] *}, {!> x.py!}
_ADMONITION = re.compile(r"^([ \t]*)/{3,}[ \t]*(\w+)?[ \t]*(?:\|[ \t]*(.*?))?[ \t]*$")
# Jinja templates render from data that is not in the corpus: a loop's body is noise.
_JINJA_LOOP = re.compile(r"\{%-?\s*for\b.*?\{%-?\s*endfor\s*-?%\}", re.DOTALL)
_JINJA = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)

# Inline code is protected like fenced code: "`<form></form>`" must survive tag stripping.
_INLINE_CODE = re.compile(r"(`+)[^\n]*?(?<!`)\1(?!`)")
_PLACEHOLDER = "\ue000{}\ue000"  # a private-use character that real text does not contain
_RESTORE = re.compile("\ue000(\\d+)\ue000")

_IMAGE = re.compile(r"!\[[^\]]*\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")

# Only real HTML element names are stripped, so that prose such as "List<int>" or
# "<your-token>" survives. Block elements leave a gap, so "<td>a</td><td>b</td>" -> "a b".
_INLINE_TAGS = "a abbr b button code dfn em font i kbd mark s small span strong sub sup u"
_BLOCK_TAGS = (
    "blockquote br details div dl dd dt figcaption figure form h1 h2 h3 h4 h5 h6 hr li ol p"
    " section summary table tbody td tfoot th thead tr ul"
)
_TAG_NAMES = "|".join(f"{_INLINE_TAGS} {_BLOCK_TAGS}".split())  # "\b" below: b is not blockquote
# A tag that opens a line takes the line's indentation with it: that indentation is HTML
# layout, and left behind it would turn "    <p>text</p>" into a Markdown code block.
_HTML_TAG = re.compile(rf"(^[ \t]*)?</?({_TAG_NAMES})\b[^<>]*>", re.IGNORECASE | re.MULTILINE)
_HTML_DROPPED = re.compile(
    r"<!--.*?-->|<(style|script)\b[^>]*>.*?</\1\s*>|<img\b[^<>]*>", re.DOTALL | re.IGNORECASE
)
_BLOCK_NAMES = frozenset(_BLOCK_TAGS.split())
_GAP = "\ue003"  # where a block tag was: a space mid-line, nothing at the start of a line
_LEADING_GAPS = re.compile(rf"^{_GAP}[ \t{_GAP}]*", re.MULTILINE)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # every control character but \t and \n
_BLANK_RUNS = re.compile(r"\n{3,}")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")  # "## Title ##" -> "Title"


def clean_markdown(text: str) -> str:
    """Markdown documentation -> Markdown a chunker and an embedder can use.

    >>> clean_markdown("# First Steps { #first-steps }\\n\\n/// tip\\n\\nRun it.\\n\\n///\\n")
    '# First Steps\\n\\nTip:\\n\\nRun it.'
    """
    text = _FRONT_MATTER.sub("", _normalise_newlines(text), count=1)
    lines: list[str] = []
    for is_code, block in _split_fences(text):
        if is_code:
            lines.extend(block)  # blank lines in code are kept: they are code
            continue
        for line in _clean_prose("\n".join(block)).split("\n"):
            line = line.rstrip()
            if line or (lines and lines[-1]):  # at most one blank line between paragraphs
                lines.append(line)
    return "\n".join(lines).strip("\n")


def clean_html(html_text: str) -> tuple[str, str]:
    """An HTML page -> (title, text), the text with `#` headings and fenced `<pre>` blocks."""
    soup = BeautifulSoup(html_text, "html.parser")
    candidates = (soup.find(name) for name in ("title", "h1"))
    titles = (" ".join(tag.get_text().split()) for tag in candidates if tag is not None)
    title = next((title for title in titles if title), "")
    for tag in soup.find_all(["head", "script", "style", "nav", "header", "footer", "noscript"]):
        tag.decompose()

    # Source whitespace in HTML is layout, not content, so below all of it collapses to single
    # spaces. Paragraph and line boundaries are marked first, and <pre> text is set aside.
    paragraph, line = "\ue001", "\ue002"
    code_blocks: list[str] = []
    for pre in soup.find_all("pre"):
        code_blocks.append(pre.get_text().strip("\n"))
        pre.replace_with(f"{paragraph}{_PLACEHOLDER.format(len(code_blocks) - 1)}{paragraph}")
    for tag in soup.find_all(True):
        name = tag.name.lower()
        if name in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            heading = " ".join(tag.get_text().split())
            tag.replace_with(f"{paragraph}{'#' * int(name[1])} {heading}{paragraph}")
        elif name in {"li", "br", "tr", "dt", "dd"}:  # one line each, no blank line between
            if name == "li":
                tag.insert(0, "- ")
            tag.insert_before(line)
            tag.insert_after(line)
        elif name in _BLOCK_NAMES:
            tag.insert_before(paragraph)
            tag.insert_after(paragraph)

    blocks = []
    for block in soup.get_text().split(paragraph):
        lines = (" ".join(part.split()) for part in block.split(line))
        blocks.append("\n".join(text for text in lines if text))
    text = "\n\n".join(block for block in blocks if block)
    text = _RESTORE.sub(lambda m: f"```\n{code_blocks[int(m.group(1))]}\n```", text)
    return title, text


def clean_text(text: str) -> str:
    """Plain text -> the same text with \\n newlines, no control characters, no blank-line runs."""
    text = _CONTROL.sub("", _normalise_newlines(text))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def title_from_markdown(text: str, fallback: str) -> str:
    """The first `#` heading of a Markdown text, cleaned of markup; `fallback` if there is none."""
    text = _FRONT_MATTER.sub("", _normalise_newlines(text), count=1)
    for is_code, block in _split_fences(text):
        if is_code:  # a "# comment" in a shell example is not a heading
            continue
        for line in block:
            match = _HEADING.match(line)
            if match:
                title = " ".join(_clean_prose(match.group(1)).split())
                if title:
                    return title
    return fallback


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split_fences(text: str) -> list[tuple[bool, list[str]]]:
    """Cut Markdown into (is_code, lines) pieces; code pieces include their fence lines."""
    pieces: list[tuple[bool, list[str]]] = []
    current: list[str] = []
    fence = ""  # the opening fence while inside a code block, else ""
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if not fence and match:
            pieces.append((False, current))
            current, fence = [line], match.group(1)
        elif fence and match and match.group(1).startswith(fence[0] * len(fence)):
            if line.strip() == match.group(1):  # a closing fence carries no info string
                pieces.append((True, [*current, line]))
                current, fence = [], ""
            else:
                current.append(line)
        else:
            current.append(line)
    # An unclosed fence runs to the end of the document, as in CommonMark.
    pieces.append((bool(fence), current))
    return [(is_code, block) for is_code, block in pieces if block]


def _clean_prose(text: str) -> str:
    """Markdown outside code fences: drop MkDocs syntax and HTML, keep the words."""
    protected: list[str] = []

    def protect(match: re.Match[str]) -> str:
        protected.append(match.group(0))
        return _PLACEHOLDER.format(len(protected) - 1)

    text = _INLINE_CODE.sub(protect, text)
    text = _ANCHOR.sub("", text)
    text = _INCLUDE.sub("", text)
    text = _JINJA.sub("", _JINJA_LOOP.sub("", text))
    text = "\n".join(_admonition_label(line) for line in text.split("\n"))
    text = _LINK.sub(r"\1", _IMAGE.sub("", text))  # images first: "[![logo](a.png)](b)" -> ""
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_DROPPED.sub("", text)
    text = _HTML_TAG.sub(_replace_tag, text)
    text = _LEADING_GAPS.sub("", text).replace(_GAP, " ")
    text = re.sub(r"(?<=\S)[ \t]{2,}", " ", text)  # gaps left by tags; indentation is kept
    text = html.unescape(text)  # after stripping tags, so "&lt;div&gt;" stays visible text
    return _RESTORE.sub(lambda m: protected[int(m.group(1))], text)


def _admonition_label(line: str) -> str:
    """`/// note | Technical Details` -> `Note (Technical Details):`; a closing `///` -> ``."""
    match = _ADMONITION.match(line)
    if not match:
        return line
    indent, kind, title = match.groups()
    if not kind:
        return ""
    return f"{indent}{kind.capitalize()}{f' ({title})' if title else ''}:"


def _replace_tag(match: re.Match[str]) -> str:
    name = match.group(2).lower()
    if name == "code":  # <code>x</code> -> `x`, as the Markdown around it would write it
        return "`"
    return _GAP if name in _BLOCK_NAMES else ""
