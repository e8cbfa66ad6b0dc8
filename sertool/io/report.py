"""RunReport: counts finished items, records per-item failures, picks the exit code."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from sertool.errors import SertoolError
from sertool.io.atomic import atomic_write
from sertool.io.csvfile import read_csv
from sertool.io.scan import ScanSkips

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TOO_MANY_FAILURES = 3

FAILURE_COLUMNS = ("id", "path", "stage", "error")
WARNING_COLUMNS = ("id", "path", "stage", "warning")


def _earlier_warnings(path: Path) -> list[list[str]]:
    """The rows of an earlier warnings file, in :data:`WARNING_COLUMNS` order.

    Raises
    ------
    SertoolError
        The file is damaged: unreadable, not UTF-8 CSV, or without those columns.
    """
    header, records = read_csv(path, fix="the file only lists warnings")
    missing = [c for c in WARNING_COLUMNS if c not in header]
    if missing:
        raise SertoolError(f"{path}: not a warnings file (no {', '.join(missing)} column)")
    columns = [header.index(c) for c in WARNING_COLUMNS]
    return [[row[i] for i in columns] for _, row in records]


@dataclass(frozen=True)
class Failure:
    """One item that could not be processed."""

    id: str
    path: str
    stage: str
    error: str


@dataclass
class RunReport:
    """What a command did: how many items succeeded, were skipped, or failed.

    Parameters
    ----------
    max_failures
        How many failed items are tolerated before :meth:`exit_code` returns 3.
    """

    max_failures: int = 0
    ok: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)
    #: Where :meth:`write_failures` last wrote the failures (None: nothing failed).
    failures_path: Path | None = None
    #: Items that were processed but deserve a look (e.g. a truncated file scored from the part that decodes).
    warnings: list[Failure] = field(default_factory=list)
    warnings_path: Path | None = None
    #: Items scored with input-check flags (``predict``'s flags column): flag name -> items, and items with any.
    flags: dict[str, int] = field(default_factory=dict)
    flagged: int = 0
    #: What folder scans passed over (files of no audio format, hidden ones, unreadable folders).
    scan: ScanSkips = field(default_factory=ScanSkips)

    def fail(self, id: str, path: str | os.PathLike, stage: str, error: BaseException | str) -> None:
        """Record that item ``id`` failed at ``stage``."""
        self.failures.append(Failure(str(id), str(path), stage, str(error)))

    def warn(self, id: str, path: str | os.PathLike, stage: str, message: str) -> None:
        """Record a warning about item ``id`` (it still counts as done; exit codes ignore warnings)."""
        self.warnings.append(Failure(str(id), str(path), stage, str(message)))

    def flag(self, names) -> None:
        """Count one scored item whose rows carry the flag ``names`` (nothing when there are none)."""
        if names:
            self.flagged += 1
            for name in names:
                self.flags[name] = self.flags.get(name, 0) + 1

    def flag_line(self, command: str, what: str = "files") -> str | None:
        """``<command>: 3 of 40 files flagged (quiet 2, clipped 1); see the flags column``, or None."""
        if not self.flagged:
            return None
        ordered = sorted(self.flags.items(), key=lambda item: (-item[1], item[0]))  # most frequent first
        counts = ", ".join(f"{name} {count}" for name, count in ordered)
        return f"{command}: {self.flagged} of {self.ok} {what} flagged ({counts}); see the flags column"

    def write_warnings(self, path: str | os.PathLike, *, keep=None) -> Path | None:
        """Write the warnings as CSV (id, path, stage, warning) atomically.

        Rows of an earlier file for which ``keep(row)`` is true (items this run
        skipped because an earlier run did them) are kept (None: none are);
        the file is removed when nothing is left. A damaged earlier file (not
        UTF-8 CSV, other columns) is replaced by this run's warnings, and a
        warning saying so is added to :attr:`warnings` (shown, not written).
        """
        path = Path(path)
        self.warnings_path = None
        rows = [[w.id, w.path, w.stage, w.error] for w in self.warnings]
        damage = None
        if keep is not None and path.exists():
            try:
                rows = [row for row in _earlier_warnings(path) if keep(dict(zip(WARNING_COLUMNS, row)))] + rows
            except SertoolError as exc:  # the earlier file is replaced by this run's warnings
                damage = (f"{exc}; it was replaced by this run's warnings (those of files done by earlier runs are "
                          "lost: rerun with --no-resume / --overwrite to see them again)")
        if not rows:
            path.unlink(missing_ok=True)
        else:
            with atomic_write(path) as fh:
                writer = csv.writer(fh)
                writer.writerow(WARNING_COLUMNS)
                writer.writerows(rows)
            self.warnings_path = path
        if damage:
            self.warn("", path, "resume", damage)  # shown on stderr; not in the file
        return self.warnings_path

    @property
    def failed(self) -> int:
        return len(self.failures)

    def exit_code(self) -> int:
        """0 when failures are within ``max_failures``, else 3."""
        return EXIT_TOO_MANY_FAILURES if self.failed > self.max_failures else EXIT_OK

    def write_failures(self, path: str | os.PathLike) -> Path | None:
        """Write ``failures.csv`` (id, path, stage, error) atomically.

        A stale file from an earlier run is removed when this run had no
        failures, so the file on disk always describes the latest run.
        Returns the path written, or None.
        """
        path = Path(path)
        if not self.failures:
            path.unlink(missing_ok=True)
            self.failures_path = None
            return None
        with atomic_write(path) as fh:
            writer = csv.writer(fh)
            writer.writerow(FAILURE_COLUMNS)
            for f in self.failures:
                writer.writerow([f.id, f.path, f.stage, f.error])
        self.failures_path = path
        return path

    def done(self, count: int = 1) -> None:
        """Count ``count`` items finished by this run."""
        self.ok += count

    def skip(self, count: int = 1) -> None:
        """Count ``count`` items already done by an earlier run (or left out on purpose)."""
        self.skipped += count

    def summary(self, what: str = "items") -> str:
        """Counts only, e.g. ``"958 items ok, 0 skipped, 2 failed"``."""
        return f"{self.ok} {what} ok, {self.skipped} skipped, {self.failed} failed"

    def line(self, command: str, *, done: str = "done", skipped: str = "skipped", target=None,
             seconds: float | None = None) -> str:
        """The one summary line every command prints on stderr, in one format:

        ``<command>: <ok> <done>, <skipped> <skipped>, <failed> failed -> <target> (<seconds> s)``,
        e.g. ``extract mfcc: 958 extracted, 0 up to date, 2 failed -> feats/m.mfcc-57afd75a.h5 (1.6 s)``,
        then what folder scans passed over (``; 3 files skipped (not audio: .txt 2, .json 1)``).
        """
        text = f"{command}: {self.ok} {done}, {self.skipped} {skipped}, {self.failed} failed"
        if target is not None:
            text += f" -> {target}"
        text += f" ({seconds:.1f} s)" if seconds is not None else ""
        return text + (f"; {self.scan.text()}" if self.scan.total else "")
