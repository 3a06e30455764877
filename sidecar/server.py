"""The agent's HTTP endpoint: /summary, /healthz, /metrics, /inventory (stdlib, one
thread a request).

The handler only asks an `AgentView` for bytes; it knows nothing of capture, so the
server is tested with any object that answers those three questions.
"""

from __future__ import annotations

import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from discover.errors import ConfigurationError
from sidecar import metrics

log = logging.getLogger(__name__)


class AgentView(Protocol):
    def summary_json(self) -> bytes: ...

    def health(self) -> tuple[bool, str]: ...

    def metrics_text(self) -> str: ...

    def inventory_json(self) -> bytes | None: ...


class ListenError(ConfigurationError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"cannot listen on {host}:{port}: {reason}")


def parse_listen(value: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `[V6]:PORT` -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigurationError(f"--listen {value!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


def _handler(view: AgentView) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "netpol-discover-agent"

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            path = self.path.split("?", 1)[0]
            if path == "/summary":
                self._reply(200, "application/json", view.summary_json())
            elif path == "/healthz":
                ok, reason = view.health()
                self._reply(200 if ok else 503, "text/plain", (reason + "\n").encode())
            elif path == "/metrics":
                self._reply(200, metrics.CONTENT_TYPE, view.metrics_text().encode())
            elif path == "/inventory":
                inventory = view.inventory_json()
                if inventory is None:
                    self._reply(404, "text/plain", b"no inventory: run with --inventory-watch\n")
                else:
                    self._reply(200, "application/json", inventory)
            else:
                self._reply(
                    404, "text/plain", b"not found: try /summary /healthz /metrics /inventory\n"
                )

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class AgentServer:
    """Serves `view` on host:port in a background thread until `close()`."""

    def __init__(self, view: AgentView, host: str, port: int) -> None:
        server_class = _Server6 if ":" in host else _Server
        try:
            self._server = server_class((host, port), _handler(view))
        except OSError as error:
            raise ListenError(host, port, error.strerror or str(error)) from error
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
