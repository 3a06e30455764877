"""Big inventory files: the JSON read item by item (json_stream.py), each object trimmed of
what no parser reads (trim.py), and the inventory the same as read whole."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.errors import InventoryError
from discover.inventory import files, json_stream
from discover.inventory.files import load_inventory_files
from discover.inventory.json_stream import NotStreamed, load_json
from discover.inventory.objects import parse_pod
from discover.inventory.owners import OwnerResolver
from discover.inventory.trim import trim_object


def _bench_inventory() -> ModuleType:
    """benchmarks/bench_inventory.py, whose generator makes kubectl-like pods."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_inventory.py"
    spec = importlib.util.spec_from_file_location("bench_inventory", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_inventory = _bench_inventory()
make_inventory, make_pod = bench_inventory.make_inventory, bench_inventory.make_pod

CLUSTER = Path(__file__).parent / "data" / "inventory" / "cluster.json"
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=20,
)


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=4),
       st.lists(JSON_VALUES, max_size=6), st.sampled_from([None, 0, 1, 4]),
       st.integers(1, 64))
def test_any_json_reads_as_json_loads_gives_it(
    members: dict[str, Any], items: list[Any], indent: int | None, chunk: int
) -> None:
    # Chunks as small as one byte: every value may be cut anywhere, numbers included.
    path = Path(f"/tmp/netpol-json-stream-{id(members)}.json")
    for document in ({**members, "items": items}, items):
        text = json.dumps(document, indent=indent, ensure_ascii=False)
        path.write_text(text, encoding="utf-8")
        try:
            assert load_json(path, lambda item: item, chunk_bytes=chunk) == json.loads(text)
            assert load_json(path, lambda item: ["kept", item], chunk_bytes=chunk) == (
                [["kept", i] for i in items] if isinstance(document, list)
                else {**members, "items": [["kept", i] for i in items]})
        finally:
            path.unlink()


@pytest.mark.parametrize("text", [
    "", "   ", '"a string"', "12", '{"items": [1, 2,]}', '{"a": 1} {"b": 2}', "[1, 2",
    '{"a" 1}', "\ufeff\x0c{}", "kind: List\n", "[" * 100_000 + "]" * 100_000,
])
def test_anything_but_well_formed_json_is_left_to_the_ordinary_reader(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(NotStreamed):
        load_json(path, lambda item: item, chunk_bytes=7)


def test_not_utf8_is_left_to_the_ordinary_reader(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'{"items": ["\xff"]}')
    with pytest.raises(NotStreamed):
        load_json(path, lambda item: item)


def test_a_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_bytes(b'\xef\xbb\xbf  {"kind": "List", "items": [{"a": 1}]}')
    assert load_json(path, lambda item: item, chunk_bytes=2) == {"kind": "List",
                                                                  "items": [{"a": 1}]}


def test_errors_still_name_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"kind": "List",\n "items": [{"kind": "Pod"},\n  {"kind" "Pod"}]}')
    with pytest.raises(InventoryError, match=r"bad.json: line 3 column 11: invalid JSON"):
        load_inventory_files([path])


def test_a_trimmed_pod_parses_to_the_same_pod() -> None:
    owners = OwnerResolver({}, {})
    whole = make_pod(7, 0, "ns-000", "app-00000", "rs-0")
    whole["spec"]["initContainers"] = [{**whole["spec"]["containers"][0], "name": "init"}]
    whole["status"]["phase"] = "Succeeded"
    whole["status"]["containerStatuses"][0]["state"] = {
        "terminated": {"finishedAt": "2026-01-02T00:00:00Z", "exitCode": 0}}
    trimmed = trim_object(copy.deepcopy(whole))
    assert parse_pod(trimmed, owners) == parse_pod(whole, owners)
    assert parse_pod(trimmed, owners).finished is not None
    assert len(json.dumps(trimmed)) < len(json.dumps(whole)) / 2
    # In a typed PodList the items have no kind: recognised by their spec.
    del whole["kind"]
    assert "volumes" not in trim_object(copy.deepcopy(whole))["spec"]


def test_trimming_keeps_what_other_kinds_read_and_wrong_types() -> None:
    ingress = {"kind": "Ingress", "metadata": {"name": "web", "annotations": {"a": "b"},
                                               "managedFields": [{"manager": "x"}]}}
    assert trim_object(ingress) == {"kind": "Ingress",
                                    "metadata": {"name": "web", "annotations": {"a": "b"}}}
    odd = {"kind": "Pod", "metadata": [], "spec": {"containers": "x", "volumes": 1},
           "status": {"containerStatuses": [7]}}
    assert trim_object(copy.deepcopy(odd)) == {**odd, "spec": {"containers": "x"}}


@pytest.mark.parametrize("source", ["generated", "cluster.json"])
def test_streamed_and_trimmed_inventory_equals_the_whole_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    if source == "generated":
        path = tmp_path / "inventory.json"
        path.write_text(json.dumps(make_inventory(120), indent=4, sort_keys=True))
    else:
        path = CLUSTER
    monkeypatch.setattr(json_stream, "CHUNK_BYTES", 4096)  # items cut across chunks
    streamed = load_inventory_files([path])
    monkeypatch.setattr(files, "STREAM_JSON_FROM", None)
    whole = load_inventory_files([path])
    assert streamed == whole
    assert len(streamed.pods) == (120 if source == "generated" else 10)
