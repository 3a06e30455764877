"""What the proposal newly denies, from the evaluator's workload matrix."""

from __future__ import annotations

from dataclasses import replace

from discover.inventory.model import NetworkPolicy
from reports.changes import compute_changes, documents_by_workload, external_peers
from tests.reports_sample import DB, WEB, shop_report, tiny_report


def test_no_existing_policies_every_pair_was_open() -> None:
    report = shop_report()
    changes = compute_changes(report.inventory, report.proposal)
    workloads = {p.workload for p in report.inventory.pods if not p.host_network}
    assert changes.pairs_open_before == len(workloads) * (len(workloads) - 1)
    assert 0 < changes.pairs_open_after < changes.pairs_open_before
    for change in changes.by_workload.values():
        for pair in change.ingress + change.egress:
            # the proposal only takes away
            assert pair.after.intersection(pair.before) == pair.after
            assert pair.after != pair.before


def test_observed_pairs_keep_their_ports() -> None:
    report = shop_report()
    changes = compute_changes(report.inventory, report.proposal)
    cart = next(ref for ref in changes.by_workload if ref.name == "cart")
    storefront = next(p for p in changes.by_workload[cart].ingress
                      if p.peer.name == "storefront")
    assert storefront.after.contains("TCP", 8080) and not storefront.lost_all
    lines = changes.by_workload[cart].lines()
    assert any(line.startswith("denies all ingress from") for line in lines)


def test_tiny_pairs() -> None:
    report = tiny_report()
    changes = compute_changes(report.inventory, report.proposal)
    assert changes.pairs_open_before == 2
    assert changes.pairs_open_after == 1  # web -> db on TCP 5432 only
    db_from_web = changes.by_workload[DB].ingress[0]
    assert db_from_web.peer == WEB and str(db_from_web.after) == "TCP 5432"
    web_from_db = changes.by_workload[WEB].ingress[0]
    assert web_from_db.lost_all


def test_existing_policies_are_the_baseline() -> None:
    report = tiny_report()
    closed = NetworkPolicy("ns-b", "deny", {"podSelector": {}, "policyTypes": ["Ingress"]})
    inventory = replace(report.inventory, network_policies=(closed,))
    changes = compute_changes(inventory, report.proposal)
    assert changes.pairs_open_before == 1  # only db -> web was open
    assert WEB in changes.by_workload


def test_too_many_workloads_is_skipped_with_a_reason() -> None:
    report = tiny_report()
    changes = compute_changes(report.inventory, report.proposal, max_workloads=1)
    assert changes.by_workload == {} and changes.skipped and "2 workloads" in changes.skipped


def test_documents_and_external_peers() -> None:
    report = tiny_report()
    documents = documents_by_workload(report.proposal)
    assert [d.name for d in documents[str(WEB)]] == ["web-netpol"]
    assert [d.name for d in documents[""]] == ["default-deny"]
    manifest = {"spec": {"egress": [{"to": [{"ipBlock": {"cidr": "192.0.2.0/24",
                                                         "except": ["192.0.2.1/32"]}}],
                                     "ports": [{"protocol": "TCP", "port": 443}]}]}}
    assert external_peers(manifest, "egress") == ["192.0.2.0/24 except 1 range(s) on TCP 443"]
    assert external_peers(manifest, "ingress") == []
