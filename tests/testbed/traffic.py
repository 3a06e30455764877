"""The program that runs inside one namespace: it serves the pod's ports and makes the
pod's connections, at the times its plan says, resolving names through the cluster DNS
the way a pod's resolver does (search list, ndots:5, NXDOMAIN misses first).

    ip netns exec NS python -m tests.testbed.traffic PLAN.json LOG.jsonl

Protocol with the runner: prints `ready` once every port is bound, then waits for a line
`go T0` on stdin (T0: the epoch second the traffic starts); runs until SIGTERM. Every
connection made and accepted, and every DNS answer, goes to LOG as one JSON line: the
ground truth is built from these.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

CONNECT_TIMEOUT = 2.0  # generous: CI machines are busy; a healthy connect takes ms
WATCH_EVERY = 0.5  # seconds between the events a watch sends
NDOTS = 5
IP_PKTINFO = 8  # from <linux/in.h>; Python 3.11's socket module lacks the name


class Log:
    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, **record: Any) -> None:
        line = json.dumps(record, sort_keys=True)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


def serve_tcp(port: int, log: Log, stream: bool = False) -> socket.socket:
    """One answer a connection, then close; with `stream`, a watch: the answer's chunks
    keep coming every WATCH_EVERY seconds until the client goes."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(64)

    def handle(conn: socket.socket) -> None:
        with conn:
            conn.settimeout(CONNECT_TIMEOUT)
            try:
                conn.recv(4096)
                if not stream:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: "
                                 b"close\r\n\r\nok")
                    return
                conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                while True:
                    conn.sendall(b"13\r\n{\"type\":\"BOOKMARK\"}\r\n")
                    time.sleep(WATCH_EVERY)
            except OSError:
                pass

    def loop() -> None:
        while True:
            conn, peer = listener.accept()
            local = conn.getsockname()
            log.write(event="accept", time=time.time(), protocol="TCP", local=local[0],
                      lport=local[1], peer=peer[0], pport=peer[1])
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return listener


def serve_udp(port: int, log: Log) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_IP, IP_PKTINFO, 1)
    sock.bind(("0.0.0.0", port))

    def loop() -> None:
        while True:
            data, ancillary, _flags, peer = sock.recvmsg(4096, 256)
            local = _pktinfo_destination(ancillary)
            log.write(event="accept", time=time.time(), protocol="UDP", local=local,
                      lport=port, peer=peer[0], pport=peer[1])
            sock.sendto(b"ok:" + data[:32], peer)

    threading.Thread(target=loop, daemon=True).start()
    return sock


def _pktinfo_destination(ancillary: list[tuple[int, int, bytes]]) -> str | None:
    # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }: addr is the
    # destination the datagram was sent to (after DNAT, the pod's IP).
    for level, kind, data in ancillary:
        if level == socket.SOL_IP and kind == IP_PKTINFO and len(data) >= 12:
            return socket.inet_ntoa(data[8:12])
    return None


class Resolver:
    """A pod's resolver: search list for names with fewer than NDOTS dots, A records only."""

    def __init__(self, server: str, search: list[str], log: Log,
                 bind: str | None = None) -> None:
        self.server = server
        self.search = search
        self.log = log
        self.bind = bind or "0.0.0.0"

    def candidates(self, name: str) -> list[str]:
        if name.endswith("."):
            return [name]
        searched = [f"{name}.{suffix}." for suffix in self.search]
        absolute = f"{name}."
        return [absolute, *searched] if name.count(".") >= NDOTS else [*searched, absolute]

    def resolve(self, name: str, tcp: bool = False) -> list[str]:
        for qname in self.candidates(name):
            addresses = self._query(qname, tcp)
            if addresses:
                return addresses
        return []

    def _query(self, qname: str, tcp: bool) -> list[str]:
        query = dns.message.make_query(qname, dns.rdatatype.A)
        kind = socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM
        record: dict[str, Any] = {"event": "dns", "qname": qname.rstrip("."),
                                  "server": self.server, "transport": "TCP" if tcp else "UDP"}
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.bind((self.bind, 0))
            record.update(sport=sock.getsockname()[1], time=time.time())
            try:
                if tcp:
                    sock.connect((self.server, 53))
                    answer = dns.query.tcp(query, self.server, timeout=CONNECT_TIMEOUT,
                                           sock=sock)
                else:
                    answer = dns.query.udp(query, self.server, timeout=CONNECT_TIMEOUT,
                                           sock=sock)
            except (OSError, dns.exception.DNSException) as error:
                self.log.write(**record, rcode="ERROR", error=str(error), addresses=[],
                               cname_chain=[])
                return []
        addresses: list[str] = []
        chain: list[str] = []
        for rrset in answer.answer:
            for rdata in rrset:
                if rrset.rdtype == dns.rdatatype.A:
                    addresses.append(rdata.address)
                elif rrset.rdtype == dns.rdatatype.CNAME:
                    chain.append(str(rdata.target).rstrip("."))
        self.log.write(**record, rcode=dns.rcode.to_text(answer.rcode()),
                       addresses=addresses, cname_chain=chain)
        return addresses


def connect(action: dict[str, Any], resolver: Resolver | None, log: Log) -> None:
    started = time.time()
    address = action["address"]
    record: dict[str, Any] = {
        "event": "connect", "time": started, "traffic": action["traffic"],
        "protocol": action["protocol"], "query": action["query"], "dport": action["port"],
    }
    if address is None:
        answers = (resolver.resolve(action["query"], action["dns_tcp"])
                   if resolver is not None else [])
        if not answers:
            log.write(**record, dst=None, src=None, sport=None, ok=False, error="no answer")
            return
        address = sorted(answers)[action["pick"] % len(answers)]
    kind = socket.SOCK_STREAM if action["protocol"] == "TCP" else socket.SOCK_DGRAM
    if action.get("hold"):
        # a watch lives beside the pod's other connections: its own thread
        threading.Thread(target=watch, args=(action, address, record, log),
                         daemon=True).start()
        return
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.bind((action["source"] or "0.0.0.0", 0))
        src, sport = sock.getsockname()
        record.update(time=time.time(), dst=address, src=src, sport=sport)
        try:
            if kind == socket.SOCK_STREAM:
                sock.connect((address, action["port"]))
                record["src"] = sock.getsockname()[0]
                sock.sendall(f"GET / HTTP/1.1\r\nHost: {action['query'] or address}\r\n\r\n"
                             .encode())
                while sock.recv(4096):
                    pass
            else:
                sock.connect((address, action["port"]))
                record["src"] = sock.getsockname()[0]
                sock.send(b"testbed.requests:1|c")
                sock.recv(4096)
        except OSError as error:
            log.write(**record, ok=False, error=str(error))
            return
    log.write(**record, ok=True, error=None)


def watch(action: dict[str, Any], address: str, record: dict[str, Any], log: Log) -> None:
    """A long-lived connection (an API watch, a pool): connect, ask once, then read what
    the server sends for `hold` seconds. Logged once connected: the agent may be stopped
    while it still runs."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(CONNECT_TIMEOUT)
        sock.bind((action["source"] or "0.0.0.0", 0))
        src, sport = sock.getsockname()
        record.update(time=time.time(), dst=address, src=src, sport=sport)
        try:
            sock.connect((address, action["port"]))
            record["src"] = sock.getsockname()[0]
            sock.sendall(b"GET /api/v1/endpoints?watch=true HTTP/1.1\r\n\r\n")
        except OSError as error:
            log.write(**record, ok=False, error=str(error))
            return
        log.write(**record, ok=True, error=None)
        until = time.monotonic() + float(action["hold"])
        try:
            while time.monotonic() < until and sock.recv(4096):
                pass
        except OSError:
            pass


def main(argv: list[str]) -> int:
    plan = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    log = Log(Path(argv[1]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stream = set(plan.get("stream") or ())
    _sockets = [serve_tcp(port, log, port in stream) if proto == "TCP" else serve_udp(port, log)
               for proto, port in plan["listen"]]
    resolver = (Resolver(plan["dns_server"], plan["search"], log, plan.get("bind"))
                if plan["search"] else None)
    print("ready", flush=True)
    line = sys.stdin.readline().split()
    if len(line) != 2 or line[0] != "go":
        return 1
    start = float(line[1])
    for action in plan["actions"]:
        delay = start + action["at"] - time.time()
        if delay > 0:
            time.sleep(delay)
        connect(action, resolver, log)
    # Keep serving until the runner stops this namespace.
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
