"""GitHub-flavoured Markdown: text that renders as itself, in a paragraph, a list item or
a table cell, and inline code spans.

Markdown reads HTML, entity references and backslash escapes in text, so escaping for
HTML (`&gt;`) shows up raw in the .md file and is the wrong tool. Here every character
that starts Markdown syntax is backslash-escaped (CommonMark lets any ASCII punctuation
be escaped): emphasis, code, links and images, headings, table pipes, strikethrough,
raw HTML (`<`) and entity references (`&name;`). GFM also turns `www.x`, `scheme://` and
e-mail addresses into links by itself; an escaped `.`, `/` or `@` stops that. `>` is left
alone: it means something only at the start of a line, where this text never goes.
Line breaks become spaces (a cell or list item is one line); other invisible characters
are escaped visibly.
"""

from __future__ import annotations

import re

from discover.escaping.visible import visible

_SPECIAL = re.compile(r"([\\`*_\[\]#|!<~])")
_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_WWW = re.compile(r"(?i)(www)\.")
_SCHEME = re.compile(r"(?<=:)//")
_LINE_BREAKS = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def md_text(value: object) -> str:
    """Text that renders as itself in GitHub Markdown (no links, HTML or emphasis)."""
    text = visible(_LINE_BREAKS.sub(" ", str(value)))
    text = _SPECIAL.sub(r"\\\1", text)
    text = _ENTITY.sub(r"\\&", text)
    text = _WWW.sub(r"\1\\.", text)
    text = _SCHEME.sub(r"\\/\\/", text)
    return text.replace("@", "\\@")


def md_code(value: object, *, in_table: bool = False) -> str:
    """An inline code span showing `value` verbatim: a backtick fence longer than any run
    of backticks inside, padded when the text starts or ends with one. In a table cell a
    pipe still splits the cell, even inside code, and is escaped (GFM reads `\\|` there)."""
    text = visible(_LINE_BREAKS.sub(" ", str(value)))
    if in_table:
        text = text.replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if not text or text[:1] in ("`", " ") or text[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
