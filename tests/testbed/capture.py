"""tcpdump inside a namespace: started and confirmed listening before traffic begins,
stopped with SIGINT so the file ends with a complete record."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.testbed.netns import Sandbox, TestbedError


class Capture:
    def __init__(self, sandbox: Sandbox, namespace: str, interface: str, path: Path,
                 snaplen: int) -> None:
        self.sandbox = sandbox
        self.path = path
        self.interface = interface
        self.summary: list[str] = []
        argv = ["tcpdump", "-i", interface, "-s", str(snaplen), "-w", str(path), "-U", "-n",
                "-Z", "root", "--immediate-mode"]
        self.process = sandbox.start(namespace, argv, stdout=subprocess.DEVNULL)
        self._listening = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if "listening on" in line:
                self._listening.set()
            else:
                self.summary.append(line.strip())

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.1):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise TestbedError(f"tcpdump -i {self.interface}",
                                   "; ".join(self.summary) or "did not start listening")

    def stop(self) -> None:
        # SIGINT makes tcpdump flush and close the file; the pipe closes after it exits.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._reader.join(2)
        self.sandbox.stop(self.process)
