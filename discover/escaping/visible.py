"""Characters that must not reach an output as themselves, written as visible escapes.

Line breaks (also NEL U+0085 and U+2028/U+2029, which YAML and JavaScript count as line
ends), other C0/C1 controls, bidirectional overrides (they reorder what a reviewer reads),
lone surrogates (no encoding writes them) and the non-characters U+FFFE/U+FFFF (YAML
refuses them) become `\\n`, `\\x07`, `\\u202e`. Ordinary printable Unicode stays as it is.
A backslash already in the text stays single, so `\\n` in a name and a newline read the
same; what matters is that no line break and no control character passes.
"""

from __future__ import annotations

import re
from functools import cache

_INVISIBLE = (
    "\x00-\x1f\x7f-\x9f"  # C0 and C1 controls, DEL, NEL
    "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"  # bidirectional marks and overrides
    "\u2028\u2029"  # line and paragraph separators
    "\ufeff\ufffe\uffff"  # byte-order mark, non-characters
    "\ud800-\udfff"  # lone surrogates (from JSON "\ud800" escapes)
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


@cache
def _pattern(keep: str) -> re.Pattern[str]:
    kept = "".join(re.escape(ch) for ch in keep)
    return re.compile(f"(?![{kept}])[{_INVISIBLE}]" if kept else f"[{_INVISIBLE}]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, keep: str = "") -> str:
    """`text` with every invisible character escaped, except those in `keep` (e.g. the
    newlines of an HTML <pre> block, which are harmless there)."""
    return _pattern(keep).sub(_escape, text)
