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
import os
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from sertool.errors import ManifestError
from sertool.io.atomic import atomic_write

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
        Duplicate ids or ids containing '/'.
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


def validate_ids(utterances: list[Utterance], *, where: str) -> None:
    """Raise ManifestError unless ids are non-empty, unique and free of '/'."""
    counts = Counter(u.id for u in utterances)
    dupes = [i for i, n in counts.items() if n > 1]
    if dupes:
        raise ManifestError(f"{where}: duplicate utterance ids {dupes[:5]}; ids must be unique")
    bad = [u.id for u in utterances if not u.id or "/" in u.id or u.id in (".", "..")]
    if bad:
        raise ManifestError(f"{where}: invalid ids {bad[:5]}; ids must be non-empty, not '.' or '..', and "
                            "contain no '/'")


def read_sources(path: str | os.PathLike) -> list[tuple[str, str]]:
    """``(id, absolute audio path)`` of every row, without building Utterances (a fast path).

    Raises ManifestError for a missing file or missing ``id``/``path`` columns.
    """
    path = Path(path)
    if not path.is_file():
        read_manifest(path)  # raises the not-found error
    base = str(path.parent.resolve())
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: files saved by Excel start with a BOM
        reader = csv.reader(fh)
        header = next(reader, [])
        if any(c not in header for c in REQUIRED_COLUMNS):
            return [(u.id, str(u.path)) for u in read_manifest(path)]  # raises the full error
        id_col, path_col = header.index("id"), header.index("path")
        try:
            rows = list(reader)
        except csv.Error:
            rows = None
    if rows is None or any(len(row) != len(header) for row in rows):
        return [(u.id, str(u.path)) for u in read_manifest(path)]  # raises the error naming the line
    return [(row[id_col], _absolute(base, row[path_col])) for row in rows]


def _absolute(base: str, audio_path: str) -> str:
    """A manifest's audio path resolved against the manifest's folder ``base`` (absolute paths stay)."""
    return os.path.normpath(os.path.join(base, audio_path))


def _rows(reader, path: Path):
    """``(line number, row)`` of a DictReader; a CSV syntax error becomes a ManifestError naming the line."""
    line_no = 1
    try:
        for line_no, row in enumerate(reader, start=2):
            yield line_no, row
    except csv.Error as exc:
        raise ManifestError(f"{path}, line {line_no + 1}: not valid CSV ({exc}); fix or regenerate the "
                            "manifest with `sertool prepare`") from None


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a manifest CSV; relative paths are resolved against its folder.

    Raises
    ------
    ManifestError
        Missing file, missing ``id``/``path`` columns, bad durations, or
        duplicate ids; the message names the file and the row.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; create one with `sertool prepare`")
    base = str(path.parent.resolve())
    utterances = []
    with open(path, newline="", encoding="utf-8-sig") as fh:  # -sig: files saved by Excel start with a BOM
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ManifestError(
                f"{path}: missing column(s) {', '.join(missing)}; a manifest needs at least "
                f"'id,path' (got header {header!r})"
            )
        extra_cols = [c for c in header if c not in COLUMNS]
        for line_no, row in _rows(reader, path):
            if None in row or None in row.values():
                fields = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None) or [])
                raise ManifestError(f"{path}, line {line_no}: {fields} fields where the header has {len(header)}; "
                                    "fix the row (quote fields that hold commas)")
            try:
                duration = float(row.get("duration") or 0.0)
            except ValueError:
                raise ManifestError(f"{path}, line {line_no}: duration {row['duration']!r} is not a number") from None
            utterances.append(
                Utterance(
                    id=row["id"],
                    path=Path(_absolute(base, row["path"])),
                    label=row.get("label") or "",
                    speaker=row.get("speaker") or "",
                    gender=row.get("gender") or "",
                    session=row.get("session") or "",
                    duration=duration,
                    corpus=row.get("corpus") or "",
                    source_id=row.get("source_id") or "",
                    extra={c: row.get(c) or "" for c in extra_cols},
                )
            )
    validate_ids(utterances, where=str(path))
    return utterances
