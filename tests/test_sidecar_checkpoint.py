from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

import pytest

from discover.errors import ReadError
from sidecar.checkpoint import CHECKPOINT_NAME, Checkpoint, StateDirError, write_atomic


def test_save_then_load_round_trips(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "state")
    assert checkpoint.load() is None
    checkpoint.save({"kind": "x", "rows": [1, 2, 3]})
    assert checkpoint.path == tmp_path / "state" / CHECKPOINT_NAME
    assert Checkpoint(tmp_path / "state").load() == {"kind": "x", "rows": [1, 2, 3]}


def test_save_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path)
    for n in range(5):
        checkpoint.save({"n": n})
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    assert json.loads((tmp_path / CHECKPOINT_NAME).read_text()) == {"n": 4}


def test_leftover_temporary_file_of_a_crash_is_removed_and_old_checkpoint_kept(
    tmp_path: Path,
) -> None:
    Checkpoint(tmp_path).save({"n": 1})
    leftover = tmp_path / f".{CHECKPOINT_NAME}.abc123.tmp"
    leftover.write_text('{"n": 2, "trunc')  # a write a crash cut short
    checkpoint = Checkpoint(tmp_path)
    checkpoint.prepare()
    assert not leftover.exists()
    assert checkpoint.load() == {"n": 1}


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, b"old")
    with pytest.raises(TypeError):
        write_atomic(target, cast(bytes, "not bytes: the write fails half-way"))
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_corrupt_checkpoint_is_a_read_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / CHECKPOINT_NAME).write_text("{not json")
    with pytest.raises(ReadError, match=str(tmp_path / CHECKPOINT_NAME)):
        Checkpoint(tmp_path).load()
    (tmp_path / CHECKPOINT_NAME).write_text("[1, 2]")
    with pytest.raises(ReadError, match="not a JSON object"):
        Checkpoint(tmp_path).load()


def test_unusable_state_dir_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    checkpoint = Checkpoint(blocker / "sub")  # constructing touches nothing
    with pytest.raises(StateDirError, match=str(blocker / "sub")):
        checkpoint.prepare()
    with pytest.raises(StateDirError, match=str(blocker / "sub")):
        checkpoint.save({"n": 1})
    with pytest.raises(StateDirError, match=str(blocker / "sub")):
        checkpoint.load()  # unreadable because of the directory: not a damaged file


def test_a_state_dir_that_comes_back_is_written_again(tmp_path: Path) -> None:
    checkpoint = Checkpoint(tmp_path / "later" / "state")
    (tmp_path / "later").write_text("")  # in the way for now
    with pytest.raises(StateDirError):
        checkpoint.save({"n": 1})
    (tmp_path / "later").unlink()
    checkpoint.save({"n": 2})  # the next try creates the directory
    assert checkpoint.load() == {"n": 2}


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_read_only_state_dir_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StateDirError, match="not writable"):
            Checkpoint(tmp_path).prepare()
    finally:
        tmp_path.chmod(0o700)
