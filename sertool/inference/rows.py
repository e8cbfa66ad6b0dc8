"""The one row layout of predictions.csv (``predict``, ``stream`` and ``evaluate``), and resuming a partial file.

Columns: ``path``, then for manifest inputs ``id, speaker, label`` (so
scores and metrics need no join), then with segments ``start, end`` (s),
then ``predicted, confidence, p_<class>..., duration, flags, error`` (a regression model: ``pred_<target>...``
in place of ``predicted, confidence, p_<class>...``, :mod:`sertool.models.targets`).
``evaluate`` writes the manifest layout and adds ``fold`` after it.
Probabilities have 4 decimals (``evaluate``: 5), times 3; a failed input
has an empty prediction and its error. ``flags``: the input checks of the
audio the row covers (:mod:`sertool.inference.flags`), names joined by
``;``, empty when clean (and in ``evaluate``, which reads stored features,
not audio).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable

import numpy as np

from sertool.errors import SertoolError
from sertool.io.atomic import atomic_write
from sertool.models.targets import PRED_PREFIX, is_regression

#: Columns a manifest input adds after ``path``, so scores and metrics need no join.
MANIFEST_COLUMNS = ("id", "speaker", "label")


def header(labels: list[str], segments: bool, manifest: bool = False) -> list[str]:
    """The column names of predictions.csv for a model of classes ``labels``.

    Parameters
    ----------
    labels
        Class names, in the model's order.
    segments
        One row per window (``start``, ``end`` columns) instead of one per input.
    manifest
        Add :data:`MANIFEST_COLUMNS` after ``path``.
    """
    lead = ["path", *(MANIFEST_COLUMNS if manifest else ()), *(("start", "end") if segments else ())]
    if is_regression(labels):  # a regression model: one predicted value per target
        return lead + [f"{PRED_PREFIX}{t}" for t in labels] + ["duration", "flags", "error"]
    return lead + ["predicted", "confidence", *(f"p_{c}" for c in labels), "duration", "flags", "error"]


def score_row(path, probs: np.ndarray, duration: float, labels: list[str], span=None, extra=(),
              decimals: int = 4, flags: list[str] = ()) -> list[str]:
    """One scored row: ``probs`` ``(C,)`` of the input ``path`` (``duration`` s), ``span`` (start s, end s) or None.

    ``extra``: the manifest columns' values, when the layout has them; ``decimals``: of the probabilities
    (``evaluate`` keeps 5, which its fused-run checks compare); ``flags``: the input checks' flag names.
    """
    lead = [] if span is None else [f"{span[0]:.3f}", f"{span[1]:.3f}"]
    if is_regression(labels):  # ``probs`` are the predicted values of the targets
        return [str(path), *extra, *lead, *(f"{v:.{decimals}f}" for v in probs), f"{duration:.3f}", ";".join(flags), ""]
    k = int(np.argmax(probs))
    return [str(path), *extra, *lead, labels[k], f"{probs[k]:.{decimals}f}", *(f"{p:.{decimals}f}" for p in probs),
            f"{duration:.3f}", ";".join(flags), ""]


def rows_for(path, duration: float, windows, labels: list[str], segments: bool, extra=(),
             flags: Callable[..., list[str]] | None = None) -> list[list[str]]:
    """The rows of one scored input: one per window (``segments``), else one with the windows' mean probabilities.

    ``windows``: ``[((start s, end s), probabilities (C,))]``. ``flags``: ``flags(span)`` gives the flag names of
    the audio from ``span[0]`` to ``span[1]`` s, ``flags(None)`` those of the whole input
    (:meth:`sertool.inference.flags.InputChecks.flags`); None: no checks (an empty column).
    """
    if segments:
        return [score_row(path, p, duration, labels, span, extra, flags=flags(span) if flags else ())
                for span, p in windows]
    return [score_row(path, np.mean([p for _, p in windows], axis=0), duration, labels, None, extra,
                      flags=flags(None) if flags else ())]


def error_row(path, error: str, labels: list[str], segments: bool, extra=()) -> list[str]:
    """The row of an input that could not be scored: no prediction, and ``error``."""
    blanks = (2 if segments else 0) + (0 if is_regression(labels) else 2) + len(labels) + 2
    return [str(path), *extra, *[""] * blanks, error]


def row_key(row: list[str], columns: list[str]) -> tuple[str, str]:
    """What a row of ``columns`` scored: ``(manifest id, path)``, the id empty without one.

    Manifest rows that share one audio file (segments, duplicates) are told
    apart by their ids; every other input by its path.
    """
    return (row[1] if columns[1:2] == ["id"] else "", row[0])


def _read_text(output: Path) -> str:
    """The text of ``output``; a last line cut inside a UTF-8 character loses that character.

    Raises
    ------
    SertoolError
        Bytes before the end that are not UTF-8 (not a file sertool wrote).
    """
    data = output.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data":  # cut while a character was written
            return data[:exc.start].decode("utf-8")
        raise SertoolError(f"{output}: not UTF-8 text (byte {exc.start}), so not a predictions file sertool "
                           "wrote; use another -o, or --no-resume to overwrite it") from None


def _last_unit(rows: list[list[str]], columns: list[str]) -> tuple[str, str] | None:
    """The key of the last complete row: the input whose rows were written last (None: no complete row)."""
    for r in reversed(rows):
        if len(r) == len(columns):
            return row_key(r, columns)
    return None


def resume(output: Path, columns: list[str]) -> set[tuple[str, str]]:
    """Keep the good rows of an earlier run of ``output`` and return their :func:`row_key` keys.

    Error rows, duplicates (a second row of the same input, or with
    ``--segments`` of the same input and window) and a torn last line are
    dropped; the file is rewritten atomically. With ``--segments`` an
    input's rows are written one after another, so only the input written
    last can have lost windows to an interruption (a kill, a full disk):
    its rows are dropped too and it is scored again.

    Raises
    ------
    SertoolError
        The file has other columns (another model or mode), or is not UTF-8 text.
    """
    text = _read_text(output)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows or (len(rows) == 1 and "\n" not in text and ",".join(columns).startswith(text)):
        rows = [columns]  # empty, or cut inside its header line
    if rows[0] == [c for c in columns if c != "flags"]:
        raise SertoolError(f"{output}: written by an older sertool, without the flags column; use another -o, or "
                           "--no-resume to score every file again")
    if rows[0] != columns:
        raise SertoolError(f"{output}: written by another model or mode (other columns); use another -o "
                           "or --no-resume to overwrite it")
    segments = "start" in columns
    if segments:
        start = columns.index("start")
        key = lambda r: (row_key(r, columns), r[start], r[start + 1])  # noqa: E731
    else:
        key = lambda r: row_key(r, columns)  # noqa: E731
    partial = _last_unit(rows[1:], columns) if segments else None
    seen, good = set(), []
    for r in rows[1:]:
        if len(r) == len(columns) and not r[-1] and key(r) not in seen and row_key(r, columns) != partial:
            seen.add(key(r))
            good.append(r)
    with atomic_write(output) as fh:
        csv.writer(fh).writerows([columns, *good])
    return {row_key(r, columns) for r in good}
