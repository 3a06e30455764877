"""Small HTML builders. Every piece of text goes through `esc`: names, labels, messages
and YAML come from the cluster and from DNS answers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources

from discover.escaping.html_text import html_text, script_element

esc = html_text


@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell: `html` is already-escaped markup; `sort` the value sorting uses."""

    html: str
    sort: str | None = None
    numeric: bool = False


def text(value: object) -> Cell:
    return Cell(esc(value))


def number(value: int) -> Cell:
    return Cell(f"{value:,}", sort=str(value), numeric=True)


def port(value: int) -> Cell:
    """A port number: right-aligned, sorted as a number, no thousands separator."""
    return Cell(str(value), sort=str(value), numeric=True)


def code(value: object) -> Cell:
    return Cell(f"<code>{esc(value)}</code>", sort=str(value))


def badge(label: str, css: str) -> str:
    return f'<span class="badge {esc(css)}">{esc(label)}</span>'


def data_table(table_id: str, headers: Sequence[str], rows: Iterable[Sequence[Cell]], *,
               filter_hint: str = "filter rows", tall: bool = True) -> str:
    """A sortable table with a filter box (the script wires both by the table's id)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            attrs = ""
            if cell.sort is not None:
                attrs += f' data-sort="{esc(cell.sort)}"'
            if cell.numeric:
                attrs += ' class="num"'
            cells.append(f"<td{attrs}>{cell.html}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    scroll = "scroll tall" if tall else "scroll"
    return (
        f'<div class="table-tools"><input type="search" data-filter="{esc(table_id)}" '
        f'placeholder="{esc(filter_hint)}" aria-label="{esc(filter_hint)}">'
        f'<span class="count" data-count="{esc(table_id)}"></span></div>'
        f'<div class="{scroll}"><table class="data" id="{esc(table_id)}"><thead><tr>{head}'
        f'</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def asset(name: str) -> str:
    """A CSS or JS file shipped in reports/assets (package data)."""
    return resources.files("reports.assets").joinpath(name).read_text(encoding="utf-8")


def inline_script(source: str) -> str:
    # "</script" inside the script would end the element early; our assets never hold
    # it, but keep the guarantee independent of their content.
    return script_element(source)


def anchor(prefix: str, name: str) -> str:
    """A stable element id for a name (ids must not hold spaces; keep them readable)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return f"{prefix}-{safe}"
