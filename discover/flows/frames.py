"""Flow and DNS rows as pandas DataFrames and back: the only place they change form.

The stages pass `FlowRow`/`DnsRow` records; frames exist where a table meets a file (the
flows file reader and the CSV/Parquet writers) and for users of the DataFrame accessors
(`FlowTable.flows_frame`/`dns_frame`). Frames have the columns and dtypes of the flows
file contract: IPs and enums as text, counts int64, times `datetime64[ns, UTC]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address

import numpy as np
import pandas as pd

from discover.flows.events import DirectionEvidence, IPAddress, Outcome, Protocol
from discover.flows.flowtable import (
    CNAME_SEPARATOR,
    DNS_COLUMNS,
    FLOW_COLUMNS,
    DnsRow,
    FlowRow,
)


def flows_frame(rows: Sequence[FlowRow]) -> pd.DataFrame:
    """FLOW_COLUMNS with the column types of docs/tables.md, rows in the order given
    (unknown times NaT)."""
    return pd.DataFrame(
        {
            "src_ip": pd.Series([str(r.src_ip) for r in rows], dtype="str"),
            "dst_ip": pd.Series([str(r.dst_ip) for r in rows], dtype="str"),
            "protocol": pd.Series([r.protocol.value for r in rows], dtype="str"),
            "dst_port": pd.Series([r.dst_port for r in rows], dtype="int64"),
            "connections": pd.Series([r.connections for r in rows], dtype="int64"),
            "packets": pd.Series([r.packets for r in rows], dtype="int64"),
            "first_seen": epoch_series([r.first_seen for r in rows]),
            "last_seen": epoch_series([r.last_seen for r in rows]),
            "direction": pd.Series([r.direction.value for r in rows], dtype="str"),
            "outcome": pd.Series([r.outcome.value for r in rows], dtype="str"),
        },
        columns=FLOW_COLUMNS,
    )


def dns_frame(rows: Sequence[DnsRow]) -> pd.DataFrame:
    """DNS_COLUMNS with the column types of docs/tables.md, rows in the order given."""
    return pd.DataFrame(
        {
            "client_ip": pd.Series([str(r.client_ip) for r in rows], dtype="str"),
            "name": pd.Series([r.name for r in rows], dtype="str"),
            "address": pd.Series([str(r.address) for r in rows], dtype="str"),
            "cname_chain": pd.Series(
                [CNAME_SEPARATOR.join(r.cname_chain) for r in rows], dtype="str"
            ),
            "server_ip": pd.Series([str(r.server_ip) for r in rows], dtype="str"),
            "ttl": pd.Series([r.ttl for r in rows], dtype="int64"),
            "answers": pd.Series([r.answers for r in rows], dtype="int64"),
            "first_seen": epoch_series([r.first_seen for r in rows]),
            "last_seen": epoch_series([r.last_seen for r in rows]),
        },
        columns=DNS_COLUMNS,
    )


def flow_rows_from_frame(frame: pd.DataFrame) -> tuple[FlowRow, ...]:
    """The rows of a frame with FLOW_COLUMNS as `read_flows_file` returns it (canonical IP
    text, protocol upper case, counts and times present, NaT for an unknown time), in
    order. Columns only, never per-row pandas access: this runs on whole flows files."""
    ips: dict[str, IPAddress] = {}

    def ip(text: str) -> IPAddress:
        found = ips.get(text)
        if found is None:
            found = ips[text] = ip_address(text)
        return found

    columns = zip(
        frame["src_ip"].tolist(),
        frame["dst_ip"].tolist(),
        frame["protocol"].tolist(),
        frame["dst_port"].tolist(),
        frame["connections"].tolist(),
        frame["packets"].tolist(),
        epoch_seconds(frame["first_seen"]),
        epoch_seconds(frame["last_seen"]),
        frame["direction"].tolist(),
        frame["outcome"].tolist(),
        strict=True,
    )
    return tuple(
        FlowRow(
            ip(src),
            ip(dst),
            Protocol(protocol),
            int(port),
            int(connections),
            int(packets),
            first,
            last,
            DirectionEvidence(direction),
            Outcome(outcome),
        )
        for src, dst, protocol, port, connections, packets, first, last, direction, outcome
        in columns
    )


def epoch_series(seconds: Sequence[float | None]) -> pd.Series:
    """Float epoch seconds -> datetime64[ns, UTC], rounded to the microsecond pcap gives;
    None -> NaT."""
    known = np.array([s is not None for s in seconds], dtype=bool)
    values = np.array([0.0 if s is None else s for s in seconds], dtype=np.float64)
    micros = np.rint(values * 1e6).astype(np.int64)
    stamps = pd.Series(pd.to_datetime(micros, unit="us", utc=True)).astype("datetime64[ns, UTC]")
    if known.all():
        return stamps
    return stamps.where(known, pd.NaT)


def epoch_seconds(times: pd.Series) -> list[float | None]:
    """A `datetime64[ns, UTC]` column as float epoch seconds (None for NaT), cut to the
    microsecond as `Timestamp.to_pydatetime` cuts it, so `utc_time` gives that datetime
    back."""
    naive = times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    micros = naive.astype("datetime64[us]").astype(np.int64)  # numpy floors
    missing = np.isnat(naive)
    return [None if gone else int(m) / 1e6 for m, gone in zip(micros, missing, strict=True)]
