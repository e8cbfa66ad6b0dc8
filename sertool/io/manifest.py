"""Manifests: CSV files of :class:`Utterance` rows, one per audio file.

Columns, in order: ``id, path, label, speaker, gender, session, duration,
corpus, source_id``, then any extra columns (kept as strings and written
back unchanged, e.g. ``text`` or a ``split`` column for ``--protocol column``).

Paths: in the CSV, a relative path is relative to the folder that holds the
CSV (absolute paths stay absolute). :func:`read_manifest` resolves them, so
``Utterance.path`` is always usable as is; :func:`write_manifest` writes them
relative to the new CSV's folder. Move a manifest together with its corpus
and it keeps working.
"""

from __future__ import annotations

import csv
import math
import os
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path

from sertool.errors import ManifestError
from sertool.io.atomic import atomic_write
from sertool.io.csvfile import read_csv

COLUMNS = ("id", "path", "label", "speaker", "gender", "session", "duration", "corpus", "source_id")
REQUIRED_COLUMNS = ("id", "path")


@dataclass(frozen=True)
class Utterance:
    """One audio file and what is known about it.

    ``label`` is empty for unlabelled audio, ``source_id`` is set only on
    augmented copies (the id of the utterance it was made from), ``duration``
    is in seconds, ``session`` is a string ("" when the corpus has none).
    """

    id: str
    path: Path
    label: str = ""
    speaker: str = ""
    gender: str = ""
    session: str = ""
    duration: float = 0.0
    corpus: str = ""
    source_id: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def with_path(self, path: Path) -> "Utterance":
        return replace(self, path=path)


def _keep_name(path: Path) -> Path:
    """``path`` with its folders resolved but its own name kept (a symlinked file stays listed under its name)."""
    path = path.absolute()
    return path.parent.resolve() / path.name


def _rel(path: Path, base: Path) -> str:
    try:
        return os.path.relpath(path, base)
    except ValueError:  # another drive on Windows
        return str(path)


def write_manifest(utterances: list[Utterance], path: str | os.PathLike) -> Path:
    """Write ``utterances`` to ``path`` atomically (temp file + rename).

    Paths are written relative to the manifest's folder. Extra columns are the
    union of every row's ``extra`` keys, in first-seen order.

    Raises
    ------
    ManifestError
        An invalid id (:func:`id_problem`) or the same id twice.
    """
    path = Path(path)
    validate_ids(utterances, where=str(path))
    base = path.parent.resolve()
    extra_cols: list[str] = []
    for utt in utterances:
        extra_cols.extend(k for k in utt.extra if k not in extra_cols and k not in COLUMNS)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS + tuple(extra_cols))
        for u in utterances:
            writer.writerow(
                [u.id, _rel(_keep_name(Path(u.path)), base), u.label, u.speaker, u.gender, u.session,
                 f"{u.duration:.3f}", u.corpus, u.source_id]
                + [u.extra.get(c, "") for c in extra_cols]
            )
    return path


def subset(utterances: list[Utterance], *, speakers: list[str] | None = None,
           per_speaker: int | None = None) -> list[Utterance]:
    """Rows of ``speakers`` only, and at most ``per_speaker`` evenly spaced rows of each (in input order).

    Raises
    ------
    ManifestError
        A requested speaker has no rows.
    """
    if speakers:
        missing = sorted(set(speakers) - {u.speaker for u in utterances})
        if missing:
            raise ManifestError(f"--speakers: {', '.join(missing)} not found (speakers here: "
                                f"{', '.join(sorted({u.speaker for u in utterances})[:10])} ...)")
        utterances = [u for u in utterances if u.speaker in speakers]
    if per_speaker:
        groups: dict[str, list[Utterance]] = {}
        for u in utterances:
            groups.setdefault(u.speaker, []).append(u)
        keep = set()
        for rows in groups.values():
            step = max(1, len(rows) / per_speaker)
            keep.update(rows[int(i * step)].id for i in range(min(per_speaker, len(rows))))
        utterances = [u for u in utterances if u.id in keep]
    return utterances


#: What an id may be: HDF5 stores each id as a name and a string, and every CSV and terminal shows it.
ID_RULE = "ids must be non-empty, not '.' or '..', contain no '/' or control characters, and be unique"


def id_problem(utt_id: str) -> str | None:
    """Why ``utt_id`` cannot be an utterance id (``"contains '/'"``...), or None when it can."""
    if not utt_id:
        return "is empty"
    if utt_id in (".", ".."):
        return "is a folder name"
    if "/" in utt_id:
        return "contains '/'"
    control = next((ch for ch in utt_id if unicodedata.category(ch) == "Cc"), None)
    if control is not None:
        return f"contains the control character {control!r}"
    return None


def validate_ids(utterances: list[Utterance], *, where: str) -> None:
    """Raise ManifestError unless every id is valid (:func:`id_problem`) and unique, naming the rows."""
    first: dict[str, int] = {}
    for row, utt in enumerate(utterances, start=1):
        problem = id_problem(utt.id)
        if problem:
            raise ManifestError(f"{where}: invalid ids: row {row}'s id {utt.id!r} {problem}; {ID_RULE}")
        if utt.id in first:
            raise ManifestError(f"{where}: duplicate utterance ids: {utt.id!r} on rows {first[utt.id]} and {row}; "
                                f"{ID_RULE}")
        first[utt.id] = row


def _check_header(path: Path, header: list[str]) -> None:
    """ManifestError unless ``header`` has the required columns, each column once."""
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(missing)}; a manifest needs at least "
                            f"'id,path' (got header {header!r})")
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise ManifestError(f"{path}: column(s) {', '.join(map(repr, twice))} appear more than once in the header; "
                            "rename or remove the copies")


def _check_ids(path: Path, records: list[tuple[int, list[str]]], id_col: int) -> None:
    """ManifestError naming the line of the first invalid id, or both lines of the first repeated one."""
    first: dict[str, int] = {}
    for line, row in records:
        utt_id = row[id_col]
        problem = id_problem(utt_id)
        if problem:
            raise ManifestError(f"{path}, line {line}: invalid ids: {utt_id!r} {problem}; {ID_RULE}: fix the id or "
                                "regenerate the manifest with `sertool prepare`")
        if utt_id in first:
            raise ManifestError(f"{path}, lines {first[utt_id]} and {line}: duplicate utterance ids: {utt_id!r} on "
                                f"both; {ID_RULE}: rename or remove one of the rows")
        first[utt_id] = line


def _table(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The checked ``(header, [(line, fields)])`` of a manifest: readable, valid CSV, valid and unique ids.

    Raises ManifestError naming the file (and the line) for anything else.
    """
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; create one with `sertool prepare`")
    header, records = read_csv(path, error=ManifestError,
                               fix="fix the row or regenerate the manifest with `sertool prepare`")
    _check_header(path, header)
    _check_ids(path, records, header.index("id"))
    return header, records


def read_sources(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(id, absolute audio path)`` of every row, without building Utterances (a fast path).

    Raises ManifestError as :func:`read_manifest` does.
    """
    path = Path(path)
    header, records = _table(path)
    if "duration" in header:  # the same checks as read_manifest's, so both fail alike
        column = header.index("duration")
        for line, row in records:
            _duration(path, line, row[column])
    base = str(path.parent.resolve())
    id_col, path_col = header.index("id"), header.index("path")
    return [(row[id_col], _absolute(base, row[path_col])) for _, row in records]


def _absolute(base: str, audio_path: str) -> str:
    """A manifest's audio path resolved against the manifest's folder ``base`` (absolute paths stay)."""
    return os.path.normpath(os.path.join(base, audio_path))


def _duration(path: Path, line: int, value: str) -> float:
    """The ``duration`` field of a row (empty: 0.0); ManifestError unless a finite number of seconds >= 0."""
    try:
        duration = float(value or 0.0)
    except ValueError:
        duration = math.nan
    if not math.isfinite(duration) or duration < 0:
        raise ManifestError(f"{path}, line {line}: duration {value!r} is not a number of seconds; fix it, or leave "
                            "it empty")
    return duration


def _utterance(base: str, values: dict[str, str], duration: float, extra_cols: list[str]) -> Utterance:
    """The Utterance of one row's ``values`` (column -> field)."""
    return Utterance(
        id=values["id"], path=Path(_absolute(base, values["path"])), label=values.get("label", ""),
        speaker=values.get("speaker", ""), gender=values.get("gender", ""), session=values.get("session", ""),
        duration=duration, corpus=values.get("corpus", ""), source_id=values.get("source_id", ""),
        extra={c: values[c] for c in extra_cols},
    )


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest CSV; relative paths are resolved against its folder.

    Raises
    ------
    ManifestError
        A missing or unreadable file, text that is not UTF-8 or holds a NUL
        byte, invalid CSV (an unclosed quote, a row of the wrong length),
        missing ``id``/``path`` columns or a column twice, a bad duration,
        an invalid id (empty, '.', '..', '/', a control character) or the
        same id twice; the message names the file and the line, before any
        row is used.
    """
    path = Path(path)
    header, records = _table(path)
    base = str(path.parent.resolve())
    extra_cols = [c for c in header if c not in COLUMNS]
    utterances = []
    for line, row in records:
        values = dict(zip(header, row))
        utterances.append(_utterance(base, values, _duration(path, line, values.get("duration", "")), extra_cols))
    return utterances
