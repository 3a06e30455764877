"""sidecar/established.py: socket tables parsed from recorded bytes, the listener rule for
direction, the once-only accounting, and (as root) a real connection in a real namespace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from pathlib import Path

import pytest

from discover.flows.events import ConnectionOpen, DirectionEvidence, Outcome, Protocol
from discover.flows.flowtable import FlowTable
from discover.flows.summary import SummaryMeta, summary_from_dict, summary_to_dict
from sidecar.established import (
    TCP_ESTABLISHED,
    TCP_LISTEN,
    ConnectionKey,
    EstablishedScanner,
    ProcNetError,
    ScanStats,
    SocketEntry,
    established_connections,
    parse_proc_net_tcp,
)
from sidecar.netns import HostPair

DATA = Path(__file__).parent / "data" / "proc_net"
HOST = IPv4Address("10.99.0.1")
HOST6 = IPv6Address("2001:db8:99::1")


def _recorded() -> list[SocketEntry]:
    entries = []
    for name in ("tcp", "tcp6"):
        entries += parse_proc_net_tcp((DATA / name).read_text(), name, byteorder="little")
    return entries


def test_parse_recorded_tables() -> None:
    tcp = parse_proc_net_tcp((DATA / "tcp").read_text(), "tcp", byteorder="little")
    assert tcp[0] == SocketEntry(HOST, 5432, IPv4Address("0.0.0.0"), 0, TCP_LISTEN)
    assert tcp[2] == SocketEntry(HOST, 56277, HOST, 5432, TCP_ESTABLISHED)
    tcp6 = parse_proc_net_tcp((DATA / "tcp6").read_text(), "tcp6", byteorder="little")
    assert tcp6[0] == SocketEntry(IPv6Address("::"), 8443, IPv6Address("::"), 0, TCP_LISTEN)
    # A dual-stack listener's IPv4 connection: IPv4 again, as the wire has it.
    assert tcp6[1] == SocketEntry(HOST, 8443, HOST, 38521, TCP_ESTABLISHED)
    assert tcp6[2] == SocketEntry(HOST6, 35535, HOST6, 8443, TCP_ESTABLISHED)


def test_big_endian_words_read_back() -> None:
    line = "   0: 0A630001:1538 0A630002:D431 01 0 0 0 0 0 1\n"
    (entry,) = parse_proc_net_tcp("header\n" + line, byteorder="big")
    assert (entry.local_ip, entry.remote_ip) == (HOST, IPv4Address("10.99.0.2"))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("   0: 0100630A:1538\n", "expected at least 4 fields"),
        ("   0: 0100630A 00000000:0000 0A x\n", "expected ADDRESS:PORT"),
        ("   0: 0100630A:1538 00000000:0000 ZZ x\n", "invalid literal"),
        ("   0: 01006:1538 00000000:0000 0A x\n", "expected ADDRESS:PORT"),
    ],
)
def test_bad_line_names_the_file_and_line(line: str, reason: str) -> None:
    with pytest.raises(ProcNetError, match=rf"^/proc/7/net/tcp: line 3: .*{reason}"):
        parse_proc_net_tcp("header\n\n" + line, "/proc/7/net/tcp")


def test_direction_from_listeners_and_both_ends_give_one_key() -> None:
    found = established_connections(_recorded())
    assert sorted(set(found), key=str) == sorted(
        {
            (HOST, 56277, HOST, 5432),  # listener on its own address
            (HOST, 38521, HOST, 8443),  # listener on :: (IPv4-mapped)
            (HOST6, 35535, HOST6, 8443),
        },
        key=str,
    )
    assert len(found) == 6  # each of the three seen from both of its ends
    assert not any(key[0].is_loopback for key in found)  # rows 4-6 are loopback


def test_no_listener_means_the_local_end_is_the_client() -> None:
    pod, server = IPv4Address("10.244.1.5"), IPv4Address("10.96.0.1")
    entries = [SocketEntry(pod, 41000, server, 443, TCP_ESTABLISHED)]
    assert established_connections(entries) == [(pod, 41000, server, 443)]


def _key(client_port: int, server: str = "10.244.2.7") -> ConnectionKey:
    return (IPv4Address("10.244.1.5"), client_port, IPv4Address(server), 5432)


def _open(key: ConnectionKey) -> ConnectionOpen:
    client, cport, server, sport = key
    return ConnectionOpen(1.0, client, cport, server, sport, Protocol.TCP, DirectionEvidence.SYN)


def test_accounting_reports_each_connection_once() -> None:
    scanner = EstablishedScanner()
    old = _key(40001)
    seen, late, brief, racing = (_key(40002 + i, f"10.244.3.{i}") for i in range(4))
    scanner.note_opened([_open(seen)])
    # Start-up: everything alive predates the window, except what the capture saw open.
    first = scanner.account({old, seen}, 10.0, ScanStats())
    assert [(e.client_port, e.evidence, e.time) for e in first] == [
        (40001, DirectionEvidence.ESTABLISHED, 10.0)
    ]
    # New since then: held until the next scan confirms the capture never saw it open.
    assert scanner.account({old, seen, late, brief, racing}, 20.0, ScanStats()) == []
    scanner.note_opened([_open(racing)])  # its SYN decoded a batch late
    third = scanner.account({old, seen, late, racing}, 30.0, ScanStats())
    assert [e.client_port for e in third] == [40003]  # not `brief` (closed), not `racing`
    assert scanner.account({old, seen, late, racing}, 40.0, ScanStats()) == []
    assert scanner.reported_total == 2


def test_a_captured_set_up_covers_its_edge_for_two_intervals() -> None:
    scanner = EstablishedScanner()
    scanner.account(set(), 0.0, ScanStats())
    scanner.note_opened([_open(_key(40100))])
    # Another connection of that edge, missed by the capture: taken for the captured one.
    assert scanner.account({_key(40101)}, 10.0, ScanStats()) == []
    assert scanner.account({_key(40101)}, 20.0, ScanStats()) == []
    # Two quiet intervals later the edge's set-up is forgotten: a new one is reported.
    assert scanner.account({_key(40101), _key(40102)}, 30.0, ScanStats()) == []
    (event,) = scanner.account({_key(40101), _key(40102)}, 40.0, ScanStats())
    assert event.client_port == 40102


def test_set_ups_are_forgotten_once_two_scans_have_passed_them() -> None:
    scanner = EstablishedScanner()
    scanner.note_opened([_open(_key(p)) for p in range(41000, 41100)])
    assert len(scanner._opened) == 1  # one edge, whatever the number of set-ups
    scanner.account(set(), 10.0, ScanStats())
    scanner.account(set(), 20.0, ScanStats())
    assert scanner._opened == set() and scanner._opened_before == set()


def _fake_proc(root: Path, namespaces: dict[str, str], pids: dict[str, str]) -> None:
    """pid -> namespace: a namespace's tables are one file hard-linked into each of its
    pids, so their inodes agree like /proc's do."""
    tables = root / "tables"
    for name, text in namespaces.items():
        (tables / name).mkdir(parents=True)
        (tables / name / "tcp").write_text(text)
    for pid, name in pids.items():
        (root / pid / "net").mkdir(parents=True)
        os.link(tables / name / "tcp", root / pid / "net" / "tcp")
    (root / "self").mkdir()


def test_one_read_per_namespace(tmp_path: Path) -> None:
    header = "  sl  local_address rem_address   st\n"

    def end(address: str, port: int) -> str:
        value = int.from_bytes(ip_address(address).packed, sys.byteorder)  # as the kernel
        return f"{value:08X}:{port:04X}"

    def row(local: str, lport: int, remote: str, rport: int, state: str) -> str:
        return f"   0: {end(local, lport)} {end(remote, rport)} {state} x\n"

    pod_a = header + row("10.244.1.5", 40000, "10.244.2.7", 5432, "01")
    pod_b = (
        header
        + row("10.244.2.7", 5432, "0.0.0.0", 0, "0A")
        + row("10.244.2.7", 5432, "10.244.1.5", 40000, "01")
    )
    _fake_proc(tmp_path, {"a": pod_a, "b": pod_b, "bad": "h\n 0: nonsense x y\n"},
               {"1": "a", "17": "a", "23": "b", "99": "bad"})  # fmt: skip
    scanner = EstablishedScanner(tmp_path)
    stats = ScanStats()
    tables = scanner.read_tables(stats)
    assert [len(t) for t in tables] == [1, 2, 0]  # pids 1 and 17 share one namespace
    assert stats.namespaces == 3 and stats.sockets == 3
    assert stats.errors and "99/net/tcp: line 2" in stats.errors[0]
    events = scanner.scan(100.0)
    assert [(str(e.client_ip), e.client_port, str(e.server_ip), e.server_port) for e in events] \
        == [("10.244.1.5", 40000, "10.244.2.7", 5432)]  # fmt: skip


def test_missing_proc_is_an_error_not_a_crash(tmp_path: Path) -> None:
    stats = ScanStats()
    assert EstablishedScanner(tmp_path / "none").read_tables(stats) == []
    assert "none" in stats.errors[0]


@pytest.mark.root
def test_real_connection_opened_before_the_scan() -> None:
    """A connection between two namespaces, found from /proc by an unprivileged reader
    would be the same: the kernel checks no capability for /proc/<pid>/net."""
    with HostPair("npdestab", 236) as pair:
        server = pair.server.popen(
            [sys.executable, "-c", _LISTEN, str(pair.server.ipv4)], stdout=subprocess.PIPE
        )
        client = pair.client.popen(
            [sys.executable, "-c", _CONNECT, str(pair.server.ipv4)], stdout=subprocess.PIPE
        )
        try:
            assert client.stdout is not None
            port = int(client.stdout.readline())
            events = EstablishedScanner().scan(time.time())
        finally:
            for process in (client, server):
                process.kill()
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
    key = (pair.client.ipv4, port, pair.server.ipv4, 5432)
    mine = [e for e in events if (e.client_ip, e.client_port, e.server_ip, e.server_port) == key]
    assert len(mine) == 1 and mine[0].evidence is DirectionEvidence.ESTABLISHED
    # No event for the other end, turned around.
    assert not [e for e in events if e.server_ip == pair.client.ipv4 and e.server_port == port]


_LISTEN = """
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5432)); s.listen(); conn, _ = s.accept(); time.sleep(60)
"""
_CONNECT = """
import socket, sys, time
for _ in range(100):
    try:
        c = socket.create_connection((sys.argv[1], 5432), timeout=1); break
    except OSError:
        time.sleep(0.1)
print(c.getsockname()[1], flush=True); time.sleep(60)
"""


def test_an_established_edge_is_completed_and_survives_a_summary() -> None:
    table = FlowTable()
    client, cport, server, sport = _key(40200)
    table.add(ConnectionOpen(5.0, client, cport, server, sport, Protocol.TCP,
                             DirectionEvidence.ESTABLISHED))  # fmt: skip
    (row,) = table.flow_rows()
    assert (row.direction, row.outcome, row.connections) == (
        DirectionEvidence.ESTABLISHED,
        Outcome.COMPLETED,
        1,
    )
    document = summary_to_dict(table, SummaryMeta())
    assert document["flows"][0]["direction"] == "established"
    (back,) = summary_from_dict(document, "summary.json")[0].flow_rows()
    assert back == row
    # A set-up seen later on the same edge: one edge, its best evidence.
    table.add(ConnectionOpen(6.0, client, cport + 1, server, sport, Protocol.TCP,
                             DirectionEvidence.SYN))  # fmt: skip
    (row,) = table.flow_rows()
    assert (row.direction, row.connections) == (DirectionEvidence.SYN, 2)
