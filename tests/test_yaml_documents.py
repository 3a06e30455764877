"""Hostile YAML in inventories and policy files: aliases and deep nesting are one-line errors."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest
import yaml

from discover.errors import InventoryError, ReadError
from discover.inventory.files import load_inventory_files
from discover.netpol.files import parse_policy_text
from discover.reading.yaml_documents import ALIAS_PROBLEM, MAX_DEPTH, load_yaml_documents

# Nine levels of nine aliases: under 1 KB, 9^9 (~387 million) strings once walked.
BILLION_LAUGHS = 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9)
)
SELF_REFERENCE = "kind: List\nitems: &items [*items]\n"
MERGE_KEY = "base: &base {app: web}\nlabels:\n  <<: *base\n"


def _error(text: str) -> yaml.MarkedYAMLError:
    with pytest.raises(yaml.MarkedYAMLError) as caught:
        list(load_yaml_documents(text))
    return caught.value


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [(BILLION_LAUGHS, 2, 10), (SELF_REFERENCE, 2, 16), (MERGE_KEY, 3, 7)],
    ids=["bomb", "self", "merge-key"],
)
def test_an_alias_is_refused_where_it_stands(text: str, line: int, column: int) -> None:
    error = _error(text)
    assert error.problem == ALIAS_PROBLEM
    assert error.problem_mark is not None
    assert (error.problem_mark.line + 1, error.problem_mark.column + 1) == (line, column)
    assert text.splitlines()[line - 1][column - 1] == "*"  # the alias itself, not its anchor


def test_the_bomb_is_refused_before_it_grows() -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _error(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS) < 1024
    # KiB on Linux: nothing near the gigabytes the expanded document would take
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000


@pytest.mark.parametrize(
    "text",
    ["[" * 100_000 + "]" * 100_000, "- " * 5_000 + "x\n", "{a: " * 5_000 + "1" + "}" * 5_000],
    ids=["flow-sequences", "block-sequences", "flow-mappings"],
)
def test_deep_nesting_is_an_error_not_a_crash(text: str) -> None:
    # libyaml's own composer recursed in C here and the process died (SIGSEGV)
    assert _error(text).problem == f"nested deeper than {MAX_DEPTH} levels"


def test_what_kubernetes_writes_still_loads() -> None:
    text = (
        "kind: Pod\nmetadata: {name: 'a&b*c', annotations: {x: '&y *z'}}\n"
        "spec: {containers: [{name: c, args: ['*', '&']}]}\n---\n---\na: &unused 1\n"
    )
    assert list(load_yaml_documents(text)) == [
        {
            "kind": "Pod",
            "metadata": {"name": "a&b*c", "annotations": {"x": "&y *z"}},
            "spec": {"containers": [{"name": "c", "args": ["*", "&"]}]},
        },
        None,
        {"a": 1},
    ]
    # Kubernetes-like depth (a CRD schema) is far below the cap, and loads.
    nested = "a:\n" + "".join("  " * i + f"  k{i}:\n" for i in range(MAX_DEPTH - 3))
    nested += "  " * (MAX_DEPTH - 2) + "v\n"
    assert list(load_yaml_documents(nested))[0]["a"]["k0"]["k1"] is not None


@pytest.mark.parametrize(
    "text", [BILLION_LAUGHS, SELF_REFERENCE, "[" * 100_000], ids=["bomb", "self", "deep"]
)
def test_inventory_file_says_file_and_place(tmp_path: Path, text: str) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(text)
    with pytest.raises(InventoryError) as caught:
        load_inventory_files([path])
    message = str(caught.value)
    assert message.startswith("inventory.yaml: line ")
    assert "column" in message and "\n" not in message


def test_inventory_json_nested_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "inventory.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InventoryError, match=r"^inventory.json: invalid JSON: nested too deep$"):
        load_inventory_files([path])


@pytest.mark.parametrize("text", [BILLION_LAUGHS, SELF_REFERENCE], ids=["bomb", "self"])
def test_policy_file_says_file_document_and_place(text: str) -> None:
    policy = "kind: NetworkPolicy\nmetadata: {name: a, namespace: shop}\nspec: {podSelector: {}}\n"
    with pytest.raises(ReadError) as caught:
        parse_policy_text(policy + "---\n" + text, "p.yaml")
    message = str(caught.value)
    assert message.startswith("p.yaml: document 2: invalid YAML at line ")
    assert message.endswith(ALIAS_PROBLEM)
