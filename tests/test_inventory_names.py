"""Objects without a name are skipped with a note naming them by position (issue 15 item
12): `{"kind": "Pod"}` became the pod `default/` and gave `default` a default deny."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from discover.inventory.files import load_inventory_files

NAMESPACE = {"kind": "Namespace", "metadata": {"name": "shop"}}
POD = {
    "kind": "Pod",
    "metadata": {"name": "web-1", "namespace": "shop", "labels": {"app": "web"}},
    "status": {"podIP": "10.244.1.5", "phase": "Running"},
}


@pytest.mark.parametrize(
    ("broken", "shown", "message"),
    [
        ({"kind": "Pod"}, "Pod", "missing (every Kubernetes object has a name)"),
        ({"kind": "Pod", "metadata": {"namespace": "shop"}}, "Pod", "missing"),
        ({"kind": "Service", "metadata": {"name": ""}}, "Service", "missing"),
        ({"kind": "Pod", "metadata": {"name": 5}}, "Pod", "expected a string, got int"),
        ({"kind": "Namespace", "metadata": None}, "Namespace", "missing"),
    ],
)
def test_a_nameless_object_is_skipped_by_position(
    tmp_path: Path, broken: dict[str, object], shown: str, message: str
) -> None:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"kind": "List", "items": [NAMESPACE, POD, broken]}))
    inventory = load_inventory_files([path])
    assert [(p.namespace, p.name) for p in inventory.pods] == [("shop", "web-1")]
    assert [n.name for n in inventory.namespaces] == ["shop"]
    assert not any(s.name == "" for s in inventory.services)
    skipped = [n for n in inventory.notes if n.startswith("skipped: ")]
    assert len(skipped) == 1
    assert skipped[0].startswith(f"skipped: inventory.json: items[2] ({shown}): metadata.name: ")
    assert message in skipped[0]


def test_yaml_documents_are_named_by_number(tmp_path: Path) -> None:
    path = tmp_path / "pods.yaml"
    path.write_text("kind: Namespace\nmetadata: {name: shop}\n---\nkind: Pod\nspec: {}\n")
    inventory = load_inventory_files([path])
    assert inventory.pods == ()
    assert "skipped: pods.yaml: document 2 (Pod): metadata.name: missing" in " ".join(
        inventory.notes
    )
