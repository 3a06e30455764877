"""Has the window seen enough (issue 14 part 3): converged workloads, late edges, CronJobs
that did not show."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from discover.inventory.model import WorkloadTemplate
from discover.synthesis.proposal import Window
from discover.verification.convergence import (
    CRONJOB_UNSEEN,
    NOT_CONVERGED,
    assess_convergence,
)
from reports.learning_md import learning_lines, sparkline
from tests.factories import T0, make_edge, make_inventory, ref, shop_pods, workload_peer

WINDOW = Window(T0, T0 + timedelta(hours=10))
WEB, API, DB = (workload_peer("shop", "web"), workload_peer("shop", "api"),
                workload_peer("shop", "db", "StatefulSet"))


def _at(edge, hours: float):  # type: ignore[no-untyped-def]
    return replace(edge, first_seen=T0 + timedelta(hours=hours))


def test_a_workload_gaining_an_edge_in_the_last_fifth_is_not_converged() -> None:
    edges = [_at(make_edge(WEB, API, 9090), 0.5), _at(make_edge(API, DB, 5432), 8.5)]
    result = assess_convergence(edges, make_inventory(shop_pods()), WINDOW)
    state = {str(w.workload): w for w in result.workloads}
    assert state["shop/deployment/web"].converged
    assert not state["shop/deployment/api"].converged  # its db edge came at 85%
    assert not state["shop/statefulset/db"].converged
    assert state["shop/deployment/api"].growth == (1, 1, 1, 1, 1, 1, 1, 1, 2, 2)
    assert result.converged == 1
    assert result.summary().startswith("1 of 3 workloads converged")
    assert {f.subject for f in result.findings() if f.rule == NOT_CONVERGED} == {
        "shop/deployment/api", "shop/statefulset/db"}


def test_an_edge_just_before_the_last_fifth_still_counts_as_converged() -> None:
    edges = [_at(make_edge(WEB, API, 9090), 7.99)]
    result = assess_convergence(edges, make_inventory(shop_pods()), WINDOW)
    assert result.converged == 2


def test_a_cronjob_without_traffic_is_named() -> None:
    report = ref("shop", "monthly-report", "CronJob")
    inventory = replace(make_inventory(shop_pods()),
                        workloads=(WorkloadTemplate(report, {"app": "report"}),))
    result = assess_convergence([_at(make_edge(WEB, API, 9090), 1)], inventory, WINDOW)
    assert result.silent_cronjobs == (report,)
    [finding] = [f for f in result.findings() if f.rule == CRONJOB_UNSEEN]
    assert finding.subject == "shop/cronjob/monthly-report"
    text = "\n".join(learning_lines(result))
    assert "CronJobs with no traffic" in text and "monthly-report" in text


def test_sparkline_scales_to_the_total() -> None:
    assert sparkline((0, 1, 2, 4)) == "▁▂▄█"
    assert sparkline((0, 0)) == "▁▁"
