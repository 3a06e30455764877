"""Test hosts in network namespaces: two namespaces joined by a veth pair, no route out.

Shipped beside the agent (like mitmproxy's test factories) because the tests and the
agent benchmark both need it. Needs root and iproute2. Addresses are 10.244.N.1/.2 and the
documentation prefix 2001:db8:N::1/::2; nothing here ever reaches another address.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from types import TracebackType

INTERFACE = "veth0"  # the same name in both namespaces: names are per-namespace

_HTTP_GET = """
import sys, urllib.error, urllib.request
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(sys.argv[1], timeout=float(sys.argv[2])) as response:
        status, body = response.status, response.read()
except urllib.error.HTTPError as error:
    status, body = error.code, error.read()
except OSError as error:
    sys.exit(f"no answer: {error}")
sys.stdout.write(f"{status}\\n")
sys.stdout.write(body.decode("utf-8", "replace"))
"""


@dataclass(frozen=True, slots=True)
class TestHost:
    __test__ = False  # not a pytest class

    netns: str
    ipv4: IPv4Address
    ipv6: IPv6Address
    interface: str = INTERFACE

    def argv(self, command: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *command]

    def run(
        self, command: Sequence[str], timeout: float = 30, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(command), capture_output=True, text=True, timeout=timeout, check=check
        )

    def python(self, code: str, timeout: float = 60) -> str:
        """Run Python code in this host's namespace; its stdout."""
        return self.run([sys.executable, "-c", code], timeout=timeout).stdout

    def http_get(self, url: str, timeout: float = 10) -> tuple[int, str]:
        """(status, body) of a GET from inside this namespace; (0, reason) if no answer."""
        result = self.run([sys.executable, "-c", _HTTP_GET, url, str(timeout)],
                          timeout=timeout + 20, check=False)  # fmt: skip
        status, _, body = result.stdout.partition("\n")
        return (int(status), body) if status.isdigit() else (0, result.stderr.strip())

    def popen(self, command: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.argv(command), **kwargs)  # type: ignore[call-overload,no-any-return]


class HostPair:
    """`server` and `client` hosts on one veth link; a context manager that always cleans up.

    `index` (1..250) picks the subnet, so concurrent users pick different ones; `prefix`
    names the namespaces (`<prefix>-srv`, `<prefix>-cli`), unique per process.
    """

    def __init__(self, prefix: str, index: int) -> None:
        tag = f"{prefix}-{os.getpid()}"
        self.server = TestHost(
            f"{tag}-srv", IPv4Address(f"10.244.{index}.1"), IPv6Address(f"2001:db8:{index}::1")
        )
        self.client = TestHost(
            f"{tag}-cli", IPv4Address(f"10.244.{index}.2"), IPv6Address(f"2001:db8:{index}::2")
        )

    def __enter__(self) -> HostPair:
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _create(self) -> None:
        server, client = self.server, self.client
        for host in (server, client):
            _ip("netns", "add", host.netns)
            _ip("-n", host.netns, "link", "set", "lo", "up")
        _ip(
            "-n", server.netns, "link", "add", INTERFACE, "type", "veth",
            "peer", "name", INTERFACE, "netns", client.netns,
        )  # fmt: skip
        for host in (server, client):
            _ip("-n", host.netns, "addr", "add", f"{host.ipv4}/24", "dev", INTERFACE)
            _ip("-n", host.netns, "addr", "add", f"{host.ipv6}/64", "dev", INTERFACE, "nodad")
            _ip("-n", host.netns, "link", "set", INTERFACE, "up")

    def close(self) -> None:
        for host in (self.server, self.client):
            subprocess.run(["ip", "netns", "del", host.netns], capture_output=True, check=False)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, check=True)
