"""`netpol-discover flows` and `dns` run for real on small captures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from discover.cli import main
from discover.flows.flowfiles import read_flows_file
from discover.flows.flowtable import DNS_COLUMNS, FLOW_COLUMNS
from tests.test_sources import CLIENT, COREDNS, SERVER, sample_packets, write_capture

REPO = Path(__file__).resolve().parent.parent


def test_flows_writes_csv_and_reports_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = write_capture(tmp_path / "node.pcap")
    out = tmp_path / "flows.csv"
    assert main(["flows", str(capture), "-o", str(out)]) == 0
    frame = read_flows_file(out)
    assert list(frame.columns) == FLOW_COLUMNS
    assert frame[["src_ip", "dst_ip", "protocol", "dst_port"]].values.tolist() == [
        [CLIENT, COREDNS, "UDP", 53],
        [CLIENT, SERVER, "TCP", 8080],
    ]
    assert (
        out.read_text()
        .splitlines()[2]
        .endswith(",2026-01-01T00:00:01.000000Z,2026-01-01T00:00:02.500000Z,syn,completed")
    )
    stderr = capsys.readouterr().err
    assert stderr == (
        "netpol-discover: 1 file, 6 packets, 2 edges, 1 DNS answer, 0 warnings; "
        f"wrote 2 rows to {out}\n"
    )


def test_flows_writes_parquet_from_several_inputs(tmp_path: Path) -> None:
    first = write_capture(tmp_path / "a.pcap")
    second = write_capture(tmp_path / "b.pcapng", sample_packets(client="10.244.1.9"), pcapng=True)
    out = tmp_path / "flows.parquet"
    assert main(["flows", str(first), str(second), "-o", str(out), "--jobs", "2", "-q"]) == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns) == FLOW_COLUMNS
    assert len(frame) == 4
    assert str(frame["first_seen"].dtype) == "datetime64[ns, UTC]"


def test_dns_command_writes_the_dns_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dns.csv"
    assert main(["dns", str(write_capture(tmp_path / "a.pcap")), "-o", str(out), "-q"]) == 0
    lines = out.read_text().splitlines()
    assert lines == [
        ",".join(DNS_COLUMNS),
        f"{CLIENT},api.example.com,{SERVER},,{COREDNS},30,1,"
        "2026-01-01T00:00:00.500000Z,2026-01-01T00:00:00.500000Z",
    ]
    assert capsys.readouterr().err == ""  # --quiet: no summary line


def test_truncated_capture_warns_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = write_capture(tmp_path / "cut.pcap")
    capture.write_bytes(capture.read_bytes()[:-10])
    out = tmp_path / "flows.csv"
    assert main(["flows", str(capture), "-o", str(out), "-q"]) == 0
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"netpol-discover: warning: {capture}: record 6 at byte ")
    assert len(read_flows_file(out)) == 2


def test_nothing_readable_exits_1_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = write_capture(tmp_path / "cut.pcap")
    capture.write_bytes(capture.read_bytes()[:30])
    out = tmp_path / "flows.csv"
    assert main(["flows", str(capture), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"netpol-discover: error: {capture}: nothing usable read: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert not out.exists()


def test_several_unreadable_inputs_list_each_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("a")
    second.write_text("b")
    assert main(["flows", str(first), str(second), "-o", str(tmp_path / "f.csv")]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1] for line in lines] == [" warning", " warning", " error"]
    assert lines[2].startswith("netpol-discover: error: all 2 inputs: nothing usable read")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["flows", "x.pcap", "-o", "flows.xlsx"], "use .csv or .parquet"),
        (["flows", "x.pcap"], "the following arguments are required: -o/--output"),
        (["flows", "-o", "f.csv"], "the following arguments are required: INPUT"),
        (["flows", "x.pcap", "-o", "f.csv", "--jobs", "0"], "expected a whole number >= 1"),
    ],
)
def test_usage_errors_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    assert message in capsys.readouterr().err


def test_unwritable_output_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = write_capture(tmp_path / "a.pcap")
    out = tmp_path / "missing-dir" / "flows.csv"
    assert main(["flows", str(capture), "-o", str(out), "-q"]) == 1
    assert capsys.readouterr().err.startswith(f"netpol-discover: error: {out}: cannot write")


def test_help_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("flows", "dns"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert f"netpol-discover {command} node-a.pcap" in text
        assert "Exit status" in text


def test_the_installed_command_runs_as_a_process(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "a.pcap")
    out = tmp_path / "flows.csv"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "discover", "flows", str(capture), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith("netpol-discover: 1 file, 6 packets, 2 edges")
    assert len(read_flows_file(out)) == 2
    missing = subprocess.run(
        [sys.executable, "-m", "discover", "flows", str(tmp_path / "nope.pcap"), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert missing.returncode == 1
    assert missing.stderr == f"netpol-discover: error: {tmp_path / 'nope.pcap'}: no such file\n"
