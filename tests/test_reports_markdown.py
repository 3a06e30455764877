"""report.md: short, per namespace, what needs a decision, nothing rendered as markup."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from discover.synthesis.proposal import Severity
from reports.markdown import md, render_markdown
from tests.reports_sample import empty_report, shop_report, tiny_report


@pytest.fixture(scope="module")
def text() -> str:
    return render_markdown(shop_report())


def test_short_enough_for_a_pull_request(text: str) -> None:
    assert len(text) < 65_536  # GitHub's PR description limit
    assert len(text.splitlines()) < 120


def test_every_namespace_with_policies_has_a_row(text: str) -> None:
    report = shop_report()
    for namespace in report.proposal.namespaces:
        assert f"| {namespace} | yes |" in text


def test_every_policy_workload_is_listed(text: str) -> None:
    report = shop_report()
    for document in report.proposal.documents:
        workload = document.manifest["metadata"].get("annotations", {}).get(
            "netpol-discover.io/workload")
        if workload:
            assert f"- {md(workload.split('/')[-1])} (" in text


def test_human_decisions(text: str) -> None:
    report = shop_report()
    decide = [f for f in report.proposal.findings if f.severity is not Severity.INFO]
    assert decide
    for finding in decide:
        assert f"`{finding.rule}` {md(finding.subject)}: {md(finding.message)}" in text
    for finding in report.proposal.findings:
        if finding.severity is Severity.INFO:
            assert f"`{finding.rule}`" not in text  # info stays in report.html
    for dep in report.proposal.fqdn_dependencies:
        assert f"| {md(dep.workload)} | {md(dep.fqdn)} |" in text


def test_numbers_match_the_flow_table(text: str) -> None:
    report = shop_report()
    assert f"{len(report.flows):,} flows" in text
    assert f"{sum(f.connections for f in report.flows):,} connections" in text


def test_deterministic_and_escaped() -> None:
    report = tiny_report()
    first = render_markdown(report)
    assert first == render_markdown(report)
    rendered = MarkdownIt("commonmark").enable("table").render(first)
    # the names show as text (rendered escaped once), never as elements
    assert "<script>" not in rendered and "<i-evil>" not in rendered
    assert "&lt;script&gt;alert" in rendered
    assert "\\<script>" in first and "&lt;" not in first  # Markdown escapes, not HTML ones


def test_nothing_to_decide() -> None:
    report = tiny_report()
    from dataclasses import replace

    calm = replace(report, proposal=replace(
        report.proposal, fqdn_dependencies=(),
        findings=tuple(f for f in report.proposal.findings if f.severity is Severity.INFO)))
    assert "Nothing: no warning or critical finding, no FQDN dependency." in \
        render_markdown(calm)


@pytest.mark.parametrize(("raw", "shown"), [
    ("a|b", "a\\|b"), ("*x*", "\\*x\\*"), ("[l](u)", "\\[l\\](u)"), ("<b>", "\\<b>"),
    ("a&b", "a&b"), ("&amp;", "\\&amp;"), ("a -> b", "a -> b"),
    ("plain-name.example", "plain-name.example"),
])
def test_md_escape(raw: str, shown: str) -> None:
    assert md(raw) == shown


def test_empty_analysis() -> None:
    text = render_markdown(empty_report())
    assert "Nothing: no policy is proposed" in text
    assert "| namespace |" not in text


@given(st.text(max_size=40))
def test_md_leaves_no_markup(raw: str) -> None:
    shown = md(raw)
    assert "\n" not in shown
    unescaped = shown.replace("\\\\", "")
    for special in "`*_[]#|!<":
        assert all(unescaped[i - 1] == "\\" for i, ch in enumerate(unescaped)
                   if ch == special and i > 0) and not unescaped.startswith(special)
