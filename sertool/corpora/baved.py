"""BAVED, the Basic Arabic Vocal Emotions Dataset (A. Aouf, 2019, public GitHub repository).

Layout: ``DIR/<w>/<speaker>-<g>-<age>-<w>-<level>-<record>.(wav|flac)``,
e.g. ``0/0-m-21-0-1-105.wav``, with ``DIR/speakers_info.json`` (speaker id
-> age and gender) and ``DIR/naming.txt`` (the rule) beside the folders.

- The folder ``<w>`` (0-6) is the spoken word (one of seven single Arabic
  words), NOT the label; it must equal the word field of the name.
- ``level`` is how strongly an emotion is expressed, an ordinal target rather
  than a category: 0 -> low (tired, down), 1 -> neutral (everyday speech),
  2 -> high (a strong positive or negative emotion).
- ``speaker`` id (integer), ``g`` gender m/f, ``age`` in years, ``record``
  a running number unique in the corpus.

Manifest: id = file stem, label = low/neutral/high, speaker = the speaker id
(``0``), gender from the name, session empty; extra columns ``code`` (the
level digit), ``level`` (the same digit, 0/1/2), ``word`` (0-6) and ``age``.
When ``speakers_info.json`` is present, a file whose gender or age disagrees
with it is reported as a warning (``RunReport.warn``) and keeps the name's
value. Nothing is skipped. The full corpus has 1935 recordings from 61
speakers.

Source: the public BAVED repository (A. Aouf, 2019). No licence is stated:
research use.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, check_unique_ids, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("low", "neutral", "high")
LEVEL_CODES = {"0": "low", "1": "neutral", "2": "high"}
WORDS = tuple(str(w) for w in range(7))
EXPECTED = ("<w>/<speaker>-<m|f>-<age>-<w>-<level>-<record>.wav|flac, word folders 0-6 "
            "(the BAVED layout, e.g. 0/0-m-21-0-1-105.wav)")
_NAME = re.compile(r"^(\d+)-([mfMF])-(\d+)-(\d)-(\d)-(\d+)$")


def _speakers_info(corpus_dir: Path) -> dict[str, dict]:
    """``speakers_info.json`` as speaker id -> {"age", "gender"}; empty when the file is absent."""
    path = corpus_dir / "speakers_info.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: not valid JSON ({exc}); fix or remove it; expected {EXPECTED}") from None
    if not isinstance(info, dict):
        raise CorpusError(f"{path}: not a speaker id -> {{age, gender}} object; fix or remove it; expected {EXPECTED}")
    return info


def _row(path: Path, word_folder: str) -> Utterance:
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <speaker>-<m|f>-<age>-<w>-<level>-<record>; expected {EXPECTED}")
    speaker, gender, age, word, level, _record = m.groups()
    if word != word_folder:
        raise CorpusError(f"{path}: word {word} in the name but folder {word_folder}; move the file; "
                          f"expected {EXPECTED}")
    return Utterance(id=path.stem, path=path, label=LEVEL_CODES.get(level, ""), speaker=speaker,
                     gender=gender.lower(), corpus="baved",
                     extra={"code": level, "level": level, "word": word, "age": age})


def _check_against_info(rows: list[Utterance], info: dict[str, dict], report: RunReport) -> None:
    """Warn on every file whose gender or age disagrees with ``speakers_info.json``."""
    for row in rows:
        known = info.get(row.speaker)
        if not isinstance(known, dict):
            continue
        said = {"gender": str(known.get("gender", row.gender)).lower(), "age": str(known.get("age", row.extra["age"]))}
        found = {"gender": row.gender, "age": row.extra["age"]}
        for field in ("gender", "age"):
            if said[field] != found[field]:
                report.warn(row.id, row.path, "prepare",
                            f"BAVED speaker {row.speaker}: {field} {found[field]} in the file name but "
                            f"{said[field]} in speakers_info.json; kept {found[field]}")


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every BAVED recording under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No word folders 0-6, a name outside the BAVED scheme, a word that
        disagrees with its folder, an unknown level, or an unreadable
        ``speakers_info.json``.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    folders = [corpus_dir / w for w in WORDS if (corpus_dir / w).is_dir()]
    if not folders:
        raise CorpusError(f"{corpus_dir}: no word folders 0-6; expected {EXPECTED}")
    rows, levels = [], {}
    for folder in folders:
        for path in audio_files(folder, report=report):
            rows.append(_row(path, folder.name))
            levels.setdefault(rows[-1].extra["level"], path)
    if not rows:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files in the word folders; expected {EXPECTED}")
    check_labels(levels, LEVEL_CODES, "level", f"BAVED levels are 0, 1, 2; expected {EXPECTED}")
    check_unique_ids(rows, EXPECTED)
    _check_against_info(rows, _speakers_info(corpus_dir), report)
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small BAVED tree under ``root``: speakers 0 (m, 21) and 3 (f, 21), words 0-2, every level.

    ``speakers_info.json`` and ``naming.txt`` sit beside the folders as in the release (not audio: ignored).
    """
    root = Path(root)
    record = 100
    for word in ("0", "1", "2"):
        for speaker, gender in (("0", "m"), ("3", "f")):
            for level in LEVEL_CODES:
                record += 1
                write_tone(root / word / f"{speaker}-{gender}-21-{word}-{level}-{record}.wav",
                           freq=150.0 + 40 * int(level) + 10 * int(word), seed=record)
    (root / "speakers_info.json").write_text(json.dumps({"0": {"age": 21, "gender": "m"},
                                                         "3": {"age": 21, "gender": "f"}}, indent=4))
    (root / "naming.txt").write_text("speaker_id(int) - speaker_gender(m or f) - speaker_age(int) - "
                                     "spoken_word(int from 0 to 6) - spoken_emotion(int from 0 to 2) - record_id(int)")
    return root
