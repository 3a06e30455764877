"""YAML comment lines: `# ` and one line of text that no YAML reader can end early.

A comment ends at a line break, so a name holding "\\n---\\napiVersion: v1" would start
a new document in a file someone applies with kubectl. PyYAML counts CR, LF, NEL, U+2028
and U+2029 as line breaks and refuses other control characters anywhere in a stream:
`visible` escapes all of them.
"""

from __future__ import annotations

from collections.abc import Iterable

from discover.escaping.visible import visible


def comment_lines(lines: Iterable[str]) -> str:
    """Each line as one `# ...` comment line (trailing blanks dropped), newline-ended."""
    return "".join(f"# {visible(line)}".rstrip() + "\n" for line in lines)
