"""Shared by the bench scripts: the RAVDESS rows they time, machine description, README table replacement."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from sertool import __version__

README = Path(__file__).resolve().parent / "README.md"
#: The shared RAVDESS copy beside the repository (``--data`` default of every bench script).
DEFAULT_RAVDESS = str(Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess")


def ravdess_rows(data: str, *, warm: bool = True) -> tuple[list, float]:
    """``(manifest rows, seconds of audio)`` of the RAVDESS copy at ``data``.

    ``warm`` reads every file once, so timings start from a warm page cache.
    """
    from sertool.corpora import ravdess
    from sertool.io.report import RunReport

    rows = ravdess.prepare(Path(data), report=RunReport())
    if warm:
        for utt in rows:
            Path(utt.path).read_bytes()
    return rows, sum(u.duration for u in rows)


def machine() -> str:
    """``"2 cores, <CPU model>, Python x.y.z, sertool v"`` for table stamps."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, sertool {__version__}"


def replace_section(path: Path, name: str, text: str) -> bool:
    """Replace the text between ``<!-- NAME-table:start -->`` and ``:end`` in ``path``; False when it has none."""
    start, end = f"<!-- {name}-table:start -->", f"<!-- {name}-table:end -->"
    content = path.read_text()
    if start not in content:
        return False
    head, rest = content.split(start)
    _, tail = rest.split(end)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")
    print(f"updated {path} ({name})")
    return True


def write_table(name: str, table: str, *, heading: str = "") -> None:
    """Replace the text between ``<!-- NAME-table:start -->`` and ``:end`` in bench/README.md.

    A missing section is appended under ``heading``.
    """
    start, end = f"<!-- {name}-table:start -->", f"<!-- {name}-table:end -->"
    text = README.read_text()
    if start not in text:
        README.write_text(f"{text}\n{heading}\n\n{start}\n{end}\n")
    replace_section(README, name, table)