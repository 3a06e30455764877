"""The capture socket in network namespaces: what reaches user space, on one interface,
on `any`, through a VLAN, and what the kernel counts when the buffer overflows."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from discover.reading.packets import PacketDecoder
from sidecar.capture import CaptureOpenError, CaptureSocket
from sidecar.netns import HostPair, TestHost

pytestmark = pytest.mark.root

REPO = Path(__file__).resolve().parent.parent
SUBNET = 232
VLAN_ID = 100

# Runs inside a host's namespace: open the socket (packet ring, or recv() with a receive
# buffer), say "ready", then either read for a while or leave the socket alone until stdin
# closes; print what it got. `small` makes the ring one page, the buffer one byte.
CAPTURE_SCRIPT = """
import json, sys, time
from sidecar.capture import CaptureSocket
interface, read, mode, small = sys.argv[1], sys.argv[2] == "read", sys.argv[3], sys.argv[5]
options = {"use_ring": mode == "ring"}
if small == "small":
    options.update(receive_buffer=1, ring_blocks=1, ring_block_size=4096)
elif small == "eight-pages":
    options.update(ring_blocks=8, ring_block_size=4096)
sock = CaptureSocket(interface, exclude_tcp_ports=(9808,), **options)
assert sock.uses_ring == (mode == "ring")
print("ready", flush=True)
frames, times = [], []
if read:
    end = time.time() + float(sys.argv[4])
    while time.time() < end:
        t, f = sock.read_batch(max_frames=64, max_wait=0.05)
        frames += f
        times += t
else:
    sys.stdin.read()
counters = sock.counters()
sock.close()
print(json.dumps({"frames": [f.hex() for f in frames], "times": times,
                  "received": counters.received, "drops": counters.drops}))
"""


@pytest.fixture(scope="module")
def hosts() -> Iterator[HostPair]:
    with HostPair("npdcap", SUBNET) as pair:
        server = pair.server.popen(
            [sys.executable, "-c", _LISTENER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == b"listening"
            yield pair
        finally:
            server.kill()
            server.communicate()


_LISTENER = """
import socket, threading
servers = []
for port in (8080, 9808):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(128)
    servers.append(s)
def serve(s):
    while True:
        c, _ = s.accept()
        c.sendall(b"x" * 100000)
        c.close()
for s in servers:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""


def _capture(
    host: TestHost, interface: str, action: Any, seconds: float = 2.0, read: bool = True,
    mode: str = "ring", small: bool | str = False,
) -> dict[str, Any]:  # fmt: skip
    process = host.popen(
        [sys.executable, "-c", CAPTURE_SCRIPT, interface, "read" if read else "hold",
         mode, str(seconds), small if isinstance(small, str) else "small" if small else "normal"],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None and process.stdin is not None
    line = process.stdout.readline()
    assert line.strip() == b"ready", process.stderr.read() if process.stderr else line
    action()
    out, err = process.communicate(b"", timeout=30)
    assert process.returncode == 0, err
    result: dict[str, Any] = json.loads(out)
    result["frames"] = [bytes.fromhex(f) for f in result["frames"]]
    return result


def _connect(pair: HostPair, address: str, port: int, count: int = 1) -> None:
    pair.client.python(f"""
import socket
for _ in range({count}):
    c = socket.create_connection(({address!r}, {port}), timeout=5)
    while c.recv(65536):
        pass
    c.close()
""")


def _opens(frames: list[bytes], times: list[float]) -> list[tuple[str, str, int]]:
    events = PacketDecoder().decode(CaptureSocket.linktype, times, frames)
    return sorted(
        (str(e.client_ip), str(e.server_ip), e.server_port)
        for e in events
        if type(e).__name__ == "ConnectionOpen"
    )


@pytest.mark.parametrize("mode", ["ring", "recv"])
def test_only_setups_reach_user_space_on_an_interface(hosts: HostPair, mode: str) -> None:
    server = str(hosts.server.ipv4)
    result = _capture(hosts.server, "veth0", lambda: _connect(hosts, server, 8080, count=3),
                      mode=mode)  # fmt: skip
    frames = result["frames"]
    # 3 x (SYN + SYN-ACK); the 3 x 100 kB of data, ACKs, FINs stay in the kernel.
    assert len(frames) == 6, [f[:40].hex() for f in frames]
    assert all(f[0] >> 4 == 4 for f in frames)  # raw IP: no link-layer header
    assert result["received"] == 6 and result["drops"] == 0
    assert _opens(frames, result["times"]) == [(str(hosts.client.ipv4), server, 8080)] * 3
    # Stamped by the kernel (ring) or at read time (recv): now-ish, in order.
    assert all(abs(t - time.time()) < 30 for t in result["times"])
    assert result["times"] == sorted(result["times"])


def test_the_agent_port_is_excluded(hosts: HostPair) -> None:
    result = _capture(hosts.server, "veth0",
                      lambda: _connect(hosts, str(hosts.server.ipv4), 9808, count=2))  # fmt: skip
    assert result["frames"] == []


def test_vlan_tagged_frames_are_seen_as_plain_ip(hosts: HostPair) -> None:
    """A tagged frame arrives (the kernel of this CI has no 8021q module, so the client
    writes the 802.1Q frame itself); the receive path strips the tag before any packet
    socket sees it, so the cooked socket reads the IP packet and the filter matches."""
    mac = hosts.server.run(["cat", f"/sys/class/net/{hosts.server.interface}/address"]).stdout
    client, server = str(hosts.client.ipv4), str(hosts.server.ipv4)
    send = f"""
from scapy.layers.l2 import Ether, Dot1Q
from scapy.layers.inet import IP, TCP
from scapy.sendrecv import sendp
sendp(Ether(dst={mac.strip()!r}) / Dot1Q(vlan={VLAN_ID}) / IP(src={client!r}, dst={server!r})
      / TCP(sport=41000, dport=7000, flags="S"), iface="veth0", verbose=False)
sendp(Ether(dst={mac.strip()!r}) / Dot1Q(vlan={VLAN_ID}) / IP(src={client!r}, dst={server!r})
      / TCP(sport=41000, dport=7000, flags="A"), iface="veth0", verbose=False)
"""
    result = _capture(hosts.server, "veth0", lambda: hosts.client.python(send))
    frames = result["frames"]
    assert len(frames) == 1 and frames[0][0] >> 4 == 4  # the SYN, untagged; not the ACK
    assert _opens(frames, result["times"]) == [(client, server, 7000)]


def test_any_sees_every_interface_and_the_decoder_counts_each_connection_once(
    hosts: HostPair,
) -> None:
    server = str(hosts.server.ipv4)

    def both() -> None:
        _connect(hosts, server, 8080)  # over veth0
        hosts.server.python(_CONNECT_SELF.format(address=server))  # over lo, in the server

    result = _capture(hosts.server, "any", both)
    frames = result["frames"]
    # veth0: SYN, SYN-ACK. lo: each of them twice (sent and received on the same device).
    assert len(frames) == 6
    assert _opens(frames, result["times"]) == sorted([
        (str(hosts.client.ipv4), server, 8080), (server, server, 8080),
    ])  # fmt: skip


_CONNECT_SELF = """
import socket
c = socket.create_connection(("{address}", 8080), timeout=5)
while c.recv(65536):
    pass
c.close()
"""


@pytest.mark.parametrize("mode", ["ring", "recv"])
def test_kernel_drops_are_counted_when_the_buffer_overflows(hosts: HostPair, mode: str) -> None:
    server = str(hosts.server.ipv4)
    result = _capture(hosts.server, "veth0", lambda: _connect(hosts, server, 8080, count=300),
                      read=False, mode=mode, small=True)  # fmt: skip
    assert result["drops"] > 0
    assert result["received"] == 600  # the filter passed all; most found the buffer full


def test_a_small_ring_is_reused_block_after_block(hosts: HostPair) -> None:
    """Eight one-page blocks (about 30 set-up packets each) for 800 packets: the reader
    must hand every block back for the kernel to fill again."""
    server = str(hosts.server.ipv4)
    result = _capture(hosts.server, "veth0", lambda: _connect(hosts, server, 8080, count=400),
                      seconds=4, small="eight-pages")  # fmt: skip
    assert result["received"] == 800
    assert len(result["frames"]) + result["drops"] == 800
    assert len(result["frames"]) > 8 * 40  # far more than the ring holds at once
    assert result["times"] == sorted(result["times"])


NET_RAW_ONLY = """
import sys
caps = int(open("/proc/self/status").read().split("CapEff:")[1].split()[0], 16)
assert caps == 1 << 13, hex(caps)  # CAP_NET_RAW and nothing else
from sidecar.capture import CaptureSocket
sock = CaptureSocket("veth0", (9808,))
print("ready", sock.uses_ring, flush=True)
times, frames = sock.read_batch(max_wait=5)
print(len(frames), sock.counters().drops)
"""


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_net_raw_is_the_only_capability_capture_needs(hosts: HostPair) -> None:
    """What the manifests promise: filter, ring and socket with CAP_NET_RAW alone."""
    process = hosts.server.popen(
        ["setpriv", "--bounding-set=-all,+net_raw", "--inh-caps=-all",
         sys.executable, "-c", NET_RAW_ONLY],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stdout.readline().split() == [b"ready", b"True"]
    _connect(hosts, str(hosts.server.ipv4), 8080)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    frames, drops = map(int, out.split())
    assert frames >= 1 and drops == 0


def test_missing_interface_is_a_clear_error() -> None:
    with pytest.raises(CaptureOpenError, match="no-such-if0"):
        CaptureSocket("no-such-if0")
