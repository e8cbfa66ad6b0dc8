"""TurEV-DB, the Turkish Emotion Voice Database (Canpolat, Ormanoğlu & Zeyrek, SLTU 2020): single words.

Layout: ``DIR/Sound Source/<Emotion>/<speaker>_<cc>_<word>.(wav|flac)``,
e.g. ``Sound Source/Calm/1358_sk_tembel.wav`` (github.com/Xeonen/TurEV-DB;
files are found at any depth, each must sit in an emotion folder).

- Emotion folder (the label, as the corpus's loaders read it): Angry ->
  angry, Calm -> calm, Happy -> happy, Sad -> sad.
- ``speaker``: a four-digit participant number (1157, 1234, 1358, 1984,
  6783, 7895 in the release: six speakers).
- ``cc`` the emotion's Turkish abbreviation (the code): kz (kızgın, angry),
  sk (sakin, calm), mt (mutlu, happy), hl (sad). A code that disagrees
  with its folder keeps the folder's label and is reported as a warning.
- ``word``: one of the 82 words (ASCII-folded: ``kulac``, ``ogul``); a
  trailing digit marks a repeated recording (``ogul1``).

About 1735 files. Gender: the release names no speaker's gender, so it is
``""``. Nothing is skipped.

Manifest: id = file stem, label = canonical name, speaker = the number,
session empty; extra columns ``code`` (``cc``) and ``word``.

Cite: S. F. Canpolat, Z. Ormanoğlu, D. Zeyrek, "Turkish Emotion Voice
Database (TurEV-DB)", SLTU-CCURL workshop, LREC 2020, pp. 368-375. No
licence is stated in the release.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, check_unique_ids, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "calm", "happy", "sad")
#: Emotion folder (lower case) -> canonical label.
EMOTION_CODES = dict(zip(("angry", "calm", "happy", "sad"), LABELS))
#: Emotion folder -> the abbreviation its file names carry.
FILE_CODES = {"Angry": "kz", "Calm": "sk", "Happy": "mt", "Sad": "hl"}
EXPECTED = "Sound Source/<Emotion>/<speaker>_<cc>_<word>.wav|flac (the TurEV-DB layout, e.g. Calm/1358_sk_tembel.wav)"
_NAME = re.compile(r"^(\d+)_([A-Za-z]+)_(.+)$")
_EXPECTED_CODE = {folder.lower(): code for folder, code in FILE_CODES.items()}


def _row(path: Path) -> Utterance:
    """The row of one TurEV-DB file (label empty for an unknown emotion folder); CorpusError on a malformed name."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <speaker>_<cc>_<word>; expected {EXPECTED}")
    speaker, code, word = m.groups()
    folder = path.parent.name
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(folder.lower(), ""), speaker=speaker,
                     corpus="turev-db", extra={"code": code.lower(), "word": word, "folder": folder})


def _warn_code_mismatches(rows: list[Utterance], report: RunReport) -> None:
    """One warning per file whose abbreviation disagrees with its emotion folder (the folder's label is kept)."""
    for row in rows:
        folder = row.extra["folder"]
        expected = _EXPECTED_CODE.get(folder.lower())
        if expected and row.extra["code"] != expected:
            report.warn(row.id, row.path, "prepare", f"TurEV-DB code {row.extra['code']!r} in folder {folder} "
                        f"(which names its files {expected!r}); labelled {row.label} by the folder")


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every TurEV-DB recording under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No audio files, a name outside the TurEV-DB scheme, a file outside
        the Angry/Calm/Happy/Sad folders, or the same recording twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    folders: dict[str, Path] = {}
    for row in rows:
        folders.setdefault(row.extra["folder"].lower(), row.path)
    check_labels(folders, EMOTION_CODES, "emotion folder", f"expected {EXPECTED}")
    check_unique_ids(rows, EXPECTED)
    _warn_code_mismatches(rows, report)
    rows = [Utterance(**{**row.__dict__, "extra": {k: v for k, v in row.extra.items() if k != "folder"}})
            for row in rows]
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small TurEV-DB tree under ``root``: speakers 1358 and 6783, every emotion twice per speaker.

    One word has the repeat digit of the release (``ogul1``).
    """
    root = Path(root)
    words = ("tembel", "kulac", "japon", "ogul1")
    for i, (folder, code) in enumerate(FILE_CODES.items()):
        for s, speaker in enumerate(("1358", "6783")):
            for k in (0, 1):
                word = words[(i + k) % len(words)]
                write_tone(root / "Sound Source" / folder / f"{speaker}_{code}_{word}.wav",
                           freq=150.0 + 25 * i + 9 * s + 4 * k, seed=100 * i + 10 * s + k)
    return root
