"""YAML documents of an inventory or policy file, without aliases and without deep nesting.

Kubernetes objects never need aliases (the API server neither writes nor keeps them), while
a hostile file uses them to grow: nine nested levels of nine aliases each (a "billion laughs",
under 1 KB) become 387 million strings as soon as anything walks the result, and `&a [*a]` is a list
holding itself, which ends in a RecursionError wherever it is walked. Deep nesting is the
other hostile shape: libyaml's composer recurses in C, and 100,000 `[` crash the process
(segmentation fault), a Python composer ends in a RecursionError.

So the text is parsed by libyaml (CParser, an iterative parser: its speed, no recursion) and
composed by PyYAML's Python `Composer`, which sees every alias event: an alias, or a node
nested deeper than `MAX_DEPTH`, is a `yaml.YAMLError` whose mark gives the line and column,
as any other YAML mistake is. On a List of 2,000 pods (0.5 MB) this loader takes the time
of `CSafeLoader` (1.0 s both, the pure-Python SafeLoader 3.1 s): construction dominates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.events import AliasEvent
from yaml.nodes import Node
from yaml.resolver import Resolver

ALIAS_PROBLEM = "aliases are refused (Kubernetes objects never use anchors or aliases)"
# Two Python frames a level: 100 levels stay far below the recursion limit wherever this is
# called from; Kubernetes objects (CRD schemas included) nest a few dozen levels at most.
MAX_DEPTH = 100


class YamlShapeError(ComposerError):
    """An alias or too deep a nesting; `problem_mark` says where."""


class _Composing(Composer):
    depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()  # type: ignore[attr-defined]  # the parser's, in the MRO
        mark: Mark = event.start_mark
        if isinstance(event, AliasEvent):
            raise YamlShapeError(None, None, ALIAS_PROBLEM, mark)
        if self.depth >= MAX_DEPTH:
            raise YamlShapeError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


# yaml.cyaml exists when PyYAML was built with libyaml (its wheels are)
_CParser: Any = getattr(getattr(yaml, "cyaml", None), "CParser", None)

if _CParser is not None:

    class _Loader(_CParser, _Composing, SafeConstructor, Resolver):  # type: ignore[misc]
        # CParser defines get_node & co. with its C composer: take the Python ones.
        get_node = Composer.get_node
        check_node = Composer.check_node
        get_single_node = Composer.get_single_node

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:  # pragma: no cover - PyYAML's wheels ship libyaml

    class _Loader(  # type: ignore[no-redef]
        yaml.reader.Reader,
        yaml.scanner.Scanner,
        yaml.parser.Parser,
        _Composing,
        SafeConstructor,
        Resolver,
    ):
        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)


def load_yaml_documents(text: str) -> Iterator[Any]:
    """Every document of `text` in turn (None for an empty one). `yaml.YAMLError` on bad
    YAML, an alias or deep nesting, raised when the iteration reaches that document."""
    loader = _Loader(text)
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            yield loader.get_data()
    finally:
        loader.dispose()
