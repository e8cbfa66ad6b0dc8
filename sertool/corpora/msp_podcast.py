"""MSP-Podcast (Lotfian and Busso, IEEE TAC 2019), categorical and dimensional labels.

Layout, as distributed (release 1.x)::

    DIR/Audios/<FileName>.wav
    DIR/Labels/labels_consensus.csv

The label CSV has one row per utterance with the columns ``FileName``
(``MSP-PODCAST_0001_0008.wav``), ``EmoClass`` (the consensus class code),
``EmoAct``, ``EmoVal``, ``EmoDom`` (mean arousal, valence and dominance
ratings on 1-7 scales), ``SpkrID``, ``Gender`` and ``Split_Set`` (``Train``,
``Development``, ``Test1``, ``Test2``, ``Test3``). Other columns are ignored.

Class codes: A angry, S sad, H happy, U surprised, F fearful, D disgust,
C contempt, N neutral, O other, X no agreement (label ``unknown``). Every
row is kept: the dimensional ratings exist for all of them; leave classes
out at training time with ``--labels``.

Manifest: id = file stem, label from ``EmoClass``, speaker = ``SpkrID``
(``Unknown`` speakers keep that name, so speaker-independent protocols treat
them as one speaker: use ``--protocol column``), gender m/f, session empty;
extra columns ``code`` (the class code), ``arousal``, ``valence``,
``dominance`` and ``split`` (``train`` for Train, ``valid`` for Development,
``test`` for the test sets, and ``test_set`` naming which), so ``sertool train
--protocol column`` reproduces the official partition and ``--target arousal
--target valence --target dominance`` trains the challenge's dimensional task.
A label row whose audio file is missing is reported as a failure.

Cite: R. Lotfian, C. Busso, "Building naturalistic emotionally balanced speech
corpus by retrieving emotional speech from existing podcast recordings", IEEE
Trans. Affective Computing 10(4), 2019. Licence: the MSP-Podcast academic licence
(the corpus is not redistributable).
"""

from __future__ import annotations

import csv
from pathlib import Path

from sertool.corpora.common import require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

CLASS_CODES = {"A": "angry", "S": "sad", "H": "happy", "U": "surprised", "F": "fearful", "D": "disgust",
               "C": "contempt", "N": "neutral", "O": "other", "X": "unknown"}
LABELS = tuple(sorted(CLASS_CODES.values()))
SPLITS = {"Train": ("train", ""), "Development": ("valid", ""), "Test1": ("test", "Test1"),
          "Test2": ("test", "Test2"), "Test3": ("test", "Test3")}
COLUMNS = ("FileName", "EmoClass", "EmoAct", "EmoVal", "EmoDom", "SpkrID", "Gender", "Split_Set")
LABEL_CSV = Path("Labels") / "labels_consensus.csv"
EXPECTED = "Audios/<name>.wav and Labels/labels_consensus.csv (the MSP-Podcast layout)"


def _label_rows(path: Path) -> list[dict[str, str]]:
    """The rows of the consensus label CSV; CorpusError when it is missing, unreadable or lacks a column."""
    if not path.is_file():
        raise CorpusError(f"{path}: no label file; expected {EXPECTED}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CorpusError(f"{path}: no column(s) {', '.join(missing)}; expected {EXPECTED}")
            return list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CorpusError(f"{path}: not a readable CSV ({exc}); expected {EXPECTED}") from None


def _rating(row: dict[str, str], column: str, path: Path, line: int) -> str:
    """The rating in ``column`` as written, after checking that it is a number."""
    value = (row.get(column) or "").strip()
    try:
        float(value)
    except ValueError:
        raise CorpusError(f"{path}, line {line}: {column} {value!r} is not a number; fix the file") from None
    return value


def _utterance(row: dict[str, str], audio_dir: Path, path: Path, line: int) -> Utterance:
    """One manifest row from one label row."""
    code = (row["EmoClass"] or "").strip()
    if code not in CLASS_CODES:
        raise CorpusError(f"{path}, line {line}: unknown EmoClass {code!r} "
                          f"(codes: {', '.join(CLASS_CODES)}); fix the file")
    split = (row["Split_Set"] or "").strip()
    if split not in SPLITS:
        raise CorpusError(f"{path}, line {line}: unknown Split_Set {split!r} ({', '.join(SPLITS)}); fix the file")
    role, test_set = SPLITS[split]
    name = Path(row["FileName"].strip()).name
    extra = {"code": code, "arousal": _rating(row, "EmoAct", path, line),
             "valence": _rating(row, "EmoVal", path, line), "dominance": _rating(row, "EmoDom", path, line),
             "split": role, "test_set": test_set}
    gender = {"female": "f", "male": "m"}.get((row["Gender"] or "").strip().lower(), "")
    return Utterance(id=Path(name).stem, path=audio_dir / name, label=CLASS_CODES[code],
                     speaker=(row["SpkrID"] or "").strip() or "Unknown", gender=gender, corpus="msp-podcast",
                     extra=extra)


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every utterance in ``Labels/labels_consensus.csv``.

    Raises
    ------
    CorpusError
        No ``Audios`` folder or label file, a missing column, an unknown class or split, a rating that is
        not a number.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    audio_dir = corpus_dir / "Audios"
    if not audio_dir.is_dir():
        raise CorpusError(f"{audio_dir}: no such folder; expected {EXPECTED}")
    label_csv = corpus_dir / LABEL_CSV
    rows = [_utterance(row, audio_dir, label_csv, line) for line, row in enumerate(_label_rows(label_csv), 2)]
    if not rows:
        raise CorpusError(f"{label_csv}: no label rows; expected {EXPECTED}")
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small MSP-Podcast tree under ``root``: 12 clips of 0.3 s, four speakers, every split."""
    root = Path(root)
    lines = [",".join(COLUMNS)]
    splits = ("Train", "Train", "Development", "Test1")
    for i in range(12):
        name = f"MSP-PODCAST_{i // 3 + 1:04d}_{i % 3 + 1:04d}.wav"
        write_tone(root / "Audios" / name, seconds=0.3, freq=140.0 + 30 * i, seed=i)
        code = "ANHS"[i % 4]
        lines.append(f"{name},{code},{1 + i % 7}.0,{1 + i * 3 % 7}.5,{1 + i * 5 % 7}.2,{100 + i % 4},"
                     f"{'Female' if i % 2 else 'Male'},{splits[i % 4]}")
    (root / LABEL_CSV).parent.mkdir(parents=True, exist_ok=True)
    (root / LABEL_CSV).write_text("\n".join(lines) + "\n")
    return root
