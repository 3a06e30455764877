"""A progress bar by bytes read, on stderr, only for a person watching a terminal.

Commands pass `enabled=progress_wanted(quiet)`; when it is False (piped stderr, CI,
`--quiet`) nothing is imported or drawn. Updates name a file by its index so several
files read in parallel add up to one bar.
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


def progress_wanted(quiet: bool) -> bool:
    """A bar only helps someone looking at a terminal."""
    return not quiet and sys.stderr.isatty()


class ByteProgress:
    """One bar over the bytes of several files: `update(file_index, bytes_done)`."""

    def __init__(self, total_bytes: int, *, enabled: bool, description: str = "reading") -> None:
        self.total = total_bytes
        self.enabled = enabled
        self.description = description
        self._done: dict[int, int] = {}
        self._bar: Any = None  # rich.progress.Progress, imported only when drawn
        self._task: Any = None

    def __enter__(self) -> ByteProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        return self

    def update(self, index: int, bytes_done: int) -> None:
        """File `index` has now been read up to `bytes_done`."""
        self._done[index] = bytes_done
        if self._bar is not None:
            self._bar.update(self._task, completed=sum(self._done.values()))

    @property
    def bytes_done(self) -> int:
        return sum(self._done.values())

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
