"""Flow tables on disk: flows files read back (CSV or Parquet; only src_ip, dst_ip,
protocol and dst_port required), frames and tables written by extension.

Kept apart from `flowtable.py` so that the in-memory table knows nothing of files; the
commands, `verify` and the reports come here to read and write.
"""

from __future__ import annotations

import csv
import enum
from collections.abc import Callable, Iterable
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from typing import TYPE_CHECKING, Any

from discover.atomic import replace_file
from discover.errors import OutputError, ReadError
from discover.flows.events import DirectionEvidence, Outcome, Protocol
from discover.flows.flowtable import (
    CNAME_SEPARATOR,
    DNS_COLUMNS,
    FLOW_COLUMNS,
    FLOW_DEFAULTS,
    ISO_FORMAT,
    REQUIRED_FLOW_COLUMNS,
    FlowRow,
    FlowTable,
    iso_time,
)
from discover.reading.formats import is_parquet

if TYPE_CHECKING:
    import pandas as pd


_PROTOCOLS = frozenset(p.value for p in Protocol)


class FlowsFileError(ReadError):
    """A flows file row that doesn't hold what its column says (`line` is 1-based)."""

    def __init__(self, path: str, message: str, *, line: int | None = None) -> None:
        self.line = line
        super().__init__(path, message if line is None else f"line {line}: {message}")


def read_flow_rows(path: Path | str) -> tuple[FlowRow, ...]:
    """A flows CSV or Parquet file as rows, in file order (extra columns dropped): what
    the commands hand to the stages. Errors as `read_flows_file`."""
    from discover.flows.frames import flow_rows_from_frame

    return flow_rows_from_frame(read_flows_file(path))


def read_flows_file(path: Path | str) -> pd.DataFrame:
    """A flows CSV or Parquet file (sniffed by content) as FLOW_COLUMNS plus any extra ones.

    Only the four required columns must be there; the others get `FLOW_DEFAULTS`
    (connections 1, packets 0, times NaT, direction "inferred", outcome "unknown"). IPs come back in
    canonical form, protocol upper case. A bad value raises FlowsFileError naming the
    file, the line and the column (for Parquet, `line` is the 1-based row).
    """
    import pandas as pd

    name = str(path)
    try:
        with open(path, "rb") as stream:
            parquet = is_parquet(stream.read(4))
    except OSError as error:
        raise ReadError(name, f"cannot read: {error.strerror}") from error
    raw, first_line = (_read_parquet(name), 1) if parquet else (_read_csv(name), 2)
    missing = [c for c in REQUIRED_FLOW_COLUMNS if c not in raw.columns]
    if missing:
        raise FlowsFileError(
            name,
            f"missing column(s) {', '.join(missing)}; a flows file needs at least "
            f"{','.join(REQUIRED_FLOW_COLUMNS)}",
        )
    lines = [first_line + int(i) for i in raw.index]
    out: dict[str, object] = {}
    for column, parse, dtype in (
        ("src_ip", _parse_ip, "str"),
        ("dst_ip", _parse_ip, "str"),
        ("protocol", _parse_protocol, "str"),
        ("dst_port", _parse_port, "int64"),
        ("connections", _parse_count, "int64"),
        ("packets", _parse_count, "int64"),
        ("direction", _parse_direction, "str"),
        ("outcome", _parse_outcome, "str"),
    ):
        if column in raw.columns:
            values = _parse_column(name, lines, column, parse, raw[column].tolist())
        else:
            values = [parse(FLOW_DEFAULTS[column])] * len(raw)
        out[column] = pd.Series(values, dtype=dtype, index=raw.index)
    for column in ("first_seen", "last_seen"):
        out[column] = _parse_times(name, lines, column, raw.get(column), raw.index)
    extra = {c: raw[c] for c in raw.columns if c not in FLOW_COLUMNS}
    return pd.DataFrame(out | extra, columns=FLOW_COLUMNS + list(extra)).reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a frame as CSV (times ISO-8601 UTC) or Parquet, chosen by the file extension;
    an existing file is replaced only once the new one is written and synced whole.

    CSV cells are quoted by the csv rules (a name with a comma, a quote or a line break
    reads back the same with pandas) and otherwise written as they are: these are data
    files for pandas and `verify`, so a name starting with `=` or `+` is not prefixed
    with a quote against spreadsheet formulas, which would change the data read back.
    Open them in a spreadsheet as text (import), not by double-click."""
    import pandas as pd

    suffix = Path(path).suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise OutputError(str(path), "unknown output format; use a .csv or .parquet name")

    def write(temporary: Path) -> None:
        if suffix == ".csv":
            text = frame.copy()
            for column in text.columns:
                if isinstance(text[column].dtype, pd.DatetimeTZDtype):
                    stamps = text[column].dt.tz_convert("UTC").dt.strftime(ISO_FORMAT)
                    text[column] = stamps.astype(object).where(stamps.notna(), "")
            has_cr = any(text[c].astype(str).str.contains("\r", regex=False).any()
                         for c in text.columns
                         if text[c].dtype == object or pd.api.types.is_string_dtype(text[c]))
            ending = "\r\n" if has_cr else "\n"  # see _line_end
            text.to_csv(temporary, index=False, lineterminator=ending)
        else:
            frame.to_parquet(temporary, index=False)

    try:
        replace_file(Path(path), write)
    except OSError as error:
        raise OutputError(str(path), f"cannot write: {error.strerror or error}") from error


def _line_end(values: Iterable[object]) -> str:
    """"\n", or "\r\n" when a cell holds a carriage return: the csv writer quotes a cell
    only for the characters of its line terminator, and a lone CR left unquoted splits
    the row in two for every reader (a DNS name or an inventory name may hold one)."""
    return "\r\n" if any(isinstance(v, str) and "\r" in v for v in values) else "\n"


def _read_csv(name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        # Everything as text: the values are checked below, with their line numbers.
        frame = pd.read_csv(
            name, dtype=str, keep_default_na=False, skip_blank_lines=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError as error:
        raise FlowsFileError(name, "empty file; expected a header line") from error
    except pd.errors.ParserError as error:
        raise FlowsFileError(name, f"not a valid CSV file: {error}") from error
    except UnicodeDecodeError as error:
        raise FlowsFileError(name, f"not UTF-8 text (byte {error.start})") from error
    frame.columns = [str(c).strip() for c in frame.columns]
    blank = (frame == "").all(axis=1)  # blank lines count for line numbers, hold nothing
    return frame[~blank]


def _read_parquet(name: str) -> pd.DataFrame:
    import pandas as pd

    try:
        return pd.read_parquet(name)
    except (OSError, ValueError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise FlowsFileError(name, f"not a readable Parquet file: {error}") from error


def _parse_column(
    name: str, lines: list[int], column: str, parse: Callable[[object], Any], cells: list[Any]
) -> list[Any]:
    """Each distinct value parsed once (IPs, ports and protocols repeat a lot)."""
    parsed: dict[object, Any] = {}
    try:
        for value in dict.fromkeys(cells):
            parsed[value] = parse(value)
    except ValueError as error:
        line = lines[cells.index(value)]
        raise FlowsFileError(name, f"{column}: {error}", line=line) from None
    except TypeError:  # an unhashable value from a Parquet column of lists or maps
        raise FlowsFileError(name, f"{column}: expected text or numbers, not lists") from None
    return [parsed[value] for value in cells]


def _parse_ip(value: object) -> str:
    try:
        address = ip_address(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an IP address, got {value!r}") from None
    # ::ffff:10.244.0.5 (a dual-stack socket's view of an IPv4 peer) is the pod's 10.244.0.5.
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _parse_protocol(value: object) -> str:
    text = str(value).strip().upper()
    if text not in _PROTOCOLS:
        raise ValueError(f"expected TCP, UDP or SCTP, got {value!r}")
    return text


def _parse_int(value: object, low: int, high: int, what: str) -> int:
    if isinstance(value, bool):
        number = None
    elif isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        text = str(value).strip()
        number = int(text) if text.isascii() and text.isdigit() else None
    if number is None or not low <= number <= high:
        raise ValueError(f"expected {what}, got {value!r}")
    return number


def _parse_port(value: object) -> int:
    return _parse_int(value, 0, 65535, "a port number 0-65535")


def _parse_count(value: object) -> int:
    return _parse_int(value, 0, 2**63 - 1, "a count (an integer >= 0)")


def _parse_word(value: object, words: type[enum.StrEnum], default: enum.StrEnum) -> str:
    """A column of enum words (direction, outcome): empty is the default, case ignored."""
    text = str(value).strip().lower()
    if not text:
        return default.value
    if text not in {word.value for word in words}:
        choices = ", ".join(word.value for word in words)
        raise ValueError(f"expected one of {choices}, got {value!r}")
    return text


def _parse_direction(value: object) -> str:
    return _parse_word(value, DirectionEvidence, DirectionEvidence.INFERRED)


def _parse_outcome(value: object) -> str:
    return _parse_word(value, Outcome, Outcome.UNKNOWN)


def _parse_times(
    name: str, lines: list[int], column: str, raw: pd.Series | None, index: pd.Index
) -> pd.Series:
    import pandas as pd

    if raw is None:
        return pd.Series(pd.NaT, index=index, dtype="datetime64[ns, UTC]")
    if pd.api.types.is_datetime64_any_dtype(raw.dtype):  # Parquet keeps real timestamps
        aware: pd.Series = raw if getattr(raw.dt, "tz", None) else raw.dt.tz_localize("UTC")
        converted: pd.Series = aware.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        return converted
    text = raw.astype(str).str.strip().where(raw.notna(), "")
    stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    bad = stamps.isna() & (text != "")
    if bad.any():
        position = int(bad.to_numpy().argmax())
        raise FlowsFileError(
            name,
            f"{column}: expected an ISO-8601 time, got {text.iloc[position]!r}",
            line=lines[position],
        )
    return stamps.astype("datetime64[ns, UTC]")


def write_flow_table(flow_table: FlowTable, path: Path | str, table: str = "flows") -> int:
    """Write the "flows" or "dns" table of `flow_table` like `write_table(frame, path)`;
    the number of rows written.

    CSV goes straight from the rows, byte for byte what `write_table` writes, without
    importing pandas (half a second of a command that takes two).
    """
    if Path(path).suffix.lower() != ".csv":
        frame = flow_table.flows_frame() if table == "flows" else flow_table.dns_frame()
        write_table(frame, path)
        return len(frame)
    rows: list[tuple[object, ...]]
    if table == "flows":
        header = FLOW_COLUMNS
        rows = [
            (
                r.src_ip,
                r.dst_ip,
                r.protocol.value,
                r.dst_port,
                r.connections,
                r.packets,
                iso_time(r.first_seen),
                iso_time(r.last_seen),
                r.direction.value,
                r.outcome.value,
            )
            for r in flow_table.flow_rows()
        ]
    else:
        header = DNS_COLUMNS
        rows = [
            (
                d.client_ip,
                d.name,
                d.address,
                CNAME_SEPARATOR.join(d.cname_chain),
                d.server_ip,
                d.ttl,
                d.answers,
                iso_time(d.first_seen),
                iso_time(d.last_seen),
            )
            for d in flow_table.dns_rows()
        ]
    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            ending = _line_end(v for row in rows for v in row)
            writer = csv.writer(stream, lineterminator=ending)
            writer.writerow(header)
            writer.writerows(rows)

    try:
        replace_file(Path(path), write)
    except OSError as error:
        raise OutputError(str(path), f"cannot write: {error.strerror or error}") from error
    return len(rows)
