"""The agent for real, in network namespaces this module creates: two test hosts on a
veth pair, an HTTP server and dnsmasq on one, traffic from the other, the agent
(`python -m discover.cli agent`) capturing on the server host's interface."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discover.cli import main
from discover.flows.summary import read_summary
from sidecar.netns import HostPair, TestHost

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parent.parent
SUBNET = 231  # 10.244.231.0/24, 2001:db8:231::/64: this module's own
HTTP_PORT = 8080
UDP_PORT = 5000
AGENT = "127.0.0.1:9808"  # inside the server host: probes and scrapes stay on its loopback


@pytest.fixture(scope="module")
def hosts() -> Iterator[HostPair]:
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    if not Path(dnsmasq).exists():
        pytest.skip("needs dnsmasq (Debian package dnsmasq-base)")
    with HostPair("npdagent", SUBNET) as pair:
        server = pair.server
        daemons = [
            server.popen(
                [sys.executable, "-m", "http.server", str(HTTP_PORT), "--bind", "::"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
            server.popen(
                [dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv",
                 "--no-hosts", "--user=root", "--pid-file=", "--bind-interfaces",
                 f"--listen-address={server.ipv4}", "--port=53", "--local-ttl=30",
                 "--host-record=api.test.example,192.0.2.10",
                 "--cname=alias.test.example,api.test.example"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ),
        ]  # fmt: skip
        try:
            _wait_for(lambda: _tcp_open(pair.client, str(server.ipv4), HTTP_PORT), "http server")
            _wait_for(lambda: _tcp_open(pair.client, str(server.ipv4), 53), "dnsmasq")
            yield pair
        finally:
            for daemon in daemons:
                daemon.kill()
                daemon.wait()


def _tcp_open(host: TestHost, address: str, port: int) -> bool:
    code = f"import socket; socket.create_connection(({address!r}, {port}), timeout=1).close()"
    return host.run([sys.executable, "-c", code], check=False).returncode == 0


def _wait_for(condition: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class RunningAgent:
    def __init__(self, host: TestHost, state_dir: Path, *extra: str) -> None:
        self.host = host
        self.state_dir = state_dir
        self.log = state_dir.parent / f"{state_dir.name}-agent.log"
        argv = [sys.executable, "-m", "discover.cli", "agent", "--interface", host.interface,
                "--state-dir", str(state_dir), "--listen", AGENT, "--node-name", "test-node",
                # Exact flow sets below: no connections of other namespaces on this machine
                # (test_sidecar_established.py covers the socket-table reads).
                "--established-interval", "0", *extra]  # fmt: skip
        with self.log.open("ab") as log:
            self.process = host.popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        _wait_for(lambda: self.get("/healthz")[0] == 200, "the agent's /healthz")

    def get(self, path: str) -> tuple[int, str]:
        status, body = self.host.http_get(f"http://{AGENT}{path}", timeout=5)
        if self.process.poll() is not None and status == 0:
            raise AssertionError(f"agent exited {self.process.returncode}: {self.log.read_text()}")
        return status, body

    def summary(self) -> dict[str, Any]:
        status, body = self.get("/summary")
        assert status == 200
        document: dict[str, Any] = json.loads(body)
        return document

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=20)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def agents() -> Iterator[list[RunningAgent]]:
    started: list[RunningAgent] = []
    try:
        yield started
    finally:
        for agent in started:
            agent.kill()


def traffic(pair: HostPair, *, http: int = 0, http6: int = 0, udp: int = 0, dns_udp: str = "",
            dns_tcp: str = "", udp_ports: range | None = None) -> None:  # fmt: skip
    """Real connections from the client host to the server host."""
    server4, server6 = str(pair.server.ipv4), str(pair.server.ipv6)
    code = f"""
import socket, urllib.request
import dns.message, dns.query
opener = urllib.request.build_opener(urllib.request.ProxyHandler({{}}))
for _ in range({http}):
    opener.open("http://{server4}:{HTTP_PORT}/", timeout=5).read()
for _ in range({http6}):
    opener.open("http://[{server6}]:{HTTP_PORT}/", timeout=5).read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range({udp}):
    s.sendto(b"datagram %d" % i, ("{server4}", {UDP_PORT}))
for port in {list(udp_ports or [])!r}:
    s.sendto(b"burst", ("{server4}", port))
if {dns_udp!r}:
    r = dns.query.udp(dns.message.make_query({dns_udp!r}, "A"), "{server4}", timeout=5)
    assert r.answer, r
if {dns_tcp!r}:
    r = dns.query.tcp(dns.message.make_query({dns_tcp!r}, "A"), "{server4}", timeout=5)
    assert r.answer, r
"""
    pair.client.python(code)


def _edges(document: dict[str, Any]) -> set[tuple[str, str, str, int, int, str]]:
    return {
        (f["src_ip"], f["dst_ip"], f["protocol"], f["dst_port"], f["connections"], f["direction"])
        for f in document["flows"]
    }


def _dns(document: dict[str, Any]) -> set[tuple[str, str, str, tuple[str, ...], str]]:
    return {
        (d["client_ip"], d["name"], d["address"], tuple(d["cname_chain"]), d["server_ip"])
        for d in document["dns"]
    }


def _checkpoint(state_dir: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((state_dir / "summary.json").read_text())
    return document


def test_summary_has_exactly_the_traffic_and_sigterm_flushes_it(
    hosts: HostPair, agents: list[RunningAgent], tmp_path: Path
) -> None:
    # A checkpoint interval far longer than the test: only SIGTERM can write the traffic.
    agent = RunningAgent(hosts.server, tmp_path / "state", "--checkpoint-interval", "3600")
    agents.append(agent)
    before = _checkpoint(agent.state_dir)  # the first checkpoint is written at start
    assert before["flows"] == [] and before["dns"] == []

    traffic(hosts, http=3, http6=1, udp=2, dns_udp="api.test.example",
            dns_tcp="alias.test.example")  # fmt: skip

    c4, s4 = str(hosts.client.ipv4), str(hosts.server.ipv4)
    c6, s6 = str(hosts.client.ipv6), str(hosts.server.ipv6)
    expected_edges = {
        (c4, s4, "TCP", HTTP_PORT, 3, "syn"),
        (c6, s6, "TCP", HTTP_PORT, 1, "syn"),
        (c4, s4, "UDP", UDP_PORT, 1, "udp-first"),
        (c4, s4, "UDP", 53, 1, "udp-first"),
        (c4, s4, "TCP", 53, 1, "syn"),
    }
    expected_dns = {
        (c4, "api.test.example", "192.0.2.10", (), s4),
        (c4, "alias.test.example", "192.0.2.10", ("api.test.example",), s4),
    }
    _wait_for(lambda: _edges(agent.summary()) == expected_edges, "the edges in /summary")
    served = agent.summary()
    assert _dns(served) == expected_dns
    assert served["agent"]["node"] == "test-node" and served["agent"]["interface"] == "veth0"

    status, metrics = agent.get("/metrics")
    assert status == 200
    values = dict(
        line.split(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#")
    )
    assert values["netpol_discover_edges"] == "5"
    assert values["netpol_discover_dns_answers"] == "2"
    assert int(values["netpol_discover_packets_total"]) >= 12
    assert values["netpol_discover_kernel_drops_total"] == "0"
    assert values["netpol_discover_parse_errors_total"] == "0"
    assert values["netpol_discover_window_open"] == "1"
    assert float(values["netpol_discover_checkpoint_age_seconds"]) >= 0

    assert _checkpoint(agent.state_dir)["flows"] == []  # not yet written...
    assert agent.stop() == 0
    flushed = _checkpoint(agent.state_dir)  # ...until SIGTERM
    assert _edges(flushed) == expected_edges
    assert _dns(flushed) == expected_dns
    table, meta = read_summary(agent.state_dir / "summary.json")  # what `analyze` reads
    assert table.edge_count == 5 and meta.node_name == "test-node"

    # The checkpoint is an INPUT like a capture: `flows` turns it into the same rows.
    flows_csv = tmp_path / "flows.csv"
    assert main(["flows", str(agent.state_dir / "summary.json"), "-o", str(flows_csv), "-q"]) == 0
    with flows_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["src_ip"], r["dst_ip"], r["protocol"], int(r["dst_port"])) for r in rows} == {
        edge[:4] for edge in expected_edges
    }


def test_kill_9_loses_nothing_before_the_last_checkpoint_and_restart_resumes(
    hosts: HostPair, agents: list[RunningAgent], tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = RunningAgent(hosts.server, state, "--checkpoint-interval", "0.5")
    agents.append(first)
    traffic(hosts, http=2, dns_udp="api.test.example")
    s4 = str(hosts.server.ipv4)
    _wait_for(
        lambda: {(e[1], e[3]) for e in _edges(_checkpoint(state))} == {(s4, HTTP_PORT), (s4, 53)},
        "a checkpoint holding the first traffic",
    )
    checkpointed = _checkpoint(state)
    first.stop(signal.SIGKILL)

    second = RunningAgent(hosts.server, state, "--checkpoint-interval", "0.5")
    agents.append(second)
    resumed = second.summary()
    assert resumed["window"]["start"] == checkpointed["window"]["start"]
    assert _edges(resumed) >= _edges(checkpointed)
    assert _dns(resumed) == _dns(checkpointed)
    assert resumed["counters"]["packets"] >= checkpointed["counters"]["packets"]

    traffic(hosts, http=1, udp=1)
    _wait_for(lambda: (s4, "UDP", UDP_PORT) in {e[1:4] for e in _edges(second.summary())},
              "the second run's traffic")  # fmt: skip
    assert second.stop() == 0
    final = _checkpoint(state)
    by_port = {(e[2], e[3]): e[4] for e in _edges(final)}
    assert by_port[("TCP", HTTP_PORT)] == 3  # 2 before the crash + 1 after
    assert by_port[("UDP", UDP_PORT)] == 1 and ("UDP", 53) in by_port
    assert final["window"]["start"] == checkpointed["window"]["start"]


def test_a_udp_burst_from_one_client_is_bounded_counted_and_leaves_tcp_its_room(
    hosts: HostPair, agents: list[RunningAgent], tmp_path: Path
) -> None:
    # --max-edges 40: UDP gets 10 of them, one client 1 of those (issue 15 item 7).
    agent = RunningAgent(hosts.server, tmp_path / "state", "--max-edges", "40")
    agents.append(agent)
    traffic(hosts, udp_ports=range(20000, 20100))  # 100 distinct edges from one client
    _wait_for(lambda: agent.summary()["counters"].get("edges_dropped", 0) >= 99, "the drops")
    traffic(hosts, http=2, http6=1)  # TCP after the burst
    c4, s4 = str(hosts.client.ipv4), str(hosts.server.ipv4)
    _wait_for(lambda: (c4, s4, "TCP", HTTP_PORT) in {e[:4] for e in _edges(agent.summary())},
              "the TCP connections after the burst")  # fmt: skip
    _wait_for(lambda: len(agent.summary()["flows"]) == 3, "the IPv6 connection")
    document = agent.summary()
    assert sorted((f["protocol"], f["src_ip"]) for f in document["flows"]) == sorted(
        [("TCP", c4), ("TCP", str(hosts.client.ipv6)), ("UDP", c4)]
    )
    # The table counts refused events (a UDP flow start is an open and a packet count).
    counters = document["counters"]
    dropped = counters["edges_dropped"]
    assert 99 <= dropped <= 200
    assert counters["edges_dropped_udp"] == counters["udp_edges_dropped_per_source"] == dropped
    assert counters["edges_dropped_tcp"] == counters["edges_dropped_sctp"] == 0
    status, metrics = agent.get("/metrics")
    assert "netpol_discover_edges 3\n" in metrics + "\n"
    assert "netpol_discover_udp_edges 1\n" in metrics + "\n"
    assert f"netpol_discover_edges_dropped_total {dropped}\n" in metrics
    assert f"netpol_discover_edges_dropped_udp_total {dropped}\n" in metrics
    assert f"netpol_discover_udp_edges_dropped_per_source_total {dropped}\n" in metrics
    assert "netpol_discover_edges_dropped_tcp_total 0\n" in metrics
    # No labels (no addresses, no names): the budgets' counters don't map the cluster.
    budget_lines = [line for line in metrics.splitlines()
                    if line.startswith(("netpol_discover_edges", "netpol_discover_udp_edges"))]
    assert len(budget_lines) == 7 and not any("{" in line for line in budget_lines)
    assert agent.stop() == 0
    assert _checkpoint(agent.state_dir)["counters"]["edges_dropped_udp"] == dropped


def test_window_end_writes_the_summary_and_exits_when_asked(
    hosts: HostPair, agents: list[RunningAgent], tmp_path: Path
) -> None:
    agent = RunningAgent(hosts.server, tmp_path / "state", "--duration", "3s",
                         "--exit-after-window")  # fmt: skip
    agents.append(agent)
    traffic(hosts, http=1)
    assert agent.process.wait(timeout=20) == 0
    document = _checkpoint(agent.state_dir)
    assert {(e[2], e[3]) for e in _edges(document)} == {("TCP", HTTP_PORT)}
    table, meta = read_summary(agent.state_dir / "summary.json")
    assert meta.window_start is not None and meta.window_end is not None
    assert (meta.window_end - meta.window_start).total_seconds() == pytest.approx(3, abs=0.2)

    # Restarted after its window: nothing is captured any more, the summary is served.
    again = RunningAgent(hosts.server, agent.state_dir, "--duration", "3s")
    agents.append(again)
    traffic(hosts, udp=1)
    status, health = again.get("/healthz")
    assert (status, health) == (200, "window over, serving\n")
    assert _edges(again.summary()) == _edges(document)
    assert again.stop() == 0


def test_inventory_watch_runs_beside_capture_and_is_served(tmp_path: Path) -> None:
    """In-process agent on the loopback interface with the inventory watch pointed at the
    fake API server of tests/fakeapi.py (loopback too): /inventory and its metrics."""
    import threading
    import urllib.request

    from sidecar.agent import Agent, AgentOptions
    from tests.fakeapi import FakeApi, objects_of, serve, write_kubeconfig

    data = REPO / "tests" / "data" / "inventory" / "cluster.json"
    with serve(FakeApi(objects_of(data))) as url:
        options = AgentOptions(
            state_dir=tmp_path / "state", interface="lo", listen_host="127.0.0.1",
            listen_port=0, checkpoint_interval=0.5, inventory_watch=True,
            kubeconfig=str(write_kubeconfig(tmp_path / "kc", url)), node_name="n1",
        )  # fmt: skip
        agent = Agent(options)
        thread = threading.Thread(target=agent.run, kwargs={"install_signals": False})
        thread.start()
        try:
            _wait_for(lambda: getattr(agent, "listen_port", 0) != 0, "the HTTP server")
            base = f"http://127.0.0.1:{agent.listen_port}"

            def inventory_served() -> bool:
                try:
                    with urllib.request.urlopen(base + "/inventory", timeout=5) as response:
                        return bool(json.loads(response.read())["items"])
                except OSError:
                    return False

            _wait_for(inventory_served, "/inventory")
            with urllib.request.urlopen(base + "/metrics", timeout=5) as response:
                metrics = response.read().decode()
            assert "netpol_discover_inventory_lists_total 1" in metrics
            assert "netpol_discover_inventory_errors_total 0" in metrics
            with urllib.request.urlopen(base + "/healthz", timeout=5) as response:
                assert response.status == 200
        finally:
            agent.stop()
            thread.join(timeout=20)
    assert not thread.is_alive()
    written = json.loads((tmp_path / "state" / "inventory.json").read_text())
    assert {i["kind"] for i in written["items"]} >= {"Pod", "Service", "Namespace"}
    assert (tmp_path / "state" / "summary.json").exists()


def test_a_failed_checkpoint_is_retried_and_capture_goes_on(
    hosts: HostPair, agents: list[RunningAgent], tmp_path: Path
) -> None:
    agent = RunningAgent(hosts.server, tmp_path / "state", "--checkpoint-interval", "0.5")
    agents.append(agent)
    checkpoint = agent.state_dir / "summary.json"
    checkpoint.unlink()
    checkpoint.mkdir()  # a directory in the way: the rename onto it fails
    (checkpoint / "blocker").write_text("")

    def failures() -> int:
        metrics = agent.get("/metrics")[1]
        line = next(x for x in metrics.splitlines() if x.startswith("netpol_discover_checkpoint_e"))
        return int(line.split()[1])

    _wait_for(lambda: failures() >= 2, "failed checkpoints to be counted")
    traffic(hosts, http=1)
    _wait_for(lambda: len(agent.summary()["flows"]) == 1, "capture going on")
    (checkpoint / "blocker").unlink()
    checkpoint.rmdir()
    _wait_for(lambda: checkpoint.is_file(), "the next checkpoint")
    assert len(_checkpoint(agent.state_dir)["flows"]) == 1
    assert agent.stop() == 0
