"""Hostile strings from inventories and captures reach every output only escaped.

Kubernetes restricts names and labels, but an inventory is a file and a capture carries
any DNS name: the property test puts arbitrary text (line breaks, `---`, `#`, quotes,
control characters, HTML, DOT and Markdown syntax, NUL, Unicode line separators) into
every field that reaches an output and checks that each output parses back to exactly
the documents, rows and elements intended.
"""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from ipaddress import ip_address
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from discover.analysis import Analysis, analyze
from discover.escaping.dot_text import dot_label_text, dot_string
from discover.escaping.html_text import html_text, script_element
from discover.escaping.markdown_text import md_code, md_text
from discover.escaping.visible import visible
from discover.escaping.yaml_comment import comment_lines
from discover.flows.events import DirectionEvidence, Protocol
from discover.flows.flowtable import DnsRow, FlowRow, FlowTable
from discover.flows.sources import LoadedInputs
from discover.inventory.model import Inventory
from discover.outputs import write_outputs
from discover.synthesis import SynthesisOptions
from reports.graph_dot import dot_path
from tests.factories import T0, T1, make_inventory, make_pod

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "samples" / "shop"
INJECTED = "x\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: pwned\n"
FRAGMENTS = [
    INJECTED, "\n", "\r\n", "\r", "---", "...", "# ", "#", "'", '"', "\\", "\\n", "`", "``",
    "|", "*", "_", "[a](http://evil.example/)", "![i](x)", "www.evil.example",
    "mail@evil.example", "&amp;", "&lt;", "<script>alert(1)</script>", "</script>", "<!--",
    "<b>", "<svg onload=x>", "]]>", "->", "{", "}", ";", ",", "=", ":", "\x00", "\x07",
    "\x1b[31m", "\x85", "\u2028", "\u2029", "\u202e", "\ufeff", "\ufffe", "é", "漢",
    "\U0001f600", " ", "\t", "~~", "@",
]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=4)),
                   min_size=1, max_size=6).map("".join)


# -- the escapers, one by one -----------------------------------------------------------

def test_visible_escapes_breaks_and_controls_and_keeps_printable_unicode() -> None:
    assert visible("a\nb\r\x85\u2028\u2029\x00\x07\u202e") == \
        "a\\nb\\r\\x85\\u2028\\u2029\\x00\\x07\\u202e"
    assert visible("café 漢字 \U0001f600 -> ok") == "café 漢字 \U0001f600 -> ok"
    assert visible("a\nb\tc", keep="\n") == "a\nb\\tc"


def test_comment_lines_are_one_line_each() -> None:
    text = comment_lines(["owner " + INJECTED, "plain"])
    assert text.splitlines() == ["# owner x\\n---\\napiVersion: v1\\nkind: Namespace\\n"
                                 "metadata:\\n  name: pwned\\n", "# plain"]
    assert list(yaml.safe_load_all(text + "---\na: 1\n")) == [{"a": 1}]


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.handlers.extend(name for name, _ in attrs if name.startswith("on"))


def _tags(markup: str) -> list[str]:
    parser = _Elements()
    parser.feed(markup)
    parser.close()
    return parser.tags


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup)
    parser.close()
    return "".join(parser.parts)


def _render_md(text: str) -> str:
    return str(MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text))


@pytest.mark.parametrize("value", ["a -> b", "<script>x</script>", "[l](http://e/)",
                                   "*b* _i_ `c` ~~s~~ # h", "x | y", "&lt;&amp;&#60;",
                                   "www.e.example", "a\\b", "line\nbreak"])
def test_md_text_renders_as_itself(value: str) -> None:
    html = _render_md(md_text(value))
    assert _tags(html) == ["p"]
    assert _text(html) == value.replace("\n", " ") + "\n"


def test_md_text_leaves_arrows_alone() -> None:
    assert md_text("a -> b") == "a -> b"


@pytest.mark.parametrize("value", ["plain", "a`b", "``x", "x`", "a|b", "<b>x</b>"])
def test_md_code_is_one_code_span(value: str) -> None:
    html = _render_md(md_code(value))
    assert _tags(html) == ["p", "code"]
    assert _text(html) == value + "\n"


def test_md_code_in_a_table_cell_keeps_the_row() -> None:
    table = f"| a | b |\n|---|---|\n| {md_code('x|y', in_table=True)} | {md_text('p|q')} |\n"
    html = _render_md(table)
    assert html.count("<td>") == 2 and "<code>x|y</code>" in html and "p|q" in html


def test_html_text_and_script() -> None:
    assert html_text('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    assert html_text("a\nb\x07") == "a\nb\\x07"
    element = script_element('var s = "</script><!--";')
    assert element.count("</script") == 1 and "<!--" not in element
    assert _tags(element) == ["script"]


@pytest.mark.skipif(dot_path() is None, reason="graphviz dot is not installed")
@pytest.mark.parametrize("value", ['a"b', "a\\", "a\\\"b", "x\ny", "\\N\\G", "a\x00b"])
def test_dot_string_reads_back_as_the_visible_text(value: str) -> None:
    source = (f"digraph g {{ n0 [label={dot_string(value)}]; "
              f"n1 [label=<{dot_label_text(value)}>]; }}\n")
    svg = subprocess.run([str(dot_path()), "-Tsvg"], input=source.encode(),
                         capture_output=True, check=True).stdout.decode()
    texts = [line.split(">", 1)[1].rsplit("</text", 1)[0] for line in svg.splitlines()
             if line.startswith("<text")]
    assert [t.replace("&quot;", '"').replace("&#45;", "-") for t in texts] == \
        [visible(value)] * 2


# -- the whole output set, for hostile inventories and DNS names ------------------------

def _world(namespace: str, workload: str, label_key: str, label_value: str, fqdn: str,
           cname: str) -> tuple[Inventory, tuple[FlowRow, ...], tuple[DnsRow, ...]]:
    namespace, workload = "ns-" + namespace, "w-" + workload
    pods = [
        make_pod(namespace, workload, {"app": "web", label_key: label_value}, "10.244.1.10",
                 ports=[(8080, "TCP", None)]),
        make_pod("shop", "db", {"app": "db", "role": label_value}, "10.244.1.11",
                 ports=[(5432, "TCP", None)]),
        make_pod("kube-system", "coredns", {"k8s-app": "kube-dns"}, "10.244.0.2",
                 ports=[(53, "UDP", "dns"), (53, "TCP", "dns-tcp")]),
    ]
    start, end = T0.timestamp(), T1.timestamp()
    web = ip_address("10.244.1.10")
    flows = (
        FlowRow(web, ip_address("10.244.1.11"), Protocol.TCP, 5432, 3, 30, start, end,
                DirectionEvidence.SYN),
        FlowRow(web, ip_address("192.0.2.7"), Protocol.TCP, 443, 2, 20, start, end,
                DirectionEvidence.SYN),
        FlowRow(web, ip_address("10.244.0.2"), Protocol.UDP, 53, 4, 8, start, end),
    )
    dns = (DnsRow(web, fqdn, ip_address("192.0.2.7"), (fqdn, cname),
                  ip_address("10.244.0.2"), 30, 1, start, start),)
    return make_inventory(pods), flows, dns


def _check_yaml(text: str, manifests: list[dict[str, object]]) -> None:
    loaded = [d for d in yaml.safe_load_all(text) if d is not None]
    assert loaded == manifests
    lines = text.splitlines()
    # a document starts only where we start one; no directive or end marker comes in
    assert sum(1 for line in lines if line.startswith("---")) == len(manifests)
    assert all(line == "---" for line in lines if line.startswith("---"))
    assert not any(line.startswith(("...", "%")) for line in lines)


def _check_outputs(out: Path, analysis: Analysis, flows: tuple[FlowRow, ...]) -> None:
    proposal = analysis.proposal
    policies = (out / "policies.yaml").read_text(encoding="utf-8")
    _check_yaml(policies, [dict(d.manifest) for d in proposal.documents])
    assert all(d["kind"] == "NetworkPolicy" for d in yaml.safe_load_all(policies) if d)
    _check_yaml((out / "cilium-policies.yaml").read_text(encoding="utf-8"),
                [dict(d.manifest) for d in proposal.cilium_documents])
    fqdn_docs = [d for d in yaml.safe_load_all(
        (out / "fqdn-dependencies.yaml").read_text(encoding="utf-8")) if d is not None]
    assert [d["kind"] for d in fqdn_docs] == ["FqdnDependencies"]
    assert [d["fqdn"] for d in fqdn_docs[0]["dependencies"]] == \
        [d.fqdn for d in proposal.fqdn_dependencies]

    table = pd.read_csv(out / "flows.csv", dtype=str, keep_default_na=False)
    assert len(table) == len(flows)
    assert list(table["src_ip"]) == [str(f.src_ip) for f in flows]
    assert list(table["dst_ip"]) == [str(f.dst_ip) for f in flows]
    verdicts = {(str(v.src_ip), str(v.dst_ip), int(v.dst_port)): v for v in analysis.verdicts}
    for row in table.to_dict("records"):
        verdict = verdicts[(row["src_ip"], row["dst_ip"], int(row["dst_port"]))]
        assert row["src_peer"] == verdict.source
        assert row["reason"] == verdict.reason

    page = (out / "report.html").read_text(encoding="utf-8")
    parser = _Elements()
    parser.feed(page)
    parser.close()
    assert parser.tags.count("script") == 1
    assert parser.tags.count("svg") == page.count('<div class="graph-box"')
    assert not parser.handlers, parser.handlers  # no on*= attribute came in

    markdown = (out / "report.md").read_text(encoding="utf-8")
    rendered = _render_md(markdown)
    assert "script" not in _tags(rendered) and "svg" not in _tags(rendered)
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    fqdn_rows = len(proposal.fqdn_dependencies) + 1 if proposal.fqdn_dependencies else 0
    namespace_rows = len(set(d.namespace for d in proposal.documents)
                         | set(proposal.namespaces)) + 1 if proposal.documents else 0
    assert len(rows) == fqdn_rows + namespace_rows
    assert rendered.count("<tr>") == len(rows)


def _run(out: Path, *strings: str) -> tuple[Analysis, tuple[FlowRow, ...]]:
    inventory, flows, dns = _world(*strings)
    analysis = analyze(flows, dns, inventory, SynthesisOptions())
    loaded = LoadedInputs(FlowTable(), [], [], T0, T1)
    write_outputs(out, analysis, loaded, inventory, flows, dns)
    return analysis, flows


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(namespace=hostile, workload=hostile, label_key=hostile, label_value=hostile,
       fqdn=hostile, cname=hostile)
def test_hostile_strings_never_change_the_outputs_structure(
        tmp_path: Path, namespace: str, workload: str, label_key: str, label_value: str,
        fqdn: str, cname: str) -> None:
    out = tmp_path / "out"
    analysis, flows = _run(out, namespace, workload, label_key, label_value, fqdn, cname)
    _check_outputs(out, analysis, flows)


# -- the hostile inventory of issue 15, through the command line --------------------------

def test_owner_name_with_a_namespace_document_stays_a_comment(tmp_path: Path) -> None:
    inventory = json.loads((SAMPLE / "inventory.json").read_text(encoding="utf-8"))
    owned = 0
    for item in inventory["items"]:
        owners = item.get("metadata", {}).get("ownerReferences") or []
        if item.get("kind") == "Pod" and owners:
            owners[0]["name"] = owners[0]["name"] + INJECTED
            item["metadata"]["labels"]["evil"] = INJECTED.replace("\n", "\r\n")
            owned += 1
    assert owned
    hostile = tmp_path / "inventory.json"
    hostile.write_text(json.dumps(inventory), encoding="utf-8")
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "discover", "analyze", str(SAMPLE / "capture.pcap"),
         "--inventory", str(hostile), "--out", str(out)],
        capture_output=True, text=True, check=False, cwd=ROOT)
    assert done.returncode in (0, 1), done.stderr
    policies = (out / "policies.yaml").read_text(encoding="utf-8")
    documents = [d for d in yaml.safe_load_all(policies) if d is not None]
    assert documents and {d["kind"] for d in documents} == {"NetworkPolicy"}
    assert "pwned" in policies  # the name is there, escaped, inside a comment or a value
    assert not any(line.startswith(("apiVersion: v1", "kind: Namespace"))
                   for line in policies.splitlines())
