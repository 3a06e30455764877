"""Any value in any field of any object: the loader skips that object with a note or loads
it, never fails with anything but the project's own error."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from discover.enrichment.resolver import Resolver
from discover.errors import InventoryError
from discover.inventory.build import RawObject, build_inventory

CLUSTER = json.loads((Path(__file__).parent / "data" / "inventory" / "cluster.json").read_text())
ITEMS: list[dict[str, Any]] = CLUSTER["items"]

values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 70000) | st.text(max_size=12)
    | st.sampled_from(["10.0.0.999", "None", "2024-13-01T00:00:00Z", "fd00::1", "http"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=6,
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place inside an object a value could be replaced."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += paths(inner, (*prefix, index))
    return found


def replaced(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    target: Any = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


@st.composite
def mutated(draw: st.DrawFn) -> tuple[int, dict[str, Any]]:
    index = draw(st.integers(0, len(ITEMS) - 1))
    obj = ITEMS[index]
    # Shallow places as often as deep ones: a whole `metadata` or `spec` of the wrong type.
    depth = draw(st.integers(1, 5))
    candidates = [p for p in paths(obj) if p[0] != "apiVersion" and len(p) <= depth]
    path = draw(st.sampled_from(candidates))
    return index, replaced(obj, path, draw(values))


@given(mutated())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_one_bad_field_never_breaks_the_load(change: tuple[int, dict[str, Any]]) -> None:
    index, bad = change
    items = [*ITEMS[:index], bad, *ITEMS[index + 1:]]
    try:
        inventory = build_inventory(
            [RawObject(f"cluster.json: items[{i}]", item) for i, item in enumerate(items)],
            sources=("cluster.json",))
    except InventoryError:
        return
    # Every other object still loaded; and the result is usable downstream.
    total = (len(inventory.pods) + len(inventory.services) + len(inventory.nodes)
             + len(inventory.namespaces))
    assert total >= 10 + 7 + 2 + 4 - 1
    Resolver(inventory)


KINDS = sorted({item["kind"] for item in ITEMS})


@given(st.sampled_from(KINDS), st.sampled_from(["metadata", "spec", "status", "endpoints",
                                                 "ports", "subsets"]),
       st.sampled_from([[1], "x", 5, {"a": [1]}, None]))
@settings(max_examples=150, deadline=None)
def test_whole_sections_of_the_wrong_type(kind: str, section: str, value: Any) -> None:
    index = next(i for i, item in enumerate(ITEMS) if item["kind"] == kind)
    items = [*ITEMS[:index], {**ITEMS[index], section: value}, *ITEMS[index + 1:]]
    inventory = build_inventory([RawObject(f"items[{i}]", item) for i, item in enumerate(items)],
                                sources=())
    Resolver(inventory)
