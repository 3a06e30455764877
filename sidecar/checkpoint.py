"""Atomic checkpoints of the agent's summary: a crash leaves the old file or the new one.

Write a temporary file in the same directory, fsync it, rename it over the checkpoint,
then fsync the directory so the rename itself survives a power cut. Readers (the agent on
restart, `analyze`) therefore never see a half-written document.

A state directory that can't be used (full, read-only, not a directory) is a
`StateDirError` from `prepare`, `save` or `load`, never at construction: the agent keeps
capturing and serving and retries, since a restart would not fix the disk.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from discover.errors import OutputError, ReadError

CHECKPOINT_NAME = "summary.json"


class StateDirError(OutputError):
    """The state directory can't be created or written."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"state directory {path}", reason)
        self.path = path  # type: ignore[assignment]  # the directory itself, not its text
        self.reason = reason


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by `data` so that a crash at any point leaves one complete file."""
    directory = path.parent
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def encode(document: dict[str, Any]) -> bytes:
    """Compact, key-sorted JSON: equal documents give equal bytes."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class Checkpoint:
    """`DIR/summary.json`: the versioned summary document, saved and loaded whole."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / CHECKPOINT_NAME

    def prepare(self) -> None:
        """Create the directory, check that it is writable, remove leftovers of a crash."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StateDirError(self.state_dir, error.strerror or str(error)) from error
        if not os.access(self.state_dir, os.W_OK):
            raise StateDirError(self.state_dir, "not writable")
        self._remove_leftovers()

    def _remove_leftovers(self) -> None:
        # Temporary files of a write that a crash interrupted: never complete, never read.
        for leftover in self.state_dir.glob(f".{CHECKPOINT_NAME}.*.tmp"):
            leftover.unlink(missing_ok=True)

    def save(self, document: dict[str, Any]) -> None:
        self.save_bytes(encode(document))

    def save_bytes(self, data: bytes) -> None:
        """Save an already encoded document (the agent serves the same bytes)."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)  # it may be back by now
            write_atomic(self.path, data)
        except OSError as error:
            raise StateDirError(self.state_dir, error.strerror or str(error)) from error

    def set_aside(self) -> Path:
        """Rename the checkpoint to `summary.json.unreadable-<time>`; the new name."""
        kept = self.path.with_name(f"{self.path.name}.unreadable-{int(time.time())}")
        os.replace(self.path, kept)
        return kept

    def load(self) -> dict[str, Any] | None:
        """The last checkpoint, or None when there is none yet. ReadError: the file is
        damaged; StateDirError: it can't be read at all (the directory's problem)."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise StateDirError(self.state_dir, error.strerror or str(error)) from error
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ReadError(str(self.path), f"not JSON: {error}") from error
        if not isinstance(document, dict):
            raise ReadError(str(self.path), "not a JSON object")
        return document
