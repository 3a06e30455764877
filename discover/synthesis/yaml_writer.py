"""A fast YAML writer for manifests that gives PyYAML's bytes.

Why: PyYAML's pure-Python emitter walks every character through a state machine; at 5,000
workloads it was the largest cost of `analyze`. libyaml's C emitter (`CSafeDumper`) can't
stand in: it writes a list under a key without indentation (`key:\\n- a`), where our files
(and kubectl) indent it (`key:\\n  - a`), and it folds long lines at other columns then.

So this writer covers the shape manifests have, JSON-like data (dict, list, str, int,
bool, None) with printable-ASCII strings, and reproduces what `yaml.dump` with the
caller's Dumper (block style, lists indented under their key, `width`, `sort_keys=False`)
writes for it: the same choice between plain and single-quoted scalars (PyYAML's
`analyze_scalar` and its resolver), the same line folding at the same columns. Anything
outside that shape, a non-ASCII or control character, a float, a shared sub-object
(PyYAML would write an anchor), a key of 123 characters or more, goes to `yaml.dump`
whole, so the bytes never depend on which path ran. Tests compare both paths on hostile
strings (tests/test_synthesis_yaml_writer.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

_STR_TAG = "tag:yaml.org,2002:str"
_RESOLVER = Resolver()
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]*")
# PyYAML's analyze_scalar on printable ASCII: what forbids a plain block scalar.
_BLOCK_INDICATOR = re.compile(
    r"^(?:---|\.\.\.)"  # document markers
    r"|^[#,\[\]{}&*!|>'\"%@`]"  # an indicator first
    r"|^[?:-](?: |$)"  # '?', ':' or '-' first, followed by a space or the end
    r"|:(?: |$)"  # ':' followed by a space or the end
    r"| #"  # a comment start
)
_SPACE_RUNS = re.compile(r"( +)")
# PyYAML writes a key as '? key' when the key and its tag ('!!str', though never printed)
# reach 128 characters (Emitter.check_simple_key).
MAX_SIMPLE_KEY = 128 - len("!!str")


class _NotSimple(Exception):
    """The data leaves the shape this writer reproduces: `yaml.dump` writes it."""


@lru_cache(maxsize=65536)
def _style(text: str) -> str:
    """'' (plain) or "'" (single-quoted) for a printable-ASCII string, as PyYAML picks."""
    if not text:
        return "'"  # '' resolves to null
    plain = (text[0] != " " and text[-1] != " " and not _BLOCK_INDICATOR.search(text)
             and _RESOLVER.resolve(  # type: ignore[no-untyped-call]  # PyYAML's own
                 ScalarNode, text, (True, False)) == _STR_TAG)
    return "" if plain else "'"


def _scalar_text(value: object) -> str | None:
    """The text of a non-string scalar, or None when `value` is no scalar we write."""
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    return None


class _Writer:
    def __init__(self, width: int) -> None:
        self.width = width
        self.out: list[str] = []
        self.seen: set[int] = set()

    def key(self, key: object) -> str:
        if type(key) is str:
            if (not key or len(key) >= MAX_SIMPLE_KEY
                    or not _PRINTABLE_ASCII.fullmatch(key)):
                raise _NotSimple
            return f"'{key.replace(chr(39), chr(39) * 2)}'" if _style(key) else key
        text = _scalar_text(key)
        if text is None:
            raise _NotSimple
        return text

    def scalar(self, value: object, column: int, indent: int) -> None:
        """`value` written from `column` (after its separating space); continuation lines
        of a folded string start at `indent`."""
        if type(value) is not str:
            text = _scalar_text(value)
            if text is None:
                raise _NotSimple
            self.out.append(text)
            return
        if not _PRINTABLE_ASCII.fullmatch(value):
            raise _NotSimple
        quoted = bool(_style(value))
        if len(value) + value.count("'") + column + 2 <= self.width or " " not in value:
            # No fold possible: PyYAML folds only at a space past the width (a quote
            # inside a quoted string takes two columns).
            self.out.append(f"'{value.replace(chr(39), chr(39) * 2)}'" if quoted else value)
            return
        self.folded(value, column, indent, quoted)

    def folded(self, text: str, column: int, indent: int, quoted: bool) -> None:
        """PyYAML's write_plain / write_single_quoted with split=True: a single space
        becomes a line break when the line already passed the width; longer runs of spaces,
        and (quoted) a leading or trailing one, stay."""
        parts = _SPACE_RUNS.split(text)  # word, spaces, word, ..., word
        out = self.out
        if quoted:
            out.append("'")
            column += 1
        last = len(parts) - 1
        for index, part in enumerate(parts):
            if index % 2 == 0:
                if quoted:
                    part = part.replace("'", "''")
                out.append(part)
                column += len(part)
            elif (len(part) == 1 and column > self.width
                  and not (quoted and (index == 1 and parts[0] == ""
                                       or index == last - 1 and parts[last] == ""))):
                out.append("\n" + " " * indent)
                column = indent
            else:
                out.append(part)
                column += len(part)
        if quoted:
            out.append("'")

    def enter(self, value: object) -> None:
        # PyYAML writes an object met twice as an anchor and an alias.
        if id(value) in self.seen:
            raise _NotSimple
        self.seen.add(id(value))

    def mapping(self, data: dict[Any, Any], indent: int, inline: bool) -> None:
        self.enter(data)
        out = self.out
        for index, (key, value) in enumerate(data.items()):
            if index or not inline:
                out.append("\n" + " " * indent)
            text = self.key(key)
            out.append(text + ":")
            self.value(value, indent + len(text) + 1, indent, in_sequence=False)

    def sequence(self, data: list[Any], indent: int, inline: bool) -> None:
        self.enter(data)
        out = self.out
        for index, item in enumerate(data):
            if index or not inline:
                out.append("\n" + " " * indent)
            out.append("-")
            self.value(item, indent + 1, indent, in_sequence=True)

    def value(self, value: object, column: int, indent: int, in_sequence: bool) -> None:
        """A node after `key:` or `-` (the cursor at `column`) of a collection at `indent`."""
        kind = type(value)
        if kind is dict or kind is list:
            if not value:
                self.enter(value)
                self.out.append(" {}" if kind is dict else " []")
            elif kind is dict:
                if in_sequence:  # "- key: ..." on the item's line
                    self.out.append(" ")
                self.mapping(value, indent + 2, inline=in_sequence)  # type: ignore[arg-type]
            else:
                if in_sequence:  # "- - item"
                    self.out.append(" ")
                self.sequence(value, indent + 2, inline=in_sequence)  # type: ignore[arg-type]
            return
        self.out.append(" ")
        self.scalar(value, column + 1, indent + 2)


def write_yaml(data: dict[str, Any], fallback: Callable[[Any], str], width: int = 100) -> str:
    """`data` as one YAML document, the bytes `fallback(data)` (a `yaml.dump` with block
    style, lists indented under keys, this `width`, sort_keys=False) gives."""
    if type(data) is not dict or not data:
        return fallback(data)
    writer = _Writer(width)
    try:
        writer.mapping(data, 0, inline=True)
    except _NotSimple:
        return fallback(data)
    writer.out.append("\n")
    return "".join(writer.out)

