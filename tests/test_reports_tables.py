"""Tables: written as CSV and Parquet, with the columns docs/tables.md documents."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from discover.flows.flowtable import FLOW_COLUMNS, FlowRow
from reports.tables import (
    FLOW_EXTRA_COLUMNS,
    FQDN_COLUMNS,
    GRAPH_COLUMNS,
    TableFormatError,
    resolved_flows,
    write_tables,
)
from tests.reports_sample import shop_report, tiny_report

DOC = Path(__file__).resolve().parent.parent / "docs" / "tables.md"


def _documented() -> dict[str, list[str]]:
    """The column names of each table section of docs/tables.md, in order."""
    out: dict[str, list[str]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"## (\S+)\.csv", line)
        if heading:
            current = heading.group(1)
            out[current] = []
        cell = re.match(r"\| `([a-z_]+)` \|", line)
        if cell and current:
            out[current].append(cell.group(1))
    return out


def test_documented_columns_are_the_written_columns(tmp_path: Path) -> None:
    written = write_tables(tiny_report(), tmp_path)
    documented = _documented()
    assert [p.name for p in written] == ["flows.csv", "workload-graph.csv",
                                         "fqdn-dependencies.csv"]
    for path in written:
        header = path.read_text().splitlines()[0].split(",")
        assert header == documented[path.name.removesuffix(".csv")], path.name
    assert documented["flows"] == FLOW_COLUMNS + FLOW_EXTRA_COLUMNS
    assert documented["workload-graph"] == GRAPH_COLUMNS
    assert documented["fqdn-dependencies"] == FQDN_COLUMNS


def test_sample_flows_keep_every_row_and_resolve_them() -> None:
    report = shop_report()
    frame = resolved_flows(report.flows, report.graph)
    assert len(frame) == len(report.flows)
    assert frame["connections"].sum() == sum(flow.connections for flow in report.flows)
    assert (frame["source"] != "").all() and (frame["destination"] != "").all()
    storefront_dns = frame[(frame["source"] == "shop/deployment/storefront")
                           & (frame["dst_port"] == 53)]
    assert set(storefront_dns["destination"]) == {"kube-system/deployment/coredns"}
    assert "kube-system/kube-dns:53" in set(storefront_dns["service"])
    payments = frame[frame["fqdn"] == "api.payments.example.com"]
    assert len(payments) >= 2  # rotating addresses: several wire edges, one name


def test_parquet_round_trip(tmp_path: Path) -> None:
    report = shop_report()
    paths = write_tables(report, tmp_path, "parquet")
    flows = pd.read_parquet(paths[0])
    assert list(flows.columns) == FLOW_COLUMNS + FLOW_EXTRA_COLUMNS
    assert len(flows) == len(report.flows)
    assert str(flows["first_seen"].dtype) == "datetime64[ns, UTC]"
    graph = pd.read_parquet(paths[1])
    assert len(graph) == len(report.graph.edges)
    fqdn = pd.read_parquet(paths[2])
    assert sorted(fqdn["fqdn"]) == sorted(d.fqdn for d in report.proposal.fqdn_dependencies)


def test_csv_times_are_iso_utc(tmp_path: Path) -> None:
    paths = write_tables(tiny_report(), tmp_path)
    fqdn = pd.read_csv(paths[2], dtype=str, keep_default_na=False)
    assert fqdn.loc[0, "first_seen"] == "2026-01-02T03:04:05.000000Z"
    assert fqdn.loc[0, "addresses_changed"] == "true"
    assert fqdn.loc[0, "ports"] == "TCP/443"


def test_unknown_format() -> None:
    with pytest.raises(TableFormatError, match="csv, parquet"):
        write_tables(tiny_report(), Path("."), "xlsx")


def test_flows_with_only_the_contract_columns() -> None:
    report = tiny_report()
    four = [FlowRow(f.src_ip, f.dst_ip, f.protocol, f.dst_port) for f in report.flows]
    frame = resolved_flows(four, report.graph)
    assert list(frame.columns) == FLOW_COLUMNS + FLOW_EXTRA_COLUMNS
    assert frame["connections"].tolist() == [1, 1, 1]
    assert frame["first_seen"].isna().all()
    assert frame["destination"].tolist()[0] == "ns-b/statefulset/db"
