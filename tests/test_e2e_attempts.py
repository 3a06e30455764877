"""Issue 13 end to end on real packets: the `attempts` testbed scenario (a six-port scan,
closed ports answered with RST, an external address whose packets a firewall drops, a UDP
port answered with ICMP port unreachable, beside traffic that completes). From the
capture, from a capture that began mid-connection, and from an agent summary built by the
agent's kernel filter and decoder: no attempt is allowed, each is reported (the scan as
one finding), every completed connection is still allowed."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import IP, TCP
from scapy.utils import PcapReader, PcapWriter

from discover.flows.flowtable import FlowTable
from discover.flows.summary import SummaryMeta, read_summary, write_summary
from discover.reading.dns_wire import DnsDecoder
from discover.reading.packets import DnsPayload, PacketDecoder
from sidecar import bpf
from tests.testbed.pytest_support import REPO, ScenarioRun, cached_run

pytestmark = pytest.mark.root
SLL2_HEADER = 20
Key = tuple[str, str, str, int]


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "discover", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> ScenarioRun:
    return cached_run("attempts", tmp_path_factory.mktemp("testbed"))


def _truth(run: ScenarioRun) -> tuple[set[Key], set[Key]]:
    """(connections that completed, attempts), as the clients' logs say."""
    done: set[Key] = set()
    tried: set[Key] = set()
    for c in run.truth["connections"]:
        if c["purpose"] != "app":
            continue
        key = (c["client"]["ip"], c["server_address"], c["protocol"], c["server_port"])
        (done if c["ok"] else tried).add(key)
    return done, tried


def _analyze(input_path: Path, run: ScenarioRun, out: Path) -> dict[Key, bool]:
    done = _cli("analyze", input_path, "--inventory", run.inventory, "--out", out, "-q")
    assert done.returncode == 0, done.stderr
    checked = _cli("verify", "--policies", out / "policies.yaml", "--flows", out / "flows.csv",
                   "--inventory", run.inventory, "--format", "json")
    return {(v["src_ip"], v["dst_ip"], v["protocol"], v["dst_port"]): v["allowed"]
            for v in json.loads(checked.stdout)}


def _check(verdicts: dict[Key, bool], run: ScenarioRun, out: Path) -> None:
    done, tried = _truth(run)
    assert len(tried) == 10  # six scanned ports, two closed ports, one drop, one UDP
    assert done and not done & tried
    for key in tried:
        assert verdicts.get(key) is False, f"attempt {key} allowed (or not seen)"
    for key in done:
        assert verdicts.get(key) is True, f"completed {key} not allowed"
    report = (out / "report.md").read_text(encoding="utf-8")
    findings = re.findall(r"`attempt-not-allowed` (\S+): attempted, not allowed: (\d+) edge",
                          report)
    assert sorted(findings) == [("web/deployment/frontend", "2"),
                                ("web/deployment/scanner", "6"),
                                ("web/deployment/worker", "2")]


def test_no_attempt_is_allowed_and_each_is_reported(run: ScenarioRun, tmp_path: Path) -> None:
    verdicts = _analyze(run.capture, run, tmp_path / "out")
    _check(verdicts, run, tmp_path / "out")
    outcomes = {line.split(",")[9] for line in
                (tmp_path / "out" / "flows.csv").read_text().splitlines()[1:]}
    assert outcomes == {"completed", "refused", "unanswered"}


def test_allow_attempts_keeps_the_old_behaviour(run: ScenarioRun, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = _cli("analyze", run.capture, "--inventory", run.inventory, "--out", out, "-q",
                "--allow-attempts")
    assert done.returncode == 0, done.stderr
    assert "attempt-not-allowed" not in (out / "report.md").read_text(encoding="utf-8")
    checked = _cli("verify", "--policies", out / "policies.yaml", "--flows", out / "flows.csv",
                   "--inventory", run.inventory)
    assert checked.returncode == 0, checked.stdout


def _completed_tuples(capture: Path) -> set[tuple[str, int, str, int]]:
    """TCP 4-tuples (client first) whose SYN-ACK the capture holds."""
    found = set()
    with PcapReader(str(capture)) as packets:
        for packet in packets:
            if IP in packet and TCP in packet and packet[TCP].flags & 0x12 == 0x12:
                ip, tcp = packet[IP], packet[TCP]
                found.add((ip.dst, tcp.dport, ip.src, tcp.sport))
    return found


def test_a_capture_that_began_mid_connection(run: ScenarioRun, tmp_path: Path) -> None:
    """Every completed connection's SYN and SYN-ACK are cut out, as if it was set up before
    the capture began; the attempts are kept whole (they came after)."""
    completed = _completed_tuples(run.capture)
    assert completed
    cut = tmp_path / "mid.pcap"
    writer = PcapWriter(str(cut), sync=False)
    with PcapReader(str(run.capture)) as packets:
        for packet in packets:
            if IP in packet and TCP in packet and packet[TCP].flags & 0x02:
                ip, tcp = packet[IP], packet[TCP]
                if ((ip.src, tcp.sport, ip.dst, tcp.dport) in completed
                        or (ip.dst, tcp.dport, ip.src, tcp.sport) in completed):
                    continue
            writer.write(packet)
    writer.close()
    verdicts = _analyze(cut, run, tmp_path / "out")
    _check(verdicts, run, tmp_path / "out")
    text = (tmp_path / "out" / "flows.csv").read_text()
    assert re.search(r",TCP,5432,\d+,\d+,[^,]+,[^,]+,inferred,completed", text)


def test_the_agent_filter_and_decoder_give_the_same(run: ScenarioRun, tmp_path: Path) -> None:
    """The capture's packets through the agent's kernel filter (attached to a socket, run
    by the kernel) and its decoder, written as an agent summary, then analyzed."""
    sender, receiver = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    bpf.attach(receiver, bpf.compile_expression(bpf.filter_expression((9808,))))
    receiver.setblocking(False)
    times: list[float] = []
    frames: list[bytes] = []
    total = 0
    with sender, receiver, PcapReader(str(run.capture)) as packets:
        for packet in packets:
            total += 1
            sender.send(bytes(packet)[SLL2_HEADER:])
            try:
                frames.append(receiver.recv(65536))
                times.append(float(packet.time))
            except BlockingIOError:
                pass  # the filter kept it out of Python
    assert 0 < len(frames) < total
    decoder, dns, table = PacketDecoder(), DnsDecoder(), FlowTable()
    events: list[Any] = decoder.decode(101, times, frames)
    for event in events:
        if isinstance(event, DnsPayload):
            answer = dns.decode(event)
            if answer is not None:
                table.add(answer)
        else:
            table.add(event)
    summary = tmp_path / "summary.json"
    meta = SummaryMeta.for_agent(node_name="testbed-node-1", interface="any",
                                 window_start=min(times), window_end=max(times), counters={})
    write_summary(table, meta, summary)
    assert read_summary(summary)[0].edge_count == table.edge_count
    verdicts = _analyze(summary, run, tmp_path / "out")
    _check(verdicts, run, tmp_path / "out")
