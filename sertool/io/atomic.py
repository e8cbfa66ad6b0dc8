"""Write a file completely or not at all: write ``<name>.tmp`` beside it, then rename it over the target.

A reader (or a rerun after a kill) sees the old file or the new one, never
half of one. The temporary file is removed when the writing fails.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO, Iterator


def temporary_path(path: str | os.PathLike, *, unique: bool = False) -> Path:
    """``<path>.tmp`` (``<path>.<pid>.tmp`` if ``unique``): where the helpers below write before renaming."""
    path = Path(path)
    return path.with_name(path.name + (f".{os.getpid()}.tmp" if unique else ".tmp"))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False, unique: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write (by any library); on success it replaces ``path``.

    ``fsync`` flushes the new file to disk before the rename (for files a
    resume depends on); ``unique`` names the temporary file after this
    process, for files that several processes may replace at once.
    """
    path = Path(path)
    tmp = temporary_path(path, unique=unique)
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
def atomic_write(path: str | os.PathLike, mode: str = "w", *, fsync: bool = False, unique: bool = False,
                 **open_kwargs) -> Iterator[IO]:
    """``open(path, mode)`` through a temporary file: text mode defaults to UTF-8 and ``newline=""`` (CSV)."""
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
        open_kwargs.setdefault("newline", "")
    with atomic_path(path, unique=unique) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
