"""The HTTP endpoint over a real loopback socket, with a small view object behind it."""

from __future__ import annotations

import json
import logging
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from discover.errors import ConfigurationError
from sidecar.metrics import CONTENT_TYPE
from sidecar.server import AgentServer, ListenError, parse_listen


class View:
    def __init__(self) -> None:
        self.healthy = True
        self.summaries = 0

    def summary_json(self) -> bytes:
        self.summaries += 1
        return json.dumps({"kind": "netpol-discover-summary", "n": self.summaries}).encode()

    def health(self) -> tuple[bool, str]:
        return (True, "capturing") if self.healthy else (False, "capture thread not running")

    def metrics_text(self) -> str:
        return "# HELP x y\n# TYPE x counter\nx 1\n"

    def inventory_json(self) -> bytes | None:
        return self.inventory

    inventory: bytes | None = None


@pytest.fixture
def served() -> Iterator[tuple[View, str]]:
    view = View()
    server = AgentServer(view, "127.0.0.1", 0)
    try:
        yield view, f"http://127.0.0.1:{server.port}"
    finally:
        server.close()


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read()


def test_summary_is_the_current_document(served: tuple[View, str]) -> None:
    _, base = served
    status, content_type, body = _get(base + "/summary")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"kind": "netpol-discover-summary", "n": 1}
    assert json.loads(_get(base + "/summary?x=1")[2])["n"] == 2


def test_healthz_follows_the_view(served: tuple[View, str]) -> None:
    view, base = served
    assert _get(base + "/healthz")[::2] == (200, b"capturing\n")
    view.healthy = False
    assert _get(base + "/healthz")[::2] == (503, b"capture thread not running\n")


def test_metrics_has_the_prometheus_content_type(served: tuple[View, str]) -> None:
    _, base = served
    assert _get(base + "/metrics") == (200, CONTENT_TYPE, b"# HELP x y\n# TYPE x counter\nx 1\n")


def test_inventory_is_served_when_there_is_one(served: tuple[View, str]) -> None:
    view, base = served
    status, _, body = _get(base + "/inventory")
    assert status == 404 and b"--inventory-watch" in body
    view.inventory = b'{"kind": "List", "items": []}'
    assert _get(base + "/inventory") == (200, "application/json", view.inventory)


def test_unknown_path_is_404(served: tuple[View, str]) -> None:
    _, base = served
    assert _get(base + "/nope")[0] == 404


def test_port_in_use_is_a_listen_error(served: tuple[View, str]) -> None:
    _, base = served
    port = int(base.rsplit(":", 1)[1])
    with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
        AgentServer(View(), "127.0.0.1", port)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.0.0.0:9808", ("0.0.0.0", 9808)),
        (":9808", ("0.0.0.0", 9808)),
        ("[::]:80", ("::", 80)),
        ("127.0.0.1:0", ("127.0.0.1", 0)),
    ],
)
def test_parse_listen(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9808", "host:", "host:http", "h:70000"])
def test_parse_listen_rejects(text: str) -> None:
    with pytest.raises(ConfigurationError, match="HOST:PORT"):
        parse_listen(text)


# --- hostile clients (issue 15, item 8) ----------------------------------------------


class SlowView(View):
    """/summary blocks until `gate` opens: every worker busy, like a render at the cap."""

    def __init__(self, body: bytes = b"{}") -> None:
        super().__init__()
        self.gate = threading.Event()
        self.body = body

    def summary_json(self) -> bytes:
        self.gate.wait(30)
        return self.body


def _request(port: int, connect_timeout: float, results: list[object]) -> None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=connect_timeout)
    except OSError as error:
        results.append(error)
        return
    with sock:
        sock.settimeout(30)
        sock.sendall(b"GET /summary HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        results.append(data.split(b"\r\n", 1)[0])


def test_100_concurrent_requests_are_all_answered_while_the_workers_are_busy() -> None:
    view = SlowView()
    server = AgentServer(view, "127.0.0.1", 0, workers=4)
    results: list[object] = []
    try:
        threads = [threading.Thread(target=_request, args=(server.port, 1.5, results))
                   for _ in range(100)]  # fmt: skip
        for thread in threads:
            thread.start()
        # All 100 connect while the 4 workers are blocked: the backlog holds the other 96
        # (with the stdlib's backlog of 5 most connects timed out here).
        time.sleep(2.0)
        view.gate.set()
        for thread in threads:
            thread.join(40)
    finally:
        server.close()
    assert results.count(b"HTTP/1.0 200 OK") == 100, [r for r in results if r != b"HTTP/1.0 200 OK"]


def test_idle_connections_are_closed_after_the_timeout_and_hold_no_threads() -> None:
    server = AgentServer(View(), "127.0.0.1", 0, workers=4, timeout=0.5)
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(40)]
    try:
        time.sleep(0.3)
        # A thread a connection would be 40 more; the pool is 4 (+ the accept loop's).
        assert threading.active_count() <= before + 4
        # Each idle client is disconnected (EOF) once its turn's timeout passes; 40
        # connections through 4 workers at 0.5 s each is ~5 s.
        for sock in idle:
            assert sock.recv(1) == b""
        assert _get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200
    finally:
        for sock in idle:
            sock.close()
        server.close()


def test_a_client_gone_mid_response_is_one_log_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    view = SlowView(body=b"x" * (32 << 20))  # far more than the socket buffers hold
    view.gate.set()
    server = AgentServer(view, "127.0.0.1", 0)
    caplog.set_level(logging.DEBUG, logger="sidecar.server")
    try:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /summary HTTP/1.0\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.0 200")
        # Close with a reset (linger 0): the server's next write fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _client_errors(caplog):
            time.sleep(0.05)
        assert _get(f"http://127.0.0.1:{server.port}/healthz")[0] == 200  # still serving
    finally:
        server.close()
    errors = _client_errors(caplog)
    assert len(errors) == 1
    assert errors[0].exc_info is None
    assert "127.0.0.1:" in errors[0].getMessage()
    assert any(name in errors[0].getMessage()
               for name in ("BrokenPipeError", "ConnectionResetError"))  # fmt: skip
    assert "Traceback" not in capsys.readouterr().err


def _client_errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "sidecar.server" and r.levelno >= logging.INFO]  # fmt: skip


# --- who may read what (issue 15, item 2) ----------------------------------------------


def test_the_health_server_refuses_the_cluster_map() -> None:
    view = View()
    view.inventory = b'{"kind": "List", "items": [{"kind": "Pod"}]}'
    server = AgentServer(view, "127.0.0.1", 0, data=False)
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/summary", "/inventory", "/summary?x=1"):
            status, _, body = _get(base + path)
            assert status == 403 and b"port-forward" in body, path
        assert _get(base + "/healthz")[0] == 200
        assert _get(base + "/metrics")[0] == 200
    finally:
        server.close()
    assert view.summaries == 0  # never even rendered


def test_the_agent_serves_its_data_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    from discover.cli import build_parser
    from sidecar.agent import AgentOptions
    from sidecar.server import is_loopback

    assert AgentOptions(state_dir=tmp_path).listen_host == "127.0.0.1"
    args = build_parser().parse_args(["agent"])
    assert args.listen == "127.0.0.1:9808" and args.health_listen is None
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("10.0.0.1")


def test_metrics_and_healthz_name_no_address_pod_or_dns_name(tmp_path: Path) -> None:
    """What the open health port serves, from an agent that has seen traffic."""
    from ipaddress import ip_address

    from discover.flows.events import (
        ConnectionOpen,
        DirectionEvidence,
        DnsAnswer,
        DnsRecordAddress,
        Protocol,
    )
    from sidecar.agent import Agent, AgentOptions

    agent = Agent(AgentOptions(state_dir=tmp_path, node_name="node-secret-7",
                               agent_name="agent-secret-7"))  # fmt: skip
    agent.table.add(ConnectionOpen(1.0, ip_address("10.244.1.5"), 40000,
                                   ip_address("10.244.2.9"), 5432, Protocol.TCP,
                                   DirectionEvidence.SYN))  # fmt: skip
    agent.table.add(DnsAnswer(2.0, ip_address("10.244.1.5"), ip_address("10.96.0.10"),
                              "payments.internal.example", (),
                              (DnsRecordAddress(ip_address("192.0.2.7"), 30),),
                              Protocol.UDP))  # fmt: skip
    assert b"10.244.2.9" in agent.summary_json()  # the data path does have the map
    text = agent.metrics_text() + agent.health()[1]
    assert "{" not in text  # no labels at all
    for secret in ("10.244", "10.96", "192.0.2", "payments", "node-secret", "agent-secret",
                   "5432"):
        assert secret not in text, secret
    assert "netpol_discover_edges 1" in text
