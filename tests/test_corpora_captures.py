"""Every public capture through CaptureFile: no traceback, fast, record counts as indexed;
golden comparisons with tshark on files whose content is known."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from discover.errors import ReadError
from discover.flows.events import ConnectionOpen, DirectionEvidence, Protocol
from discover.reading.capture_file import CaptureFile
from discover.reading.packets import DnsPayload

GOLDEN = Path(__file__).parent / "data" / "golden"
FOLDERS = ("tcpdump-tests", "zeek-traces", "scapy-pcaps", "libpcap-tests")
PER_FILE_SECONDS = 5.0
# Files the index counts wrongly (checked with capinfos): pfcp.pcap is a big-endian pcapng
# that the indexer read as empty; capinfos and tcpdump both count 200 packets.
INDEX_ERRATA = {"scapy-pcaps/pcaps/pfcp.pcap": 200}
# Headers libpcap and tcpdump refuse too ("unsupported savefile version", bad SHB option).
BAD_HEADERS = {
    "libpcap-tests/pcap-invalid-version-1.pcap",
    "libpcap-tests/pcap-invalid-version-2.pcap",
    "libpcap-tests/pcapng-invalid-vers-1.pcapng",
    "libpcap-tests/pcapng-invalid-vers-2.pcapng",
    "libpcap-tests/shb-option-too-long.pcapng",
}


def _indexed(corpora: Path) -> list[tuple[Path, str, dict[str, str]]]:
    rows = []
    for folder in FOLDERS:
        index = corpora / folder / "pcap_index.tsv"
        with index.open() as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                base = corpora / folder
                path = next((p for p in (base / row["file"], base / "Traces" / row["file"],
                                         base / "pcaps" / row["file"]) if p.exists()), None)
                assert path is not None, f"{folder}: {row['file']} listed but missing"
                rows.append((path, f"{folder}/{row['file']}", row))
    return rows


@pytest.mark.corpora
def test_every_corpus_capture_reads_without_traceback(corpora: Path) -> None:
    rows = _indexed(corpora)
    assert len(rows) > 1600
    header_errors: set[str] = set()
    warned = 0
    for path, name, row in rows:
        started = time.perf_counter()
        capture = CaptureFile(path)
        try:
            for _event in capture:
                pass
        except ReadError as error:
            assert str(path) in str(error)
            header_errors.add(name)
            continue
        assert time.perf_counter() - started < PER_FILE_SECONDS, name
        expected = INDEX_ERRATA.get(name, int(row["packets"]))
        assert capture.records == expected, (name, capture.records, expected)
        assert capture.stats.packets == capture.records
        if row["error"]:
            assert not capture.complete and capture.warnings, name
        warned += bool(capture.warnings)
        for warning in capture.warnings:
            assert warning.startswith(f"{path}: "), warning
    assert header_errors == BAD_HEADERS
    assert warned > 0  # e.g. the trailing bytes file and unsupported link types


@pytest.mark.corpora
def test_trailing_garbage_is_a_warning_with_the_place(corpora: Path) -> None:
    path = corpora / "scapy-pcaps" / "pcaps" / "bad_rsn_parsing_overrides_ssid.pcap"
    capture = CaptureFile(path)
    list(capture)
    assert capture.records == 1
    assert not capture.complete
    assert "record 2 at byte" in capture.warnings[0]
    assert "kept the 1 records before it" in capture.warnings[0]


Golden = tuple[str, set[tuple[str, int, str, int]], Counter[tuple[str, str, int]]]


def _golden(path: Path) -> Golden:
    lines = path.read_text().splitlines()
    capture = lines[0].split(": ", 1)[1]
    syns: set[tuple[str, int, str, int]] = set()
    dns: Counter[tuple[str, str, int]] = Counter()
    for line in lines:
        if line.startswith("#"):
            continue
        f = line.split("\t")
        if f[0] == "syn":
            syns.add((f[1] or f[2], int(f[3]), f[4] or f[5], int(f[6])))
        else:
            for qid in f[5].split(","):
                dns[(f[1] or f[2], f[3] or f[4], int(qid, 16))] += 1
    return capture, syns, dns


@pytest.mark.corpora
@pytest.mark.parametrize("golden", sorted(GOLDEN.glob("*.tsv")), ids=lambda p: p.stem)
def test_syns_and_dns_answers_match_tshark(corpora: Path, golden: Path) -> None:
    name, syns, dns = _golden(golden)
    capture = CaptureFile(corpora / name)
    events = list(capture)
    ours_syn = {
        (str(e.client_ip), e.client_port, str(e.server_ip), e.server_port)
        for e in events
        if isinstance(e, ConnectionOpen) and e.evidence is DirectionEvidence.SYN
    }
    ours_dns = Counter(
        (str(e.server_ip), str(e.client_ip), int.from_bytes(e.payload[:2], "big"))
        for e in events if isinstance(e, DnsPayload)
    )
    assert ours_syn == syns
    # tshark (defragmentation off) also decodes the DNS head of a first IP fragment; the
    # reader counts those as truncated instead of handing half a message to dnspython.
    assert not ours_dns - dns
    assert (dns - ours_dns).total() == capture.stats.dns_truncated
    assert capture.complete


@pytest.mark.corpora
def test_golden_set_covers_link_types_and_dns_transports() -> None:
    names = {_golden(p)[0] for p in GOLDEN.glob("*.tsv")}
    assert any(n.endswith(".pcapng") for n in names)
    assert "tcpdump-tests/pcaps/dns_tcp.pcap" in names  # DNS over TCP
    assert "zeek-traces/Traces/tls/openjdk-25.0.2-zeek.org.pcap" in names  # Linux cooked v2


@pytest.mark.corpora
def test_otterize_frames(corpora: Path) -> None:
    folder = corpora / "k8s-traffic" / "otterize-network-mapper"
    for case in json.loads((folder / "cases.json").read_text()):
        events = list(CaptureFile(folder / case["pcap"]))
        expected = case["expected"]
        if case["name"].startswith("tcp_syn"):
            (syn,) = [e for e in events if isinstance(e, ConnectionOpen)]
            assert syn.evidence is DirectionEvidence.SYN
            assert str(syn.client_ip) == expected["SrcIp"]
            assert str(syn.server_ip) == expected["Destination"]
            assert syn.server_port == expected["DestinationPort"]
            assert [syn.client_port] == expected["SrcPorts"]
        else:
            (answer,) = [e for e in events if isinstance(e, DnsPayload)]
            assert str(answer.client_ip) == expected["SrcIp"]
            assert answer.transport is Protocol.UDP and answer.server_port == 53
            assert expected["DestinationIP"].encode() not in answer.payload  # raw wire bytes
            qname = expected["Destination"].split(".")[0].encode()
            assert qname in answer.payload


# Zeek tests whose conn.log differs from the trace for reasons outside the reader: the
# test installs a capture filter, or the connection is inside a tunnel that no Kubernetes
# CNI uses (the reader decodes VXLAN, Geneve, IP-in-IP and GRE only).
ZEEK_DIFFERENT = {
    "core.pcap.dynamic-filter": "capture filter installed by the test script",
    "core.pcap.read-trace-with-filter": "zeek -f 'port 50000'",
    "scripts.base.frameworks.netcontrol.packetfilter": "packet filter installed by the test",
    "core.tunnels.ayiya": "AYIYA tunnel",
    "core.tunnels.gre-over-udp": "GRE inside UDP",
    "core.tunnels.gtp.different_dl_and_ul": "GTP tunnel",
    "core.tunnels.gtp.inner_teredo": "GTP tunnel",
    "core.tunnels.gtp.opt_header": "GTP tunnel",
    "core.tunnels.gtp.outer_ip_frag": "GTP tunnel",
    "core.tunnels.teredo": "Teredo tunnel",
    "core.tunnels.teredo_bubble_with_payload": "Teredo tunnel",
}
OVERLAY_PORTS = (4789, 8472, 6081)  # the outer VXLAN/Geneve flow: replaced by the inner one


def _zeek_conn(path: Path) -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    names: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("#fields"):
            names = line.split("\t")[1:]
        elif names and not line.startswith("#"):
            rows.append(dict(zip(names, line.split("\t"), strict=False)))
    return [r for r in rows if "id.orig_h" in r and "history" in r
            and not (r["proto"] == "udp" and int(r["id.resp_p"]) in OVERLAY_PORTS)]


def _zeek_cases(corpora: Path) -> list[tuple[str, Path, list[dict[str, str]], bool]]:
    base = corpora / "zeek-traces"
    cases = []
    for entry in json.loads((base / "baselines" / "index.json").read_text()):
        if "conn.log" not in entry["logs"] or entry["test"] in ZEEK_DIFFERENT:
            continue
        rows = _zeek_conn(base / "baselines" / entry["test"] / "conn.log")
        if rows:
            cases.append((entry["test"], base / entry["trace"], rows, entry["has_script_body"]))
    return cases


@pytest.mark.corpora
def test_syn_connections_match_zeek_conn_logs(corpora: Path) -> None:
    """Zeek's history starting with S means it saw the originator's SYN: the same set as
    the reader's SYN-evidence connections, for every single-trace Zeek test."""
    cases = _zeek_cases(corpora)
    assert len(cases) > 90
    assert any("tunnels" in test for test, *_rest in cases)
    for test, trace, rows, _script in cases:
        zeek = {(r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"]))
                for r in rows if r["proto"] == "tcp" and r["history"].startswith("S")}
        ours = {(str(e.client_ip), e.client_port, str(e.server_ip), e.server_port)
                for e in CaptureFile(trace) if isinstance(e, ConnectionOpen)
                and e.evidence is DirectionEvidence.SYN}
        assert ours == zeek, test


@pytest.mark.corpora
def test_every_flow_and_its_direction_match_zeek(corpora: Path) -> None:
    """All TCP and UDP flows, client and server included, for tests without a script; and
    the SCTP associations' ends, which Zeek (no SCTP analyser) logs as `unknown_transport`
    connections of IP protocol 132 without ports."""
    cases = [c for c in _zeek_cases(corpora) if not c[3]]
    assert len(cases) > 15
    sctp_seen = 0
    for test, trace, rows, _script in cases:
        zeek = {(r["id.orig_h"], int(r["id.orig_p"]), r["id.resp_h"], int(r["id.resp_p"]),
                 r["proto"]) for r in rows if r["proto"] in ("tcp", "udp")}
        zeek_sctp = {(r["id.orig_h"], r["id.resp_h"]) for r in rows
                     if r["proto"] == "unknown_transport" and r.get("ip_proto") == "132"}
        events = [e for e in CaptureFile(trace) if isinstance(e, ConnectionOpen)]
        ours = {(str(e.client_ip), e.client_port, str(e.server_ip), e.server_port,
                 e.protocol.value.lower())
                for e in events if e.protocol is not Protocol.SCTP}
        ours_sctp = {(str(e.client_ip), str(e.server_ip))
                     for e in events if e.protocol is Protocol.SCTP}
        assert ours == zeek, test
        assert ours_sctp == zeek_sctp, test
        sctp_seen += len(ours_sctp)
    assert sctp_seen > 0


# tcpdump's one-line DNS decode of a response: "SERVER.53 > CLIENT.PORT: ID<flags> an/ns/ar"
# (after the TCP flags and length for DNS over TCP).
TCPDUMP_RESPONSE = re.compile(
    r"^\s*\d+\s+\S+ \S+ IP6? (\S+)\.53 > (\S+)\.(\d+): "
    r"(?:Flags \[[^\]]*\],.*? length \d+:? )?(\d+)[*\-|$!+^%]*(?: \[[^\]]*\])* (\d+)/\d+/\d+"
)


@pytest.mark.corpora
def test_dns_answers_match_tcpdump_decodes(corpora: Path) -> None:
    """tcpdump's test suite (default verbosity, no options): the same responses carry
    answers, from the same server to the same client port, with the same DNS ids."""
    base = corpora / "tcpdump-tests"
    checked = answers = 0
    for line in (base / "TESTLIST").read_text().splitlines():
        fields = line.split()
        if len(fields) != 3 or not (base / "expected_out" / fields[2]).exists():
            continue
        expected: Counter[tuple[str, str, int, int]] = Counter()
        for out in (base / "expected_out" / fields[2]).read_text().splitlines():
            match = TCPDUMP_RESPONSE.match(out)
            if match and int(match.group(5)) > 0:
                server, client, port, qid = match.group(1, 2, 3, 4)
                expected[(server, client, int(port), int(qid))] += 1
        ours = Counter(
            (str(e.server_ip), str(e.client_ip), e.client_port,
             int.from_bytes(e.payload[:2], "big"))
            for e in CaptureFile(base / "pcaps" / fields[1]) if isinstance(e, DnsPayload)
        )
        assert ours == expected, fields[0]
        checked += 1
        answers += ours.total()
    assert checked >= 10 and answers >= 20
