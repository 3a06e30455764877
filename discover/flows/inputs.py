"""Input selection: what the commands that read traffic (`analyze`, `graph`) accept.

Two kinds of input, told apart here and nowhere else:

- captures (pcap, pcapng, gzipped), agent summaries and Hubble flow files, recognised by
  content and read in parallel into one FlowTable by `discover.flows.sources`;
- flows files (.csv/.parquet, as `flows -o` and `analyze` write them), recognised by their
  extension and read as rows by `discover.flows.flowfiles`. They are already a flow table,
  but one without DNS answers (so no FQDNs), and possibly without times (a file with only
  the four required columns), which is why their rows don't go into a FlowTable: they
  are kept as they are, in file order, before the other inputs' rows.

The inventory comes from files or the live API (`InventorySource`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from discover.errors import ConfigurationError
from discover.flows.flowtable import DnsRow, FlowRow, FlowTable
from discover.flows.sources import FileStats, LoadedInputs, load_inputs

if TYPE_CHECKING:
    from discover.inventory.model import Inventory

FLOWS_FILE_SUFFIXES = (".csv", ".parquet")
NO_DNS_WARNING = (
    "flows files carry no DNS answers: external addresses from them get no FQDN (an "
    "ipBlock instead of an FQDN dependency); give the captures, summaries or Hubble "
    "files they came from for names"
)
NO_TIMES_WARNING = (
    "{path}: no first_seen/last_seen: its addresses are mapped to pods as the inventory "
    "was taken (a pod IP reused since names the wrong pod), and the learning window and "
    "the rules' evidence have no times"
)


@dataclass(frozen=True, slots=True)
class Traffic:
    """Every input read: `flows` are the flows files' rows (in file order), then the
    other inputs' table rows; `loaded` describes every input (flows files included, as
    format "flows.csv"/"flows.parquet") and holds the warnings of all of them."""

    flows: tuple[FlowRow, ...]
    dns: tuple[DnsRow, ...]
    loaded: LoadedInputs


def is_flows_file(path: Path) -> bool:
    return path.suffix.lower() in FLOWS_FILE_SUFFIXES


def read_traffic(
    paths: Sequence[Path], *, jobs: int | None = None, progress: bool = False
) -> Traffic:
    """Read the inputs (see the module docstring); errors as `load_inputs` and
    `read_flow_rows` raise them."""
    from discover.flows.flowfiles import read_flow_rows

    paths = [Path(p) for p in paths]
    if not paths:
        raise ConfigurationError("no input files given")
    files = [p for p in paths if is_flows_file(p)]
    others = [p for p in paths if not is_flows_file(p)]
    flows: list[FlowRow] = []
    stats: list[FileStats] = []
    warnings: list[str] = []
    for path in files:
        rows = read_flow_rows(path)
        flows.extend(rows)
        stats.append(_flows_file_stats(path, rows))
        if any(row.first_seen is None for row in rows):
            warnings.append(NO_TIMES_WARNING.format(path=path))
    if others:
        loaded = load_inputs(others, jobs=jobs, progress=progress)
    else:
        loaded = LoadedInputs(FlowTable(), [], [], None, None)
    flows.extend(loaded.table.flow_rows())
    dns = tuple(loaded.table.dns_rows())
    if files:
        warnings.append(NO_DNS_WARNING)
    merged = LoadedInputs(
        table=loaded.table,
        files=stats + loaded.files,
        warnings=loaded.warnings + warnings,
        window_start=loaded.window_start,
        window_end=loaded.window_end,
        hubble=loaded.hubble,
    )
    return Traffic(tuple(flows), dns, merged)


def _flows_file_stats(path: Path, rows: Sequence[FlowRow]) -> FileStats:
    return FileStats(
        path=str(path),
        format=f"flows{path.suffix.lower()}",
        bytes=path.stat().st_size,
        packets=sum(row.packets for row in rows),
        edges=len(rows),
        dns_answers=0,
        complete=True,
    )


@dataclass(frozen=True, slots=True)
class InventorySource:
    """Where the cluster objects come from: files (`--inventory`, repeatable) or the live
    API (`--kubeconfig`/`--context`), never both."""

    files: tuple[Path, ...] = ()
    kubeconfig: str | None = None
    context: str | None = None

    @property
    def live(self) -> bool:
        return self.kubeconfig is not None or self.context is not None

    @property
    def given(self) -> bool:
        return bool(self.files) or self.live

    def problem(self) -> str | None:
        """What is wrong with the choice (a usage error), None when it is usable."""
        if self.files and self.live:
            return "use --inventory FILE or --kubeconfig/--context, not both"
        if not self.given:
            return (
                "an inventory is needed: --inventory FILE (repeatable) or "
                "--kubeconfig/--context for the live cluster"
            )
        return None

    def load(self) -> Inventory:
        problem = self.problem()
        if problem is not None:
            raise ConfigurationError(problem)
        if self.files:
            from discover.inventory.files import load_inventory_files

            return load_inventory_files(self.files)
        from discover.inventory.live import load_inventory_live

        return load_inventory_live(self.kubeconfig, self.context)


def lost_data_notes(inventory: Inventory) -> list[str]:
    """The inventory notes that mean lost data (skipped objects, refused resources); the
    others (ignored kinds, inferred owners) are for the report."""
    return [
        note
        for note in inventory.notes
        if note.startswith("skipped:") or "forbidden" in note or "unauthorized" in note
    ]
