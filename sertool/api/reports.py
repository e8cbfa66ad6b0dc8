"""Reports: :func:`report` (evaluated runs as one HTML page or PDF) and :func:`timeline` (a picture of
``predict --segments`` output)."""

from __future__ import annotations

import os
from typing import Sequence

PathLike = str | os.PathLike


def report(runs: Sequence[PathLike], *, output: PathLike, predictions: Sequence[PathLike] = ()):
    """Evaluated runs as one self-contained HTML page, or a PDF of it (``sertool report``).

    Parameters
    ----------
    runs
        Run folders that ``sertool evaluate`` scored; several add a comparison table (paired bootstrap).
    output
        ``.html`` (pictures inline, no script, nothing fetched) or ``.pdf`` (printed by a headless Chromium).
    predictions
        Predictions CSVs of ``sertool predict`` whose input-check flags the report summarises.

    Returns
    -------
    sertool.scoring.html_report.ReportResult
        The file written, its format, the runs, the number of pictures and notes on what was left out.

    Raises
    ------
    ConfigError
        An output that ends neither in .html nor .pdf.
    SertoolError
        A run that was not evaluated, a damaged metrics.csv, a predictions CSV without flags, or no
        Chromium to print a PDF.
    """
    from sertool.scoring.html_report import write_report  # reads runs (numpy for a comparison): off `--help`

    return write_report(list(runs), output, predictions=list(predictions))


def timeline(segments: PathLike, *, output: PathLike, file: str | None = None):
    """Class probabilities over time of a ``predict --segments`` CSV as a picture (``sertool timeline``).

    Parameters
    ----------
    segments
        The CSV ``sertool predict --segments -o CSV`` wrote.
    output
        The picture: ``.png``, ``.svg`` or ``.pdf``; one panel per file (at most 12).
    file
        Draw only this file of the CSV (its path, file name or path ending).

    Returns
    -------
    sertool.scoring.timeline.TimelineResult
        The picture, the files drawn and how many files the CSV holds.

    Raises
    ------
    ConfigError
        An output that is not .png, .svg or .pdf.
    SertoolError
        A missing, damaged or non-segments CSV, a ``file`` it does not hold, or nothing scored to draw.
    """
    from sertool.scoring.timeline import timeline as draw  # numpy and matplotlib: kept off `sertool --help`

    return draw(segments, output, file=file)
