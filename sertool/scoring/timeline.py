"""Timeline pictures of long recordings: ``predict --segments`` output drawn as class probabilities over time.

Reads the CSV ``sertool predict --segments`` writes (:mod:`sertool.inference.rows`: ``path``, ``start``,
``end``, ``predicted``, ``confidence``, ``p_<class>``..., ``duration``, ``flags``, ``error``). Per file, one
panel: the class probabilities stacked over time (each window's probabilities at its centre, the first
and last held out to the recording's edges), windows with input-check flags shaded and their flag names
written above. Numeric columns that are not probabilities (regression outputs such as ``pred_arousal``)
get a panel of lines below. At most :data:`MAX_FILES` files are drawn; ``file`` picks one.

matplotlib is heavy: it is imported when a picture is drawn, never at module load.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sertool.errors import ConfigError, SertoolError
from sertool.io.atomic import atomic_path

#: Columns of predictions.csv that are neither probabilities nor regression outputs.
KNOWN_COLUMNS = frozenset(("path", "id", "speaker", "label", "start", "end", "predicted", "confidence", "duration",
                           "flags", "error", "fold"))
#: Files drawn at most (one panel each); ``file`` picks any one of the others.
MAX_FILES = 12
#: Picture formats, by the output's suffix.
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


@dataclass
class Track:
    """One file's windows: ``start``/``end`` (N,) s, ``probs`` (N, C), ``values`` (N, R), their flags, its errors."""

    path: str
    start: np.ndarray
    end: np.ndarray
    probs: np.ndarray
    values: np.ndarray
    flags: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> int:
        """Windows with at least one flag."""
        return sum(1 for f in self.flags if f)


@dataclass
class Segments:
    """A segments CSV read: its classes (``p_<class>`` columns), regression targets and one Track per file."""

    path: Path
    classes: list[str]
    targets: list[str]
    tracks: dict[str, Track]


@dataclass
class TimelineResult:
    """A timeline picture (:func:`sertool.timeline`).

    Attributes
    ----------
    output
        The picture written.
    files
        The files drawn, one panel each, in the CSV's order.
    total
        Files in the CSV.
    left_out
        Files to draw that :data:`MAX_FILES` left out (0 with ``file``).
    classes, targets
        The probability columns' classes and the regression columns drawn.
    """

    output: Path
    files: list[str]
    total: int
    left_out: int
    classes: list[str]
    targets: list[str]


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise SertoolError(f"{where}: column {column!r} is {text!r}, not a number; the file is damaged: write it "
                           "again with `sertool predict --segments`") from None
    if not np.isfinite(value):
        raise SertoolError(f"{where}: column {column!r} is {text!r}; write the file again with "
                           "`sertool predict --segments`")
    return value


def _read_rows(path: Path) -> tuple[list[str], list[dict]]:
    """Header and rows of ``path``; SertoolError for a missing, empty or non-segments file."""
    if not path.is_file():
        raise SertoolError(f"{path}: no such file; give the CSV `sertool predict --segments ... -o CSV` wrote")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns, rows = list(reader.fieldnames or []), list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SertoolError(f"{path}: not a CSV file ({exc}); give the CSV `sertool predict --segments` wrote") from None
    if not columns:
        raise SertoolError(f"{path}: empty; give the CSV `sertool predict --segments` wrote")
    missing = [c for c in ("path", "start", "end") if c not in columns]
    if missing:
        hint = ("it has one row per file: score again with `sertool predict --segments`" if "predicted" in columns
                else "give the CSV `sertool predict --segments` wrote")
        raise SertoolError(f"{path}: no {'/'.join(missing)} column(s); {hint}")
    return columns, rows


def _targets(columns: list[str], scored: list[dict]) -> list[str]:
    """Regression columns: not known, not ``p_``, and a number in every scored row that fills them."""
    found = []
    for c in columns:
        if c in KNOWN_COLUMNS or c.startswith("p_"):
            continue
        filled = [r[c] for r in scored if r.get(c)]
        if filled and all(_is_number(v) for v in filled):
            found.append(c)
    return found


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_segments(path) -> Segments:
    """Read a ``predict --segments`` CSV into one :class:`Track` per file (in the order files first appear).

    Rows with an ``error`` (a file that could not be scored) keep the error on the file's track.

    Raises
    ------
    SertoolError
        A missing or empty file, one without ``start``/``end`` columns (``predict`` without ``--segments``),
        without probability or numeric prediction columns, or with a damaged value.
    """
    path = Path(path)
    columns, rows = _read_rows(path)
    classes = [c[2:] for c in columns if c.startswith("p_")]
    scored = [r for r in rows if not r.get("error") and r.get("start")]
    targets = _targets(columns, scored)
    failed = [r["error"] for r in rows if r.get("error")]
    if not classes and not targets and not scored and failed:  # regression columns are known by their numbers
        raise SertoolError(f"{path}: no scored window to draw ({failed[0]})")
    if not classes and not targets:
        raise SertoolError(f"{path}: no p_<class> or numeric prediction columns; give the CSV "
                           "`sertool predict --segments` wrote")
    if not rows:
        raise SertoolError(f"{path}: no rows; score a recording with `sertool predict --segments` first")
    parts: dict[str, dict] = {}
    for line, r in enumerate(rows, start=2):
        part = parts.setdefault(r.get("path") or "", {"rows": [], "errors": []})
        if r.get("error") or not r.get("start"):
            part["errors"].append(r.get("error") or "no start time")
            continue
        where = f"{path} line {line}"
        start, end = _number(r["start"], where, "start"), _number(r["end"], where, "end")
        if end < start:
            raise SertoolError(f"{where}: end {end} before start {start}; write the file again with "
                               "`sertool predict --segments`")
        part["rows"].append((start, end, [_number(r[f"p_{c}"], where, f"p_{c}") for c in classes],
                             [_number(r[t], where, t) if r.get(t) else np.nan for t in targets], r.get("flags") or ""))
    return Segments(path, classes, targets, {p: _track(p, part) for p, part in parts.items()})


def _track(path: str, part: dict) -> Track:
    """The Track of one file from its parsed rows (sorted by start time)."""
    rows = sorted(part["rows"], key=lambda r: (r[0], r[1]))
    width = (len(rows[0][2]), len(rows[0][3])) if rows else (0, 0)
    return Track(path, np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                 np.array([r[2] for r in rows]).reshape(len(rows), width[0]),
                 np.array([r[3] for r in rows], dtype=float).reshape(len(rows), width[1]),
                 [r[4] for r in rows], part["errors"])


def pick_file(segments: Segments, file: str) -> str:
    """The file of ``segments`` that ``file`` names: its path as written, or a unique file name or path ending.

    Raises
    ------
    SertoolError
        No file or several match (the message lists the CSV's files).
    """
    if file in segments.tracks:
        return file
    matches = [p for p in segments.tracks if Path(p).name == file or p.endswith("/" + file.lstrip("/"))
               or _same_file(p, file)]
    if len(matches) == 1:
        return matches[0]
    listed = ", ".join(list(segments.tracks)[:5]) + (" ..." if len(segments.tracks) > 5 else "")
    why = f"{len(matches)} files match" if matches else "no rows of that file"
    raise SertoolError(f"{segments.path}: --file {file}: {why}; its {len(segments.tracks)} file(s): {listed}")


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _intervals(track: Track) -> list[tuple[float, float, list[str]]]:
    """Flagged windows merged where they overlap: (start, end, flag names in order of first appearance)."""
    merged: list[tuple[float, float, list[str]]] = []
    for s, e, f in zip(track.start, track.end, track.flags):
        if not f:
            continue
        names = [n for n in f.split(";") if n]
        if merged and s <= merged[-1][1]:
            lo, hi, seen = merged[-1]
            merged[-1] = (lo, max(hi, e), seen + [n for n in names if n not in seen])
        else:
            merged.append((float(s), float(e), names))
    return merged


def _curve(track: Track, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Times (window centres, plus the first start and last end) and ``columns`` (N, K) held out to them."""
    centres = (track.start + track.end) / 2
    times = np.concatenate([[track.start[0]], centres, [track.end[-1]]])
    values = np.concatenate([columns[:1], columns, columns[-1:]])
    return times, values


def _colours(classes: list[str]) -> list:
    from matplotlib import colormaps  # matplotlib: heavy (~0.5 s), loaded only when a picture is drawn

    cmap = colormaps["tab10" if len(classes) <= 10 else "tab20"]
    return [cmap(k % cmap.N) for k in range(len(classes))]


def _shade_flags(ax, track: Track) -> None:
    """Flagged stretches of ``track`` hatched on ``ax``, their flag names along the top."""
    for lo, hi, names in _intervals(track):
        ax.axvspan(lo, hi, facecolor="0.5", alpha=0.35, hatch="//", edgecolor="0.2", linewidth=0)
        ax.text((lo + hi) / 2, 1.01, ", ".join(names), transform=ax.get_xaxis_transform(), ha="center",
                va="bottom", fontsize=7, color="0.15", clip_on=False)


def _title(track: Track) -> str:
    name = track.path if len(track.path) <= 70 else "..." + track.path[-67:]
    if not len(track.start):
        return f"{name}: not scored ({track.errors[0] if track.errors else 'no windows'})"
    span = f"{track.end.max():.1f} s, {len(track.start)} windows"
    flagged = f", {track.flagged} flagged (hatched)" if track.flagged else ""
    return f"{name} ({span}{flagged})"


def _draw_probabilities(ax, track: Track, classes: list[str], colours: list) -> None:
    times, probs = _curve(track, track.probs)
    ax.stackplot(times, probs.T, colors=colours, labels=classes, alpha=0.9, linewidth=0)
    ax.set_ylim(0, 1)
    ax.set_ylabel("probability")
    ax.set_xlim(times[0], times[-1])


def _draw_targets(ax, track: Track, targets: list[str]) -> None:
    times, values = _curve(track, track.values)
    for k, name in enumerate(targets):
        ax.plot(times, values[:, k], label=name, linewidth=1.4)
    ax.set_ylabel("predicted value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_xlim(times[0], times[-1])


def plot_timeline(segments: Segments, files: list[str], output: Path, *, note: str = "") -> None:
    """Draw ``files`` of ``segments`` (one panel each; a regression panel below when it has targets).

    Parameters
    ----------
    segments
        The CSV read by :func:`read_segments`.
    files
        Paths of the files to draw, in order.
    output
        The picture: ``.png``, ``.svg`` or ``.pdf``.
    note
        Written under the last panel (e.g. files left out).
    """
    from matplotlib.figure import Figure  # matplotlib: heavy (~0.5 s); no pyplot: the caller's backend stays

    kinds = (["probs"] if segments.classes else []) + (["values"] if segments.targets else [])
    heights = [2.4 if k == "probs" else 1.6 for k in kinds] * len(files)
    fig = Figure(figsize=(12, sum(heights) + 1.0 + 0.45 * len(files)))
    axes = fig.subplots(len(heights), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    colours = _colours(segments.classes)
    for k, path in enumerate(files):
        track = segments.tracks[path]
        panel = axes[k * len(kinds):(k + 1) * len(kinds)]
        _draw_track(panel, kinds, track, segments, colours)
        panel[0].set_title(_title(track), fontsize=9, loc="left", pad=12)
        panel[-1].set_xlabel("time (s)")
    if segments.classes:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles[::-1], labels[::-1], loc="upper right", fontsize=8, title="class", title_fontsize=8,
                   frameon=False)
    drawn = " and ".join((["class probabilities"] if segments.classes else [])
                         + (["predicted values"] if segments.targets else []))
    fig.suptitle(f"{segments.path.name}: {drawn} over time (each window at its centre)", x=0.02, ha="left",
                 fontsize=10)
    if note:
        fig.text(0.02, 0.005, note, fontsize=8, va="bottom")
    fig.tight_layout(rect=(0, 0.02 if note else 0, 0.9 if segments.classes else 1, 0.97))
    with atomic_path(output) as tmp:
        fig.savefig(tmp, dpi=110, format=FORMATS[output.suffix.lower()])


def _draw_track(panel, kinds: list[str], track: Track, segments: Segments, colours: list) -> None:
    if not len(track.start):
        for ax in panel:
            ax.set_axis_off()
        return
    for ax, kind in zip(panel, kinds):
        if kind == "probs":
            _draw_probabilities(ax, track, segments.classes, colours)
        else:
            _draw_targets(ax, track, segments.targets)
        _shade_flags(ax, track)


def timeline(segments_csv, output, *, file: str | None = None, max_files: int = MAX_FILES) -> TimelineResult:
    """Draw a ``predict --segments`` CSV as a timeline picture (module docstring).

    Parameters
    ----------
    segments_csv
        The CSV ``sertool predict --segments -o CSV`` wrote.
    output
        The picture (``.png``, ``.svg`` or ``.pdf``).
    file
        Draw only this file of the CSV (its path, file name or path ending).
    max_files
        Draw at most this many files (the first ones in the CSV) and say so under the picture.

    Returns
    -------
    TimelineResult
        The picture, the files drawn and how many the CSV holds.

    Raises
    ------
    ConfigError
        An output that is not .png, .svg or .pdf.
    SertoolError
        A missing, damaged or non-segments CSV; a ``file`` it does not hold; nothing scored.
    """
    output = Path(output)
    if output.suffix.lower() not in FORMATS:
        raise ConfigError(f"{output}: the picture must end in {', '.join(FORMATS)}")
    segments = read_segments(segments_csv)
    files = [pick_file(segments, file)] if file is not None else list(segments.tracks)
    if not any(len(segments.tracks[f].start) for f in files):
        errors = [e for f in files for e in segments.tracks[f].errors]
        raise SertoolError(f"{segments.path}: no scored window to draw ({errors[0] if errors else 'no rows'}); "
                           "score the recording again with `sertool predict --segments`")
    total = len(segments.tracks)
    drawn = files[:max_files]
    note = (f"{len(drawn)} of {total} files drawn (at most {max_files}); pick another with --file PATH"
            if len(drawn) < len(files) else "")
    output.parent.mkdir(parents=True, exist_ok=True)
    plot_timeline(segments, drawn, output, note=note)
    return TimelineResult(output, drawn, total, len(files) - len(drawn), segments.classes, segments.targets)
