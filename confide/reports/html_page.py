"""Self-contained HTML assembly: inline CSS, PNGs as base64 data URIs, nothing from the network."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Section", "bullets", "figure", "keyfigures", "page", "paragraph", "side", "table"]

_CSS = """
:root { --ink: #1d2330; --muted: #5b6474; --line: #d9dee7; --accent: #1f5fbf;
        --warn: #b3261e; --ok: #1b7f4b; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f9; color: var(--ink);
       font: 15px/1.5 "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
header { background: #16243d; color: #fff; padding: 24px 40px 18px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
header p { margin: 0; color: #c9d3e6; }
nav { background: #fff; border-bottom: 1px solid var(--line); padding: 10px 40px;
      position: sticky; top: 0; z-index: 1; }
nav a { color: var(--accent); text-decoration: none; margin-right: 18px; font-size: 14px;
        white-space: nowrap; }
main { max-width: 1200px; margin: 0 auto; padding: 8px 40px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px;
          padding: 18px 24px; margin: 20px 0; }
h2 { margin: 0 0 8px; font-size: 20px; }
h3 { margin: 16px 0 6px; font-size: 16px; }
p.lead { color: var(--muted); margin: 0 0 12px; }
.figs { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; flex: 0 1 520px; min-width: 0; }
figure.wide { flex: 1 1 100%; }
.side { flex: 1 1 300px; min-width: 0; }
figure img { width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0 12px; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px; text-align: right; }
th { background: #eef1f6; }
th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 8px 0 12px; }
.card { flex: 1 1 200px; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
.card .v { font-size: 24px; font-weight: bold; }
.card .k { color: var(--muted); font-size: 13px; }
.bad { color: var(--warn); font-weight: bold; }
.warn { color: #a16207; font-weight: bold; }
.good { color: var(--ok); font-weight: bold; }
code { background: #eef1f6; padding: 1px 4px; border-radius: 3px; font-size: 13px; }
footer { color: var(--muted); font-size: 12px; text-align: center; padding: 0 0 30px; }
"""


@dataclass(frozen=True)
class Section:
    """One report section: ``id`` is the anchor the navigation and the tests use."""

    id: str
    title: str
    body: str


def paragraph(text: str, cls: str = "") -> str:
    """A paragraph of escaped text."""
    attr = f' class="{cls}"' if cls else ""
    return f"<p{attr}>{escape(text)}</p>"


def figure(png: bytes, alt: str, caption: str, wide: bool = False) -> str:
    """An embedded PNG (data URI) with a caption."""
    data = base64.b64encode(png).decode("ascii")
    cls = ' class="wide"' if wide else ""
    return (
        f'<figure{cls}><img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
    )


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    text_columns: Sequence[int] = (0,),
    row_classes: Sequence[str] | None = None,
) -> str:
    """An HTML table; cells are escaped, columns in ``text_columns`` are left-aligned, and a
    row's class in ``row_classes`` (e.g. ``bad``) marks its first cell."""

    def cell(tag: str, i: int, value: object, mark: str = "") -> str:
        names = [n for n in ("text" if i in text_columns else "", mark if i == 0 else "") if n]
        cls = f' class="{" ".join(names)}"' if names else ""
        return f"<{tag}{cls}>{escape(str(value))}</{tag}>"

    marks = list(row_classes) if row_classes is not None else [""] * len(rows)
    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, v, mark) for i, v in enumerate(row)) + "</tr>"
        for row, mark in zip(rows, marks, strict=True)
    )
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def bullets(items: Sequence[str]) -> str:
    """A bulleted list of escaped text."""
    return "<ul>" + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul>"


def side(inner: str) -> str:
    """A panel beside a figure (tables, notes); wraps below it on narrow screens."""
    return f'<div class="side">{inner}</div>'


def keyfigures(items: Sequence[tuple[str, str]]) -> str:
    """A row of key-figure cards: (value, what it is)."""
    cards = "".join(
        f'<div class="card"><div class="v">{escape(v)}</div><div class="k">{escape(k)}</div></div>'
        for v, k in items
    )
    return f'<div class="cards">{cards}</div>'


def page(title: str, subtitle: str, sections: Sequence[Section], footer: str = "") -> str:
    """The whole document: header, navigation, sections, footer."""
    nav = "".join(f'<a href="#{escape(s.id)}">{escape(s.title)}</a>' for s in sections)
    body = "".join(
        f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>{s.body}</section>'
        for s in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{escape(title)}</h1>"
        + "".join(f"<p>{escape(line)}</p>" for line in subtitle.split("\n"))
        + "</header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        f"<footer>{escape(footer)}</footer></body></html>\n"
    )
