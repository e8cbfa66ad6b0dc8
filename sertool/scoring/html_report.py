"""``report``: evaluated runs as one self-contained HTML page (or a PDF of it, printed by a headless Chromium).

Per run, read from its folder: the data (manifests, corpora, speakers, label counts, from ``run.json``,
the folds' ``split.csv`` and the manifest's ``corpus`` column), the protocol and how each choice was made
(each fold's speakers per role, the epoch or C its validation speakers chose from ``train_log.csv`` and
``config.json``, the calibration temperature), the metrics of ``sertool evaluate`` (``metrics.csv``:
pooled with 95 % intervals, mean and std over folds, every fold; any metric it holds, so regression
columns such as CCC or MAE appear too), per-class scores, the pictures evaluate drew (confusion,
reliability diagram with ECE, training curves), cross-corpus scores (``evaluate --on`` folders
``cross-*``, and a ``crosscorpus`` matrix when the run belongs to one), every other PNG in the run
folder ("other figures": regression scatter plots, say) and the flags of predictions CSVs (the sections:
:mod:`sertool.scoring.report_sections`). Several runs add a comparison table with the paired bootstrap
of :mod:`sertool.scoring.compare`.

The page holds no script and no reference outside itself: pictures are ``data:`` URIs, styles inline,
links only to anchors of the page. Every string read from a file is HTML-escaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sertool import __version__
from sertool.errors import ConfigError, SertoolError
from sertool.io.atomic import atomic_write
from sertool.io.webpage import Page, esc, print_pdf, table
from sertool.scoring.report_sections import (cross_section, data_section, flag_summary, flags_section, fold_dirs,
                                             metrics_section, other_figures, protocol_section, run_predictions)
from sertool.training.runs import read_run_info

#: Output formats, by suffix.
FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; padding: 0 1em; max-width: 90em; color: #222;
       line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #357; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.5em; color: #357; }
table { border-collapse: collapse; margin: .6em 0; font-size: .9em; display: block; overflow-x: auto; }
th, td { border: 1px solid #bbb; padding: .2em .5em; text-align: left; vertical-align: top; }
th { background: #eef2f6; } td.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { display: inline-table; margin: .8em 1em .8em 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { display: table-caption; caption-side: bottom; font-size: .85em; color: #555; }
.note { color: #666; font-size: .9em; }
code { background: #f4f4f4; padding: 0 .2em; }
@media print { body { margin: 0; max-width: none; } figure { break-inside: avoid; } }
"""


@dataclass
class ReportResult:
    """A report written (:func:`sertool.report`).

    Attributes
    ----------
    output
        The HTML page or PDF written.
    format
        ``html`` or ``pdf``.
    runs
        The run folders reported, in order.
    figures
        Pictures embedded.
    notes
        What could not go in (a damaged picture, an unreadable manifest), one line each.
    """

    output: Path
    format: str
    runs: list[Path]
    figures: int
    notes: list[str]


def check_evaluated(run_dir: Path) -> None:
    """SertoolError unless ``run_dir`` holds evaluate's metrics.csv (itself, or a ``cross-*`` folder)."""
    if not (run_dir / "metrics.csv").is_file() and not any(run_dir.glob("cross-*/metrics.csv")):
        raise SertoolError(f"{run_dir} has no evaluation: run sertool evaluate {run_dir}")


def run_section(page: Page, run_dir: Path, index: int) -> None:
    """Every section of one evaluated run."""
    info = read_run_info(run_dir)
    folds = fold_dirs(run_dir)
    page.add(f'<h2 id="run-{index}">{esc(run_dir)}</h2>')
    if not info:
        page.note(f"{run_dir}: no run.json (not a run folder written by sertool train)")
    data_section(page, run_dir, info, folds)
    if folds:
        protocol_section(page, info, folds)
    if (run_dir / "metrics.csv").is_file():
        metrics_section(page, run_dir)
    cross_section(page, run_dir)
    other_figures(page, run_dir)
    flagged = run_predictions(run_dir)
    if flagged:
        flags_section(page, flagged)


def _compare_section(page: Page, runs: list[Path]) -> None:
    """The table of ``sertool compare`` (paired bootstrap of each run's UA, or CCC per target, against the first)."""
    from sertool.scoring.compare import _cells, _columns, compare_runs  # numpy: only a report of several runs

    try:
        rows = compare_runs(runs)
    except (SertoolError, KeyError) as exc:
        page.add("<h2>Comparison</h2>")
        page.note(f"no comparison table: {exc}")
        return
    columns = _columns(rows)
    score = "CCC" if "CCC" in columns else "UA"
    page.add("<h2>Comparison</h2>", f"<p>Pooled scores with 95 % intervals, fold mean and std of {score}"
             + (" (one row per run and target)" if score == "CCC" else "") + f"; {score}_diff: each run minus the "
             "first, bootstrapped <em>paired</em> (the same resampled test utterances score both runs) when both "
             "scored the same utterances; p_not_better: share of resamples where the run is not better than the "
             "first.</p>")
    page.add(table(list(columns), [_cells(r) for r in rows], numeric_from=2))


def build_html(runs: list[Path], predictions: list[Path] = ()) -> Page:
    """The page of ``runs`` (evaluated run folders) and the flags of ``predictions`` CSVs."""
    page = Page()
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page.add("<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
             'style-src \'unsafe-inline\'">',
             f"<title>sertool report: {esc(', '.join(r.name for r in runs))}</title>",
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>sertool report</h1><p class=note>sertool {esc(__version__)}, {esc(stamp)}. Runs:</p><ol>",
             *(f'<li><a href="#run-{k}">{esc(r)}</a></li>' for k, r in enumerate(runs)), "</ol>")
    if len(runs) > 1:
        _compare_section(page, runs)
    for k, run in enumerate(runs):
        run_section(page, run, k)
    if predictions:
        page.add("<h2>Predictions</h2>")
        flags_section(page, list(predictions))
    page.add("</body></html>")
    return page


def write_report(runs, output, *, predictions=()) -> ReportResult:
    """Write the report of ``runs`` (module docstring) to ``output``: ``.html`` (or ``.htm``) or ``.pdf``.

    Raises
    ------
    ConfigError
        An output that ends neither in .html nor .pdf.
    SertoolError
        A run without evaluation, a damaged metrics.csv, a predictions CSV without flags, no browser for a PDF.
    """
    output = Path(output)
    kind = FORMATS.get(output.suffix.lower())
    if kind is None:
        raise ConfigError(f"{output}: the report must end in .html or .pdf")
    runs = [Path(r) for r in runs]
    for run in runs:
        check_evaluated(run)
    predictions = [Path(p) for p in predictions]
    for path in predictions:
        flag_summary(path)  # a CSV without flags fails before anything is built
    page = build_html(runs, predictions)
    text = "\n".join(page.parts)
    output.parent.mkdir(parents=True, exist_ok=True)
    if kind == "pdf":
        print_pdf(text, output)
    else:
        with atomic_write(output, encoding="utf-8") as fh:
            fh.write(text)
    return ReportResult(output, kind, runs, page.figures, page.notes)
