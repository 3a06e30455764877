"""HTML and SVG text and attribute values, and the one script the report inlines."""

from __future__ import annotations

import html

from discover.escaping.visible import visible


def html_text(value: object) -> str:
    """Text for an element or a quoted attribute (`&<>"'` escaped). Tabs and newlines are
    kept: HTML treats them as spaces, and <pre> blocks and SVG tooltips mean them."""
    return html.escape(visible(str(value), keep="\t\n\r"), quote=True)


def script_element(source: str) -> str:
    """A <script> element holding `source`: "</" (which could close the element) and "<!--"
    (which switches the HTML parser into an escaped state) can't appear inside it."""
    guarded = source.replace("</", "<\\/").replace("<!--", "<\\!--")
    return "<script>" + guarded + "</script>"


def json_script_element(element_id: str, json_text: str) -> str:
    """A <script type="application/json"> element holding a JSON document. Every "<" is
    written as the JSON escape \\u003c, so neither "</script" nor "<!--" can appear
    inside and JSON.parse still reads the same strings ("<\\!--", which guards a script,
    is no JSON)."""
    guarded = json_text.replace("<", "\\u003c")
    return (f'<script type="application/json" id="{html_text(element_id)}">{guarded}'
            "</script>")
