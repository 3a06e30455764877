"""The API server's `pods/NAME/portforward` for tests: the websocket channel protocol
(`v4.channel.k8s.io`) over a real socket, relaying to a real port on 127.0.0.1.

What the kubelet does for a hostNetwork pod (containerd dials `localhost:PORT` in the
pod's network namespace, the node's own for host network) is done here by dialling
`127.0.0.1:PORT` of this machine, where a test runs the real agent server on loopback.
Protocol (k8s.io/apimachinery wsstream, the client's `kubernetes.stream.ws_client`): each
forwarded port has a data channel 2*i and an error channel 2*i+1; every binary message
starts with its channel byte; the first message on each channel carries the port number
(2 bytes, little endian). The server ends the session by closing the websocket.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
PROTOCOL = "v4.channel.k8s.io"
OP_BINARY, OP_CLOSE, OP_PING = 0x2, 0x8, 0x9


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def read_frame(rfile: object) -> tuple[int, bytes] | None:
    """One client frame (masked, per RFC 6455), or None at end of stream."""
    read = rfile.read  # type: ignore[attr-defined]
    head = read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read(8))[0]
    mask = read(4) if head[1] & 0x80 else b"\0\0\0\0"
    payload = read(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def frame(opcode: int, payload: bytes) -> bytes:
    """A server frame: final, unmasked."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


def serve_portforward(
    handler: BaseHTTPRequestHandler, port: int, target_port: int | None, pod: str
) -> None:
    """Upgrade `handler`'s request and relay channel 0 to 127.0.0.1:`target_port`
    (None: nothing listens there, the kubelet's dial error goes out on channel 1)."""
    offered = handler.headers.get("Sec-WebSocket-Protocol", "")
    if PROTOCOL not in [p.strip() for p in offered.split(",")]:
        handler.send_error(400, "no supported channel protocol")
        return
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept_key(handler.headers["Sec-WebSocket-Key"]))
    handler.send_header("Sec-WebSocket-Protocol", PROTOCOL)
    handler.end_headers()
    handler.close_connection = True
    write_lock = threading.Lock()

    def send(opcode: int, payload: bytes) -> None:
        with write_lock:
            handler.wfile.write(frame(opcode, payload))
            handler.wfile.flush()

    port_bytes = struct.pack("<H", port)
    send(OP_BINARY, b"\x00" + port_bytes)
    send(OP_BINARY, b"\x01" + port_bytes)
    try:
        if target_port is None:
            raise ConnectionRefusedError("connect: connection refused")
        target = socket.create_connection(("127.0.0.1", target_port), timeout=10)
    except OSError as error:
        send(OP_BINARY, b"\x01" + (
            f"error forwarding port {port} to pod {pod}, uid : failed to execute portforward "
            f"in network namespace \"host\": failed to connect to localhost:{port} inside "
            f"namespace \"{pod}\", IPv4: dial tcp4 127.0.0.1:{port}: {error}").encode())
        send(OP_CLOSE, struct.pack("!H", 1000))
        return

    def client_to_target() -> None:
        try:
            while (received := read_frame(handler.rfile)) is not None:
                opcode, payload = received
                if opcode == OP_CLOSE:
                    break
                if opcode == OP_BINARY and payload[:1] == b"\x00" and len(payload) > 1:
                    target.sendall(payload[1:])
        except OSError:
            pass  # the client went away: the session is over either way

    reader = threading.Thread(target=client_to_target, daemon=True)
    reader.start()
    with target:
        while data := target.recv(256 * 1024):
            send(OP_BINARY, b"\x00" + data)
        send(OP_CLOSE, struct.pack("!H", 1000))  # the target closed: end the session
        reader.join(10)
