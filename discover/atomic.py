"""Outputs that land whole or not at all: a file is replaced only after its new content was
written and synced; a directory of outputs is swapped in as a set.

Why: on a full disk a half-written policies.yaml (or a truncated flows.csv in place of a
good one) is worse than none, and a new policies.yaml beside an old report.html tells a
reviewer the wrong story. The new content goes to a temporary name in the same directory
(same file system, so the rename is atomic), is fsynced, renamed over the old one, and the
directory is fsynced so the rename itself survives a crash. On any error the temporary
file or directory is removed and the old output is left as it was.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

_RENAME_EXCHANGE = 2  # linux/fs.h


def fsync_path(path: Path, *, directory: bool = False) -> None:
    flags = os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0)
    descriptor = os.open(path, flags)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def replace_file(path: Path, write: Callable[[Path], None]) -> None:
    """`write(temporary)` then, once it is synced whole, rename it to `path`. OSError
    passes through (after the temporary file is removed)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        fsync_path(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    fsync_path(path.parent if str(path.parent) else Path("."), directory=True)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two directory entries atomically (Linux renameat2 RENAME_EXCHANGE); False
    where the C library or the file system can't."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    result = renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second),
                       _RENAME_EXCHANGE)
    if result == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(first))


def replace_directory(out_dir: Path, write: Callable[[Path], None],
                      names: frozenset[str]) -> None:
    """`write(staging)` fills a new directory beside `out_dir` with the files `names`;
    then it takes the place of `out_dir` in one step (the old one's other entries, which
    are not ours, move along). On an error nothing of `out_dir` changes and the staging
    directory is removed."""
    out_dir = Path(out_dir)
    parent = out_dir.parent if str(out_dir.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=parent))
    try:
        # mkdtemp makes it private; the outputs get the mode the directory had, or the
        # one mkdir would give
        os.chmod(staging, out_dir.stat().st_mode & 0o7777 if out_dir.is_dir()
                 else 0o777 & ~_umask())
        write(staging)
        for entry in staging.iterdir():
            fsync_path(entry)
        foreign = _carry_over(out_dir, staging, names) if out_dir.is_dir() else []
        fsync_path(staging, directory=True)
        if out_dir.is_dir():
            _swap(staging, out_dir)
        else:
            os.rename(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # The new set is in place. The old directory now sits at the staging name: its
    # subdirectories (not ours, and not hard-linkable) move into the new one, then it
    # goes. A failure here leaves it there, whole, rather than deleting what it holds.
    for name in foreign:
        os.rename(staging / name, out_dir / name)
    if staging.exists():
        shutil.rmtree(staging)
    fsync_path(parent, directory=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _swap(staging: Path, out_dir: Path) -> None:
    if _exchange(staging, out_dir):
        return
    old = staging.with_name(staging.name + ".old")
    os.rename(out_dir, old)
    try:
        os.rename(staging, out_dir)
    except BaseException:
        os.rename(old, out_dir)
        raise
    os.rename(old, staging)


def _carry_over(out_dir: Path, staging: Path, names: frozenset[str]) -> list[str]:
    """Hard-link the files of `out_dir` that are not outputs into `staging`; the names of
    the subdirectories (moved after the swap)."""
    directories = []
    for entry in out_dir.iterdir():
        if entry.name in names or (entry.name.startswith(".") and entry.name.endswith(".tmp")):
            continue
        if entry.is_dir() and not entry.is_symlink():
            directories.append(entry.name)
        else:
            os.link(entry, staging / entry.name, follow_symlinks=False)
    return directories
