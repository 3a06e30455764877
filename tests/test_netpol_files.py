"""Reading policy files: documents, Lists, other kinds, and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from discover.errors import ReadError
from discover.netpol.files import PolicyFileError, load_policy_file, parse_policy_text

POLICY = """\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: %s, namespace: shop}
spec: {podSelector: {}}
"""


def test_documents_lists_and_other_kinds() -> None:
    text = "\n---\n".join(
        [
            POLICY % "b",
            "",  # an empty document is fine
            "kind: Deployment\nmetadata: {name: web}",
            "kind: NetworkPolicyList\nitems:\n  - metadata: {name: a, namespace: shop}\n"
            "    spec: {podSelector: {}}\n",
            "kind: List\nitems:\n  - {kind: Service, metadata: {name: s}}\n",
        ]
    )
    loaded = parse_policy_text(text, "p.yaml")
    assert [p.ref for p in loaded.policies] == ["shop/a", "shop/b"]
    assert loaded.notes == (
        "p.yaml: ignored objects that are not NetworkPolicies: Deployment x1, Service x1",
    )


def test_no_policy_is_a_note_not_an_error() -> None:
    assert parse_policy_text("kind: Pod\nmetadata: {name: x}\n", "f").notes[-1] == (
        "f: no NetworkPolicy found: every connection is allowed"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (POLICY % "a" + "---\nkind: [unclosed\n", "f.yaml: document 2: invalid YAML at line"),
        (
            POLICY % "a" + "---\n- just\n- a list\n",
            "f.yaml: document 2: expected a Kubernetes object",
        ),
        ("metadata: {name: x}\n", "f.yaml: document 1: object without kind"),
        (
            POLICY % "a" + "---\nkind: NetworkPolicy\nmetadata: {name: x, namespace: shop}\n"
            "spec: {ingress: [{from: [{}]}]}\n",
            "f.yaml: document 2: NetworkPolicy shop/x: spec.ingress[0].from[0]: a peer needs",
        ),
        (
            POLICY % "a" + "---\n" + POLICY % "a",
            "f.yaml: document 2: NetworkPolicy shop/a appears twice (also document 1)",
        ),
    ],
)
def test_errors_name_file_and_document(text: str, message: str) -> None:
    with pytest.raises(PolicyFileError) as caught:
        parse_policy_text(text, "f.yaml")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value, ReadError)


def test_load_policy_file(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"kind": "NetworkPolicy", "metadata": {"name": "j"}, "spec": {}}')
    assert [p.ref for p in load_policy_file(path).policies] == ["default/j"]
    with pytest.raises(PolicyFileError, match="cannot read"):
        load_policy_file(tmp_path / "missing.yaml")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(PolicyFileError, match="not a text file"):
        load_policy_file(binary)
