"""The project's exceptions: one base class, a few categories, data carried as fields.

Specific errors live next to the code that raises them and subclass one of these.
The command line catches `DiscoverError` only and prints `str(error)` on one line.
"""

from __future__ import annotations


class DiscoverError(Exception):
    """Base of every error this project raises on purpose."""


class ReadError(DiscoverError):
    """A capture or summary could not be read (or not completely).

    `path`, `record` (1-based record number, when known) and `offset` (byte offset of the
    record that failed) say where; the message says what.
    """

    def __init__(
        self, path: str, message: str, *, record: int | None = None, offset: int | None = None
    ) -> None:
        self.path = path
        self.message = message
        self.record = record
        self.offset = offset
        where = path
        if record is not None:
            where += f": record {record}"
        if offset is not None:
            where += f" at byte {offset}"
        super().__init__(f"{where}: {message}")


class InventoryError(DiscoverError):
    """The cluster inventory (files or live API) is unusable."""


class SynthesisError(DiscoverError):
    """Policies could not be proposed, or the proposal fails its own verification."""


class ConfigurationError(DiscoverError):
    """Options or settings that contradict each other or name missing things."""
