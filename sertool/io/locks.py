"""An exclusive, non-blocking lock on a hidden file beside an output: one writer per output file."""

from __future__ import annotations

import fcntl
from pathlib import Path

from sertool.errors import SertoolError


class OutputLock:
    """Hold ``.<name>.lock`` beside ``path`` (flock, released on close or process exit).

    ``acquire()`` raises ``error_type(message)`` at once when another process holds it.
    """

    def __init__(self, path, message: str, error_type: type[SertoolError] = SertoolError):
        self.path = Path(path)
        self.lock_path = self.path.with_name(f".{self.path.name}.lock")
        self.message, self.error_type = message, error_type
        self._fh = None

    def acquire(self) -> "OutputLock":
        self._fh = open(self.lock_path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            self._fh = None
            raise self.error_type(self.message) from None
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
