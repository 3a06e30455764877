"""`collect` against a small HTTP server on 127.0.0.1 that speaks the API server's paths
(pod list, pod port-forward over the websocket channel protocol), through the real
kubernetes client and a kubeconfig pointing at it. Behind each forward is the real agent
HTTP server on loopback (what the kubelet dials in the pod's network namespace). One agent
answers, one refuses (nothing listens), one is Pending, one sends junk, one is also asked
for its inventory."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from discover.cli import main
from discover.flows.events import (
    ConnectionOpen,
    DirectionEvidence,
    DnsAnswer,
    DnsRecordAddress,
    Protocol,
)
from discover.flows.flowtable import FlowTable
from discover.flows.summary import SummaryMeta, read_summary, summary_to_dict
from sidecar.server import AgentServer
from tests.fake_portforward import serve_portforward

NS = "netpol-discover"
SELECTOR = "app.kubernetes.io/name=netpol-discover"
TOKEN = "test-token-123"


def _summary(node: str, server: str, port: int, start: float) -> dict[str, Any]:
    table = FlowTable()
    table.add(ConnectionOpen(start + 1, ip_address("10.244.1.5"), 40000, ip_address(server),
                             port, Protocol.TCP, DirectionEvidence.SYN))  # fmt: skip
    table.add(DnsAnswer(start + 2, ip_address("10.244.1.5"), ip_address("10.96.0.10"),
                        "api.example.com", (), (DnsRecordAddress(ip_address("192.0.2.7"), 30),),
                        Protocol.UDP))  # fmt: skip
    meta = SummaryMeta.for_agent(
        node_name=node, interface="any", window_start=start, window_end=start + 100,
        counters={"packets": 10, "kernel_drops": 1}, agent_name=f"agent-{node}",
    )  # fmt: skip
    return summary_to_dict(table, meta)


INVENTORY = {
    "apiVersion": "v1", "kind": "List", "metadata": {},
    "items": [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}],
}  # fmt: skip


def _pod(name: str, node: str, phase: str, ready: bool | None = None) -> dict[str, Any]:
    ready = phase == "Running" if ready is None else ready
    return {
        "metadata": {"name": name, "namespace": NS, "labels": {"app.kubernetes.io/name": NS}},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "x"}]},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


class Agent:
    """What one agent serves; `AgentServer` puts it on a loopback port."""

    def __init__(self, summary: bytes, inventory: bytes | None = None) -> None:
        self.summary = summary
        self.inventory = inventory

    def summary_json(self) -> bytes:
        return self.summary

    def health(self) -> tuple[bool, str]:
        return True, "capturing"

    def metrics_text(self) -> str:
        return ""

    def inventory_json(self) -> bytes | None:
        return self.inventory


class FakeApiServer:
    """Answers GET /api/v1/namespaces/NS/pods and .../pods/NAME/portforward?ports=PORT
    (forwarded to the pod's agent on 127.0.0.1; refused when it has none)."""

    def __init__(self, pods: list[dict[str, Any]], agents: dict[str, Agent]) -> None:
        self.pods = pods
        self.servers = {name: AgentServer(agent, "127.0.0.1", 0)
                        for name, agent in agents.items()}  # fmt: skip
        self.agents = agents
        self.forbidden: set[str] = set()  # pods whose port-forward RBAC refuses
        self.requests: list[str] = []
        self.unauthorized = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    fake.unauthorized += 1
                    return self._send(401, {"kind": "Status", "code": 401})
                url = urlsplit(self.path)
                parts = [unquote(part) for part in url.path.strip("/").split("/")]
                query = parse_qs(url.query)
                if parts[:3] == ["api", "v1", "namespaces"] and parts[4:] == ["pods"]:
                    selector = query.get("labelSelector", [""])[0]
                    items = [p for p in fake.pods if selector == SELECTOR and parts[3] == NS]
                    return self._send(200, {"kind": "PodList", "apiVersion": "v1",
                                            "metadata": {}, "items": items})  # fmt: skip
                if len(parts) == 7 and parts[4] == "pods" and parts[6] == "portforward":
                    pod = parts[5]
                    if pod in fake.forbidden:
                        return self._send(403, {
                            "kind": "Status", "code": 403, "reason": "Forbidden",
                            "message": f'pods "{pod}" is forbidden: User "test" cannot '
                            f'create resource "pods/portforward" in API group "" in the '
                            f'namespace "{NS}"'})  # fmt: skip
                    port = int(query["ports"][0])
                    server = fake.servers.get(pod)
                    target = server.port if server is not None and port == 9808 else None
                    return serve_portforward(self, port, target, pod)
                return self._send(404, {"kind": "Status", "code": 404})

            def _send(self, status: int, body: dict[str, Any] | bytes) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        for server in self.servers.values():
            server.close()


def _kubeconfig(path: Path, port: int) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "test", "user": {"token": TOKEN}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))  # fmt: skip
    return path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[FakeApiServer, Path]]:
    pods = [
        _pod("agent-a", "node-a", "Running"),
        _pod("agent-b", "node-b", "Running", ready=False),
        _pod("agent-c", "node-c", "Pending"),
        _pod("agent-d", "node-d", "Running"),
        _pod("agent-e", "node-e", "Running"),
    ]
    agents = {  # agent-b: nothing listens on its loopback port
        "agent-a": Agent(json.dumps(_summary("node-a", "10.244.2.9", 8080, 1000.0)).encode()),
        "agent-d": Agent(b"<html>not a summary</html>"),
        "agent-e": Agent(json.dumps(_summary("node-e", "10.244.3.3", 5432, 900.0)).encode(),
                         json.dumps(INVENTORY).encode()),
    }  # fmt: skip
    server = FakeApiServer(pods, agents)
    try:
        yield server, _kubeconfig(tmp_path / "kubeconfig", server.port)
    finally:
        server.close()


def test_collect_merges_the_agents_that_answer_and_reports_the_rest(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, kubeconfig = cluster
    out = tmp_path / "out" / "summary.json"
    code = main(["collect", "--namespace", NS, "-o", str(out), "--kubeconfig", str(kubeconfig),
                 "--context", "test", "--timeout", "5"])  # fmt: skip
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    losses = [w for w in warnings if "may miss connections" in w]
    assert [w.split(": ", 2)[2] for w in losses] == [
        "agent agent-a (node node-a): 1 packets dropped in the kernel (the agent fell behind);"
        " its summary may miss connections",
        "agent agent-e (node node-e): 1 packets dropped in the kernel (the agent fell behind);"
        " its summary may miss connections",
    ]
    warnings = [w for w in warnings if w not in losses]
    assert len(warnings) == 3
    assert "agent-b (node node-b) did not answer: no answer: error forwarding port 9808" \
        in warnings[0]
    assert "dial tcp4 127.0.0.1:9808: connect: connection refused" in warnings[0]
    assert warnings[0].endswith("(pod not Ready)")
    assert "agent-c (node node-c) did not answer: pod is Pending" in warnings[1]
    assert "agent-d (node node-d) did not answer: answer is not JSON" in warnings[2]
    assert server.unauthorized == 0
    assert f"/api/v1/namespaces/{NS}/pods/agent-a/portforward?ports=9808" in map(
        unquote, server.requests
    )
    assert not any("/proxy" in r for r in server.requests)
    assert not any("agent-c" in r for r in server.requests)  # Pending: not even asked

    table, meta = read_summary(out)
    flows = table.flows_frame()
    assert sorted(zip(flows.dst_ip, flows.dst_port, strict=True)) == [
        ("10.244.2.9", 8080), ("10.244.3.3", 5432),
    ]  # fmt: skip
    assert table.dns_row_count == 1  # the same answer on both nodes: one row, two answers
    assert int(table.dns_frame().answers.iloc[0]) == 2
    assert meta.counters["packets"] == 20 and meta.counters["kernel_drops"] == 2
    assert meta.node_name == "node-a,node-e"
    assert meta.window_start is not None and meta.window_start.timestamp() == 900.0
    assert meta.window_end is not None and meta.window_end.timestamp() == 1100.0


def test_collect_writes_the_inventory_of_the_first_agent_that_has_one(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, kubeconfig = cluster
    out, inventory = tmp_path / "summary.json", tmp_path / "inventory.json"
    code = main(["collect", "-n", NS, "-o", str(out), "--inventory-out", str(inventory),
                 "--kubeconfig", str(kubeconfig)])  # fmt: skip
    assert code == 0
    assert json.loads(inventory.read_text()) == INVENTORY
    err = capsys.readouterr().err
    assert "agent agent-a (node node-a) has no inventory" not in err  # found: no noise
    assert "inventory of agent agent-e (node node-e): 1 objects" in err


def test_collect_without_any_inventory_says_so(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, kubeconfig = cluster
    server.agents["agent-e"].inventory = None
    out, inventory = tmp_path / "summary.json", tmp_path / "inventory.json"
    code = main(["collect", "-n", NS, "-o", str(out), "--inventory-out", str(inventory),
                 "--kubeconfig", str(kubeconfig)])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "agent agent-a (node node-a) has no inventory: HTTP 404" in err
    assert "no agent served an inventory" in err
    assert out.exists() and not inventory.exists()


def test_collect_fails_when_no_agent_answers(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, kubeconfig = cluster
    server.forbidden = {"agent-a", "agent-b", "agent-d", "agent-e"}
    out = tmp_path / "summary.json"
    code = main(["collect", "-n", NS, "-o", str(out), "--kubeconfig", str(kubeconfig)])
    assert code == 1
    err = capsys.readouterr().err
    assert err.count("warning") == 5
    assert "none of the 5 agents answered" in err
    assert not out.exists()


def test_collect_with_no_agent_pods_is_an_error(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, kubeconfig = cluster
    code = main(["collect", "-n", "elsewhere", "-o", str(tmp_path / "s.json"),
                 "--kubeconfig", str(kubeconfig)])  # fmt: skip
    assert code == 1
    assert "no agent pods found" in capsys.readouterr().err


def test_unreachable_api_server_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = _kubeconfig(tmp_path / "kc", 9)  # discard port: connection refused
    code = main(["collect", "-n", NS, "-o", str(tmp_path / "s.json"), "--kubeconfig",
                 str(kubeconfig), "--timeout", "2"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("netpol-discover: error: listing pods")


def test_missing_kubeconfig_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["collect", "-n", NS, "-o", str(tmp_path / "s.json"),
                 "--kubeconfig", str(tmp_path / "nope")])  # fmt: skip
    assert code == 1
    assert "kubeconfig" in capsys.readouterr().err


@pytest.mark.parametrize("text", ["garbage: [\n", "- a\n- b\n"])
def test_collect_malformed_kubeconfig_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(text)
    code = main(["collect", "-n", NS, "-o", str(tmp_path / "c.json"),
                 "--kubeconfig", str(kubeconfig)])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"netpol-discover: error: {kubeconfig}: cannot load the cluster "
                          "configuration: ")
    assert err.count("\n") == 1


def test_help_shows_the_timeout_default_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["collect", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--timeout TIMEOUT per agent, seconds (default: 30.0)" in out
    assert ("examples: netpol-discover collect -n netpol-discover -o summary.json "
            "--inventory-out cluster.json") in out


def test_port_forward_refused_by_rbac_is_one_line_naming_the_permission(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, kubeconfig = cluster
    server.forbidden = {"agent-a"}
    code = main(["collect", "-n", NS, "-o", str(tmp_path / "s.json"),
                 "--kubeconfig", str(kubeconfig)])  # fmt: skip
    assert code == 0  # agent-e still answered
    lines = [line for line in capsys.readouterr().err.splitlines() if "agent-a" in line]
    assert lines == [
        "netpol-discover: warning: agent agent-a (node node-a) did not answer: no answer: "
        'HTTP 403 Forbidden: pods "agent-a" is forbidden: User "test" cannot create resource '
        '"pods/portforward" in API group "" in the namespace "netpol-discover"'
    ]


def test_the_agent_data_never_goes_through_the_pod_proxy(
    cluster: tuple[FakeApiServer, Path], tmp_path: Path
) -> None:
    """The API server authenticates a pod-proxy caller and then forwards without its
    credentials: the agent could not tell who asks. Only the port-forward is used."""
    server, kubeconfig = cluster
    out, inventory = tmp_path / "s.json", tmp_path / "i.json"
    assert main(["collect", "-n", NS, "-o", str(out), "--inventory-out", str(inventory),
                 "--kubeconfig", str(kubeconfig)]) == 0  # fmt: skip
    paths = [unquote(urlsplit(r).path) for r in server.requests]
    assert all(p.endswith(("/pods", "/portforward")) for p in paths), paths
    assert server.unauthorized == 0  # every request carried the user's own token
