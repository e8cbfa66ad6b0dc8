"""Write a file completely or not at all: write a temporary file beside it, then rename it over the target.

A reader (or a rerun after a kill) sees the old file or the new one, never
half of one. The temporary file is created exclusively (``O_CREAT | O_EXCL``,
so a file or symlink planted at its name is never written through) under a
name no other process can predict: ``.<name>.<pid>-<random>.tmp`` in the
target's folder. It is removed when the writing fails; one left by a killed
process is removed by the next write of the same target. Renaming replaces a
symlink planted at the target itself, never the file it points to.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from pathlib import Path
from typing import IO, Iterator


def create_exclusive(path: str | os.PathLike) -> Path:
    """Create ``path`` as a new empty regular file, failing if anything (a file, a symlink) is already there.

    Parameters
    ----------
    path
        The file to create; its permissions follow the umask, as ``open(path, "w")``'s would.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    FileExistsError
        Something exists at ``path`` (a dangling symlink included).
    """
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o666)
    os.close(fd)
    return Path(path)


def _remove_stale(path: Path) -> None:
    """Remove temporary files of ``path`` left by processes that no longer run (a kill -9 mid-write)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[0-9a-f]+\.tmp")
    with contextlib.suppress(OSError):
        for sibling in path.parent.iterdir():
            match = pattern.fullmatch(sibling.name)
            if match and not _alive(int(match.group(1))):
                sibling.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def temporary_path(path: str | os.PathLike) -> Path:
    """A new, exclusively created temporary file beside ``path`` (``.<name>.<pid>-<random>.tmp``).

    Raises
    ------
    OSError
        The folder is not writable.
    """
    path = Path(path)
    _remove_stale(path)
    while True:
        tmp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
        try:
            return create_exclusive(tmp)
        except FileExistsError:  # a name taken (by chance, or planted): draw another
            continue


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write (by any library); on success it replaces ``path``.

    ``fsync`` flushes the new file to disk before the rename (for files a
    resume depends on). Several processes may replace the same ``path`` at
    once: each writes its own temporary file, and the last rename wins.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, fsync: bool = False, **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` through a temporary file: text mode defaults to UTF-8 and ``newline=""`` (CSV)."""
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
        open_kwargs.setdefault("newline", "")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
