"""Helpers shared by the corpus preparers."""

from __future__ import annotations

from pathlib import Path

from sertool.io.audio import audio_info, find_audio
from sertool.errors import AudioError, CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport


def require_dir(corpus_dir: Path, expected: str) -> Path:
    """Return ``corpus_dir`` or raise CorpusError describing the expected layout."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: not a folder; expected {expected}")
    return corpus_dir


def audio_files(folder: Path, *, report: RunReport | None, recursive: bool = False) -> list[Path]:
    """Audio files under ``folder`` (:func:`sertool.io.audio.find_audio`: links followed, broken links listed).

    What the scan passes over (files of no audio format, hidden ones,
    unreadable folders) is counted in ``report.scan``, for the summary line.
    """
    skips = report.scan if report is not None else None
    return find_audio(folder, recursive=recursive, skips=skips)


def with_duration(utterances: list[Utterance], report: RunReport) -> list[Utterance]:
    """Fill ``duration`` from each file's header; unreadable files go to ``report``.

    Returns the utterances whose audio could be read.
    """
    kept = []
    for utt in utterances:
        try:
            info = audio_info(utt.path)
        except AudioError as exc:
            report.fail(utt.id, utt.path, "prepare", exc)
            continue
        kept.append(Utterance(**{**utt.__dict__, "duration": info.duration}))
    report.done(len(kept))
    return kept


def check_labels(found: dict[str, Path], known: dict[str, str], what: str, fix: str) -> None:
    """Raise CorpusError when any code in ``found`` (code -> example file) is unknown."""
    unknown = {code: path for code, path in found.items() if code not in known}
    if unknown:
        code, path = next(iter(unknown.items()))
        raise CorpusError(
            f"{path}: unknown {what} code {code!r} (known: {', '.join(sorted(known))}); {fix}"
        )


def check_unique_ids(utterances: list[Utterance], expected: str) -> None:
    """Raise CorpusError when two files give the same utterance id (e.g. a second copy of the corpus inside it)."""
    seen: dict[str, Path] = {}
    for utt in utterances:
        if utt.id in seen:
            raise CorpusError(f"{utt.path}: the same utterance as {seen[utt.id]} (id {utt.id!r}); keep one copy "
                              f"of the corpus under the folder; expected {expected}")
        seen[utt.id] = utt.path


def checked_rows(rows: list[Utterance], codes: dict[str, str], expected: str, report: RunReport, *,
                 fix: str | None = None, what: str = "emotion", code_of=lambda code: code) -> list[Utterance]:
    """The last step of most preparers: every row's ``code`` known, ids unique, durations read.

    Parameters
    ----------
    rows
        The parsed rows; each has its corpus's label code in ``extra["code"]``.
    codes
        The corpus's code -> canonical label table.
    expected
        The corpus's one-line layout (``EXPECTED``), ending every error.
    report
        Unreadable files are recorded here (:func:`with_duration`).
    fix, what
        The end of an unknown-code error (default ``expected <expected>``) and what a code is.
    code_of
        Maps a row's code to the table's key (e.g. ``str.lower``).

    Raises
    ------
    CorpusError
        An unknown code or a repeated id, naming the file.
    """
    found: dict[str, Path] = {}
    for row in rows:
        found.setdefault(code_of(row.extra["code"]), row.path)
    check_labels(found, codes, what, fix or f"expected {expected}")
    check_unique_ids(rows, expected)
    return with_duration(rows, report)
