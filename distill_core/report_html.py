"""The run report as one self-contained HTML page: the report's Markdown, rendered.

`report.md` is built as Markdown from the run's artifacts; this module renders
the small subset of Markdown that report uses (`#`..`####` headings, `- `
bullet lists, pipe tables with `\\|` escapes, paragraphs, `code` spans and
**bold**) so the page shows exactly what the Markdown says, without a Markdown
library. Everything is HTML-escaped. Figures are embedded as base64 PNG data
URIs and the CSS is inline, so the one file can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import html
import re

__all__ = ["figure_html", "markdown_to_html", "note_html", "page"]

_HEADING = re.compile(r"^(#{1,4})\s+(.*)$")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_NUMBER = re.compile(r"^[-+]?[\d.,]+( ± [\d.,]+)?$")

STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:72em;"
    "margin:1.5em auto;padding:0 1em;color:#1d232a;line-height:1.45}"
    "h1{font-size:1.6em;border-bottom:2px solid #d0d7de;padding-bottom:.3em}"
    "h2{font-size:1.3em;margin-top:1.6em;border-bottom:1px solid #e4e8ec;padding-bottom:.2em}"
    "h3{font-size:1.1em}"
    "table{border-collapse:collapse;margin:.8em 0;font-size:.92em}"
    "td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f3f5f7}td.num{text-align:right;white-space:nowrap}"
    "tbody tr:nth-child(even){background:#fafbfc}"
    "code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;"
    "background:#f1f3f5;padding:0 .25em;border-radius:3px;overflow-wrap:anywhere}"
    "figure{margin:1em 0}figure img{max-width:100%;height:auto;border:1px solid #e4e8ec}"
    "figcaption{font-size:.9em;color:#4a545e;max-width:60em}"
    "p.note{color:#4a545e;font-style:italic}"
)


def _inline(text: str) -> str:
    """Escape one line of Markdown text and render its code spans and bold (bold may hold
    code spans, as in "**auto chose `x`**"; a code span's own asterisks stay literal)."""
    codes: list[str] = []

    def stash(match: re.Match[str]) -> str:
        codes.append(f"<code>{html.escape(match.group(1))}</code>")
        return f"\x00{len(codes) - 1}\x00"

    body = _BOLD.sub(r"<b>\1</b>", html.escape(_CODE.sub(stash, text.replace("\x00", ""))))
    return re.sub("\x00(\\d+)\x00", lambda match: codes[int(match.group(1))], body)


def _cells(line: str) -> list[str]:
    """The cells of a pipe-table row; `\\|` is a literal pipe inside a cell."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", body)]


def _is_separator(line: str) -> bool:
    return bool(re.fullmatch(r"\|?(\s*:?-{3,}:?\s*\|)*\s*:?-{3,}:?\s*\|?", line.strip()))


def _table(lines: list[str]) -> str:
    header = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    rows = []
    for line in lines[2:]:
        cells = "".join(
            f"<td class='num'>{_inline(c)}</td>" if _NUMBER.match(c) else f"<td>{_inline(c)}</td>"
            for c in _cells(line))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def markdown_to_html(text: str) -> str:
    """HTML for the Markdown subset the run report uses (see the module doc)."""
    lines, out, i = text.splitlines(), [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif heading := _HEADING.match(line):
            level = len(heading.group(1))
            out.append(f"<h{level}>{_inline(heading.group(2).strip())}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|") and i + 1 < len(lines) and _is_separator(lines[i + 1]):
            block = [line, lines[i + 1]]
            i += 2
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            out.append(_table(block))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append(f"<ul>{''.join(items)}</ul>")
        else:
            para = []
            while (i < len(lines) and lines[i].strip() and not _HEADING.match(lines[i])
                   and not lines[i].startswith("- ") and not lines[i].lstrip().startswith("|")):
                para.append(_inline(lines[i].strip()))
                i += 1
            if not para:  # a stray table-looking line with no separator: keep it as text
                para.append(_inline(lines[i].strip()))
                i += 1
            out.append(f"<p>{' '.join(para)}</p>")
    return "\n".join(out)


def figure_html(png: bytes, alt: str, caption: str) -> str:
    """One figure: the PNG embedded as a data URI, with an escaped caption."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"<figcaption>{_inline(caption)}</figcaption></figure>")


def note_html(text: str) -> str:
    """A sentence saying why a figure is not there."""
    return f"<p class='note'>{_inline(text)}</p>"


def page(title: str, body: str) -> str:
    """A whole HTML document with the inline style."""
    return ("<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")
