"""The HTTP endpoint over a real loopback socket, with a small view object behind it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

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
