"""The agent's HTTP endpoint: /summary, /healthz, /metrics, /inventory (stdlib).

The handler only asks an `AgentView` for bytes; it knows nothing of capture, so the
server is tested with any object that answers those questions.

Who may read what: the data paths (`/summary`, `/inventory`: every flow, DNS answer, pod,
label and Service) are served only by the data server, which the agent binds to loopback
by default; `collect` reaches it through a port-forward that the API server authorizes
with the user's RBAC. A health server (`--health-listen`) may listen on every address for
probes and scrapes: it answers `/healthz` and `/metrics` only (counts and ages, no
address, name or label) and refuses the data paths.

Hostile or broken clients must not take the agent down: a fixed pool of worker threads
serves the connections (while all are busy, new ones wait in the kernel's listen backlog
of 128 instead of each getting a thread), every socket read and write times out (an idle
connection is closed after `timeout` seconds and frees its worker), and a client error
(a timeout, a reset, a client gone mid-response) is one log line, not a traceback.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Protocol

from discover.errors import ConfigurationError, OutputError
from sidecar import metrics

log = logging.getLogger(__name__)

# Worker threads: probes, a scrape and a collect at once need a handful; more only
# multiplies the memory of concurrent /summary renders.
WORKERS = 8
# Seconds a socket read or write may block: a request line and headers arrive in far
# less, and a /summary reader that takes longer between two writes is gone.
TIMEOUT = 10.0
# The kernel's queue of accepted-but-not-yet-served connections (the stdlib's default 5
# made 20 of 100 concurrent requests time out).
BACKLOG = 128


class AgentView(Protocol):
    def summary_json(self) -> bytes: ...

    def health(self) -> tuple[bool, str]: ...

    def metrics_text(self) -> str: ...

    def inventory_json(self) -> bytes | None: ...


class ListenError(OutputError):
    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(f"{host}:{port}", f"cannot listen: {reason}")
        self.host = host
        self.port = port
        self.reason = reason


def parse_listen(value: str, option: str = "--listen") -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` or `[V6]:PORT` -> (host, port)."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigurationError(f"{option} {value!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """`127.0.0.1`, `::1`, `localhost`: only this machine (or this pod) can connect."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


DATA_PATHS = ("/summary", "/inventory")
NOT_HERE = (b"not served here: /summary and /inventory are on the agent's loopback address"
            b" only; use netpol-discover collect (a port-forward RBAC allows)\n")  # fmt: skip


def _handler(
    view: AgentView, request_timeout: float, data: bool
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "netpol-discover-agent"
        timeout = request_timeout  # socket timeout of every read and write

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            path = self.path.split("?", 1)[0]
            if path in DATA_PATHS and not data:
                self._reply(403, "text/plain", NOT_HERE)
            elif path == "/summary":
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

        def log_error(self, format: str, *args: object) -> None:  # noqa: A002
            # Timeouts and malformed requests: the client's problem, one line each.
            log.info("client %s: " + format, self.address_string(), *args)

    return Handler


class _PooledServer(HTTPServer):
    """An HTTPServer whose connections are served by a fixed pool of threads.

    `process_request` waits for a free worker before handing a connection over, so the
    accept loop stops accepting while the pool is busy and the kernel backlog holds the
    rest: threads never grow with the number of clients.
    """

    request_queue_size = BACKLOG

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], workers: int
    ) -> None:
        self._slots = threading.BoundedSemaphore(workers)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="http-worker")
        self._closing = threading.Event()
        super().__init__(address, handler)

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        while not self._slots.acquire(timeout=0.2):
            if self._closing.is_set():
                self.shutdown_request(request)
                return
        try:
            self._pool.submit(self._work, request, client_address)
        except RuntimeError:  # the pool is shut down: we are closing
            self._slots.release()
            self.shutdown_request(request)

    def _work(self, request: socket.socket, client_address: object) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - reported by handle_error, one line
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-response (BrokenPipe, reset) or a socket error:
        one line, not the stdlib's traceback on stderr."""
        error = sys.exc_info()[1]
        log.info("client %s: %s: %s", _peer(client_address), type(error).__name__, error)

    def close(self) -> None:
        self._closing.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.server_close()


class _PooledServer6(_PooledServer):
    address_family = socket.AF_INET6


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


class AgentServer:
    """Serves `view` on host:port in a background thread until `close()`; with
    `data=False` only /healthz and /metrics (the data paths answer 403)."""

    def __init__(
        self,
        view: AgentView,
        host: str,
        port: int,
        *,
        data: bool = True,
        workers: int = WORKERS,
        timeout: float = TIMEOUT,
    ) -> None:
        server_class = _PooledServer6 if ":" in host else _PooledServer
        try:
            self._server = server_class((host, port), _handler(view, timeout, data), workers)
        except OSError as error:
            raise ListenError(host, port, error.strerror or str(error)) from error
        self.host = host
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.close()
        self._thread.join()
