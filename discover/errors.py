"""The project's exceptions: one base class, a few categories, data carried as fields.

    DiscoverError
    ├── ReadError            an input (capture, summary, flows or policy file) can't be read
    ├── FieldError           one field of a document is unusable (the reader adds the file)
    ├── InventoryError       the inventory (files or live API) is unusable
    │   └── ClusterUnreachableError   the Kubernetes API could not be used
    ├── SynthesisError       no proposal, or one that fails its own verification
    ├── ConfigurationError   options or settings that contradict each other or name missing things
    └── OutputError          results not delivered: a file or directory not written, a socket
                             not bound

Specific errors live next to the code that raises them and subclass one of these; the two
above that several packages raise live here. The command line catches `DiscoverError` only
and prints `str(error)` on one line.
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


class FieldError(DiscoverError):
    """One field of a document (a Kubernetes object, a summary) is unusable: `path` is where
    in the document (`status.podIP`, `flows[3].dst_port`), `message` what is wrong. The
    reader that knows the file turns it into its own error naming the file."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class InventoryError(DiscoverError):
    """The cluster inventory (files or live API) is unusable."""


class ClusterUnreachableError(InventoryError):
    """The Kubernetes API could not be used (not reached, or it refused): for the live
    inventory and for `collect` alike. `where` is the server or what was being done."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}")


class SynthesisError(DiscoverError):
    """Policies could not be proposed, or the proposal fails its own verification."""


class ConfigurationError(DiscoverError):
    """Options or settings that contradict each other or name missing things."""


class OutputError(DiscoverError):
    """Results could not be delivered: a file or directory not written (full disk, no such
    directory, unknown format), a socket not bound. `path` names the file, directory or
    address."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")
