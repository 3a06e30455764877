"""A JSON file read piece by piece, each object of its list handed to a function as it comes.

`kubectl get pods -A -o json` of 100,000 pods is ~500-800 MB; `json.loads` of it holds the
text and every field of every pod as Python objects at once (several GB), although the
inventory reads a few fields of each. Here the file is decoded in chunks and the top-level
value is walked: each element of a List's `items` (or of a bare top-level array) is
decoded on its own with the json module's C scanner (`raw_decode`) and passed through
`keep`, which returns what is worth keeping of it, before the next is read. Values
elsewhere (`kind`, `metadata`, ...) are decoded whole, so the result has the shape
`json.loads` gives.

Only well-formed files are read this way: anything unexpected (not UTF-8, not an object or
array, a syntax error, extra data, nesting too deep) raises `NotStreamed`, and the caller
reads the file the ordinary way, which names the problem and its place as before.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

CHUNK_BYTES = 8 * 1024 * 1024
WHITESPACE = " \t\n\r"  # JSON's whitespace (RFC 8259), no other
_DECODER = json.JSONDecoder()


class NotStreamed(Exception):
    """The file is not a well-formed JSON object or array; read it whole instead."""


def load_json(path: Path, keep: Callable[[Any], Any], chunk_bytes: int | None = None) -> Any:
    """What `json.loads` of the file gives, with `keep(item)` in place of each item of the
    top-level object's `items` array, or of the top-level array."""
    with open(path, "rb") as stream:
        reader = _Reader(stream, chunk_bytes or CHUNK_BYTES)
        try:
            first = reader.peek()
            if first == "{":
                value: Any = reader.object_with_items(keep)
            elif first == "[":
                value = reader.array(keep)
            else:
                raise NotStreamed("not a JSON object or array")
            if reader.peek() != "":
                raise NotStreamed("extra data after the JSON value")
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
            raise NotStreamed(str(error)) from error
    return value


class _Reader:
    """A window of decoded text over the file: `text[pos:]` is what is left to parse."""

    def __init__(self, stream: BinaryIO, chunk_bytes: int) -> None:
        self.stream = stream
        self.chunk_bytes = chunk_bytes
        self.decoder = codecs.getincrementaldecoder("utf-8-sig")()
        self.text = ""
        self.pos = 0
        self.eof = False

    def _more(self) -> bool:
        """Append the next chunk (dropping what was parsed); False at the end of the file."""
        if self.eof:
            return False
        data = self.stream.read(self.chunk_bytes)
        self.eof = not data
        self.text = self.text[self.pos:] + self.decoder.decode(data, final=self.eof)
        self.pos = 0
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ("" at the end), not consumed."""
        while True:
            end = len(self.text)
            while self.pos < end and self.text[self.pos] in WHITESPACE:
                self.pos += 1
            if self.pos < end or not self._more():
                return self.text[self.pos:self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise NotStreamed(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        """The JSON value at the current place, decoded whole. A value that failed, or that
        ended within two characters of the end of the window, is tried again with more
        text: only a try at the end of the file fails for good. (A number cut by the
        window decodes as its start: "1" of "12", "0" of "0.5" leaving ".", "1" of "1e+5"
        leaving "e+".)"""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.text, self.pos)
            except json.JSONDecodeError:
                if self._more():
                    continue
                raise
            if len(self.text) - end > 2 or not self._more():
                self.pos = end
                return value

    def array(self, keep: Callable[[Any], Any]) -> list[Any]:
        self.expect("[")
        items: list[Any] = []
        if self.peek() == "]":
            self.pos += 1
            return items
        while True:
            items.append(keep(self.value()))
            char = self.peek()
            self.pos += 1
            if char == "]":
                return items
            if char != ",":
                raise NotStreamed("expected ',' or ']' in an array")

    def object_with_items(self, keep: Callable[[Any], Any]) -> dict[str, Any]:
        self.expect("{")
        members: dict[str, Any] = {}
        if self.peek() == "}":
            self.pos += 1
            return members
        while True:
            if self.peek() != '"':
                raise NotStreamed("expected a member name")
            key = self.value()
            self.expect(":")
            if key == "items" and self.peek() == "[":
                members[key] = self.array(keep)
            else:
                members[key] = self.value()
            char = self.peek()
            self.pos += 1
            if char == "}":
                return members
            if char != ",":
                raise NotStreamed("expected ',' or '}' in an object")
