"""`netpol-discover agent` on the command line: options, and bad setups as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from discover.cli import main
from discover.commands.agent import parse_checkpoint_interval, parse_duration, parse_max_edges
from discover.errors import ConfigurationError
from sidecar.agent import Agent, AgentOptions
from sidecar.agent_metrics import AgentFigures, InventoryFigures, agent_samples


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("24h", 86400.0), ("7d", 604800.0),
        ("1w", 604800.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("none", None), ("0", None),
    ],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1y", "h", "10 m", "-5m", "5m3"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ConfigurationError, match="--duration"):
        parse_duration(text)


def test_bad_duration_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", "--duration", "soon"])
    assert exit_info.value.code == 2
    assert "--duration" in capsys.readouterr().err


def test_bad_listen_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["agent", "--state-dir", str(tmp_path), "--listen", "nowhere"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["netpol-discover: error: --listen 'nowhere': expected HOST:PORT"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint-interval", "0"], "--checkpoint-interval '0': must be a number of "
         "seconds > 0"),
        (["--checkpoint-interval", "-1"], "must be a number of seconds > 0"),
        (["--checkpoint-interval", "nan"], "must be a number of seconds > 0"),
        (["--checkpoint-interval", "soon"], "must be a number of seconds > 0"),
        (["--max-edges", "-1"], "--max-edges '-1': must be a whole number >= 0"),
        (["--max-edges", "1.5"], "must be a whole number >= 0"),
    ],
)
def test_bad_values_are_usage_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Checked while parsing (exit 2), by the same parsers `manifests` uses.
    with pytest.raises(SystemExit) as exit_info:
        main(["agent", "--state-dir", str(tmp_path), *argv])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"netpol-discover agent: error: argument {argv[0]}: ")
    assert message in last


def test_parsers_accept_what_the_agent_runs_with() -> None:
    assert parse_checkpoint_interval("0.5") == 0.5 and parse_checkpoint_interval("60") == 60
    assert parse_max_edges("0") == 0 and parse_max_edges("100000") == 100_000


def test_agent_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["agent", "--help"])
    out = capsys.readouterr().out
    assert "examples:\n  netpol-discover agent --interface any --duration 24h" in out


def test_missing_interface_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["agent", "--interface", "no-such-if9", "--state-dir", str(tmp_path),
                 "--listen", "127.0.0.1:0"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "capture on interface 'no-such-if9'" in err[0]


def test_unusable_state_dir_does_not_stop_the_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 15, item 9: it used to exit 1 here (a crash loop in a DaemonSet). Now the
    agent goes on to capture; this one stops only because its interface doesn't exist."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    code = main(["agent", "--state-dir", str(blocker / "state"), "--listen", "127.0.0.1:0",
                 "--interface", "no-such-if9"])  # fmt: skip
    assert code == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "sidecar.agent"]
    assert any("checkpoint failed, capturing and serving on" in line
               and f"state directory {blocker / 'state'}: Not a directory" in line
               for line in logged)  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "capture on interface 'no-such-if9'" in err[0]


@pytest.mark.parametrize(
    "text",
    ['{"kind": "netpol-discover-summary", "schema_', '{"kind": "something-else"}', "[]"],
)
def test_unreadable_checkpoint_is_set_aside_and_a_new_window_starts(
    text: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "summary.json").write_text(text)
    agent = Agent(AgentOptions(state_dir=tmp_path))
    assert agent.table.edge_count == 0 and agent.counters()["packets"] == 0
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("summary.json.unreadable-")]
    assert len(kept) == 1 and kept[0].read_text() == text
    assert not (tmp_path / "summary.json").exists()
    assert "unreadable checkpoint" in caplog.text and str(tmp_path / "summary.json") in caplog.text


def test_agent_samples_cover_every_counter_and_the_optional_gauges() -> None:
    figures = AgentFigures(
        counters={"packets": 10, "kernel_drops": 2, "edges_dropped": 3}, edges=4, dns_rows=5,
        window_start=100.0, window_end=None, window_open=True, checkpoint_age=None,
    )  # fmt: skip
    values = {s.name: s.value for s in agent_samples(figures)}
    assert values["packets_total"] == 10 and values["kernel_drops_total"] == 2
    assert values["edges_dropped_total"] == 3 and values["parse_errors_total"] == 0
    assert values["edges"] == 4 and values["dns_answers"] == 5 and values["window_open"] == 1
    assert values["checkpoint_errors_total"] == 0
    assert "window_end_timestamp_seconds" not in values
    assert not any(name.startswith("inventory_") for name in values)
    later = AgentFigures(
        counters={}, edges=0, dns_rows=0, window_start=100.0, window_end=200.0,
        window_open=False, checkpoint_age=1.5,
        inventory=InventoryFigures(writes=3, lists=1, pod_changes=7, errors=2, age=4.0),
    )  # fmt: skip
    values = {s.name: s.value for s in agent_samples(later)}
    assert values["window_end_timestamp_seconds"] == 200.0 and values["window_open"] == 0
    assert values["checkpoint_age_seconds"] == 1.5
    assert values["inventory_pod_changes_total"] == 7 and values["inventory_age_seconds"] == 4.0
