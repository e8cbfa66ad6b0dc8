"""Progress bars on stderr that switch off when stderr is not a terminal."""

from __future__ import annotations

import contextlib
import sys


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def progress_bar(total: int, enabled: bool | None = None, *, desc: str = "", unit: str = "file"):
    """A tqdm bar on stderr, or a no-op (tqdm not even imported) when disabled or empty.

    ``enabled=None`` means: only when stderr is a terminal.
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show or total == 0:
        yield _NoBar()
        return
    from tqdm import tqdm  # here: the up-to-date `sertool extract` answer (via extraction.pipeline) skips it

    with tqdm(total=total, unit=unit, file=sys.stderr, desc=desc) as bar:
        yield bar
