"""Graphviz DOT: quoted strings and the text of HTML-like labels.

In a quoted DOT string only `\\"` is an escape of the lexer; attributes of type escString
(label, id, tooltip) then read `\\\\`, `\\n`, `\\N` and friends. Doubling the backslash
first keeps every escString sequence literal, and `visible` turns line breaks and control
characters into visible text, so a value can neither end the string nor start a line.
"""

from __future__ import annotations

import html

from discover.escaping.visible import visible


def dot_string(text: str) -> str:
    """`text` as a double-quoted DOT string that reads back as the same visible text."""
    return '"' + visible(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def dot_label_text(text: str) -> str:
    """`text` inside an HTML-like label (`<...>`): markup characters escaped, and the
    backslash doubled, because Graphviz expands `\\N` (the node's name), `\\G` and the
    like in the text of HTML-like labels too."""
    return html.escape(visible(text).replace("\\", "\\\\"), quote=True)
