"""The evaluator against the np-guard netpol-analyzer oracle: every NetworkPolicy-only case.

For each case the allowed connections between every pair of workloads, and between
workloads and the external ranges, must equal the oracle's expected connlist output.
The oracle never matches a pod by ipBlock; its workloads carry no IPs here, so our
"ipBlock matches a pod by IP" reading never comes into play.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from discover.netpol.ipblock import IpBlock, split_address_space
from tests.conftest import CORPORA
from tests.netpol_oracle import connlist, expected_connlist, load_case

ORACLE = "netpol-oracle/np-guard-netpol-analyzer"


def _cases() -> list[str]:
    index = CORPORA / ORACLE / "NETPOL_ONLY_CASES.txt"
    if not index.is_file():
        return ["corpora-absent"]  # the `corpora` fixture skips it
    lines = index.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


CASES = _cases()


def test_the_index_lists_the_cases_we_expect(corpora: Path) -> None:
    assert len(CASES) == 42
    assert "ipblockstest_4" in CASES and "netpol_named_port_test_2" in CASES


@pytest.mark.corpora
@pytest.mark.parametrize("case", CASES)
def test_connlist_matches_the_oracle(corpora: Path, case: str) -> None:
    root = corpora / ORACLE
    ours = connlist(load_case(root / "tests" / case))
    expected = expected_connlist(root / "test_outputs" / "connlist" / f"{case}_connlist_output.txt")
    missing = sorted(set(expected) - set(ours))
    extra = sorted(set(ours) - set(expected))
    assert not missing and not extra, (
        f"{len(missing)} missing, e.g. {missing[:3]}; {len(extra)} extra, e.g. {extra[:3]}"
    )
    assert ours == expected  # same lines, no duplicates


def _other_formats() -> list[str]:
    outputs = CORPORA / ORACLE / "test_outputs" / "connlist"
    if not outputs.is_dir():
        return ["corpora-absent"]
    return sorted(
        f"{case}.{suffix}"
        for case in CASES
        for suffix in ("json", "csv")
        if (outputs / f"{case}_connlist_output.{suffix}").is_file()
    )


@pytest.mark.corpora
@pytest.mark.parametrize("output", _other_formats())
def test_json_and_csv_outputs_agree(corpora: Path, output: str) -> None:
    case, suffix = output.rsplit(".", 1)
    root = corpora / ORACLE
    path = root / "test_outputs" / "connlist" / f"{case}_connlist_output.{suffix}"
    if suffix == "json":
        rows = [(r["src"], r["dst"], r["conn"]) for r in json.loads(path.read_text())]
    else:
        reader = csv.DictReader(io.StringIO(path.read_text()))
        rows = [(r["src"], r["dst"], r["conn"]) for r in reader]
    expected = sorted(f"{src} => {dst} : {conn}" for src, dst, conn in rows)
    assert connlist(load_case(root / "tests" / case)) == expected


def test_split_address_space_cuts_at_every_piece_of_a_block() -> None:
    import ipaddress

    block = IpBlock(
        ipaddress.ip_network("0.0.0.0/0"),
        (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("172.21.0.0/16")),
    )
    ranges = [f"{a}-{b}" for a, b in split_address_space([block])]
    assert ranges == [
        "0.0.0.0-9.255.255.255",
        "10.0.0.0-10.255.255.255",
        "11.0.0.0-172.20.255.255",
        "172.21.0.0-172.21.255.255",
        "172.22.0.0-255.255.255.255",
    ]
    assert [f"{a}-{b}" for a, b in split_address_space([])] == ["0.0.0.0-255.255.255.255"]
    v6 = split_address_space([IpBlock(ipaddress.ip_network("2001:db8::/32"))], version=6)
    assert [str(a) for a, _ in v6] == ["::", "2001:db8::", "2001:db9::"]
