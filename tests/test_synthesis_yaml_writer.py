"""The fast manifest writer gives PyYAML's bytes, whichever path writes a document."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from discover.synthesis import render
from discover.synthesis.yaml_writer import write_yaml

# Characters that change PyYAML's choices: indicators, quotes, spaces (folding), a colon
# or hash that ends a plain scalar, digits and words the resolver reads as other types,
# and what must go to PyYAML (line breaks, NEL, U+2028, tabs, controls, non-ASCII).
_ALPHABET = st.sampled_from(list("ab -:#'\"?,[]{}&*!|>%@`.~0123456789eE+_/=\\")
                            + ["\n", "\t", "\x85", "\u2028", "\u2029", "\x00", "é", "\u202e"])
_WORDS = st.sampled_from(["yes", "No", "null", "~", "true", "1.5", "0x1F", "2026-01-02",
                          "1_000", ".inf", "<<", "=", "---", "...", "- a", ": ", "", " "])
_TEXT = st.one_of(_WORDS, st.text(_ALPHABET, max_size=40),
                  # long evidence-like strings: folding past column 100
                  st.lists(st.sampled_from(["TCP", "8080", "x24", "conns", "a:", "'q'",
                                            "ns/deployment/web;", " ", "[0]:", "#x"]),
                           min_size=10, max_size=80).map(" ".join))
_SCALAR = st.one_of(_TEXT, st.integers(-10**6, 10**12), st.booleans(), st.none())
_KEY = st.one_of(_TEXT, st.text("ab", min_size=120, max_size=140), st.integers(0, 99))
_TREE = st.recursive(
    _SCALAR,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(_KEY, inner, max_size=4)),
    max_leaves=30,
)


def _pyyaml(data: Any) -> str:
    """What the report and policies.yaml wrote before: yaml.dump with render's Dumper."""
    return render._pyyaml_dump(data)


@settings(max_examples=600, deadline=None)
@given(st.dictionaries(_KEY, _TREE, min_size=1, max_size=5))
def test_hostile_documents_give_pyyamls_bytes(data: dict[Any, Any]) -> None:
    assert write_yaml(data, _pyyaml) == _pyyaml(data)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["peer", "TCP", "8080", "x24", "'a'", "b:", "c", " "]),
                min_size=20, max_size=60).map(" ".join), st.integers(0, 6))
def test_folding_at_every_depth(text: str, depth: int) -> None:
    data: Any = {"evidence": text, "items": [text, {"k": text}]}
    for level in range(depth):
        data = {f"k{level}": [data]} if level % 2 else {f"k{level}": data}
    assert write_yaml(data, _pyyaml) == _pyyaml(data)


def test_folding_at_every_column() -> None:
    """Every start column and word length: a fold one column early or late shows."""
    for key_length in range(1, 24):
        for word in ("a", "bb", "c'c", "dddd", "eeeee:", "x" * 9):
            for quoted in (False, True):
                text = " ".join([word] * 40) + (": q" if quoted else "")
                data = {"k" * key_length: text, "s": [text, [text]]}
                assert write_yaml(data, _pyyaml) == _pyyaml(data), (key_length, word)


def test_the_fast_path_writes_manifests_without_pyyaml() -> None:
    def refuse(data: Any) -> str:
        raise AssertionError(f"fell back for {data!r}")

    manifest = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "web-netpol", "namespace": "shop",
                     "annotations": {"netpol-discover.io/evidence": "ingress[0]: shop/x TCP "
                                     "8080 x24 conns 2026-11-26T04:39:11Z..2026-11-26T04:39:22Z; "
                                     * 4}},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                 "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                    "except": ["10.1.0.0/16"]}}],
                              "ports": [{"protocol": "TCP", "port": 8080},
                                        {"protocol": "UDP", "port": "dns"}]}]},
    }
    assert write_yaml(manifest, refuse) == _pyyaml(manifest)


def test_what_pyyaml_must_write_goes_to_pyyaml() -> None:
    """Shared sub-objects (anchors), line separators (double-quoted by the caller's
    representer), non-ASCII, floats and long keys take the fallback, whole."""
    shared = {"a": 1}
    for data in ({"x": shared, "y": shared}, {"x": "a\u2028b"}, {"x": "é"}, {"x": 1.5},
                 {"k" * 130: 1}, {"x": ("tuple",)}):
        calls: list[Any] = []

        def fallback(value: Any, calls: list[Any] = calls) -> str:
            calls.append(value)
            return "FALLBACK"

        assert write_yaml(data, fallback) == "FALLBACK" and calls == [data]
    assert render.manifest_yaml({"x": "a\u2028b"}) == _pyyaml({"x": "a\u2028b"})
    assert '"a\\Lb"' in write_yaml({"x": "a\u2028b"}, _pyyaml)  # the NEL/U+2028 fix kept
    assert yaml.safe_load(write_yaml({"x": "a\u2028b"}, _pyyaml)) == {"x": "a\u2028b"}
