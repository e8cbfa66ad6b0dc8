"""EMO-DB, the Berlin Database of Emotional Speech (Burkhardt et al., 2005).

Layout: ``DIR/wav/SSTTTEV.(wav|flac)``: SS speaker (03, 08-16), TTT text id
(a01-a07, b01-b03 ...), E emotion letter, V version letter.

Emotion letters (German initials): W Wut -> angry, L Langeweile -> bored,
E Ekel -> disgust, A Angst -> fearful, F Freude -> happy, T Trauer -> sad,
N neutral -> neutral.

Manifest: id = file stem, speaker = SS, gender from the corpus table (male
03 10 11 12 15, female 08 09 13 14 16), session empty, extra columns ``code``
(the emotion letter) and ``text``.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "bored", "disgust", "fearful", "happy", "sad", "neutral")
EMOTION_CODES = dict(zip("WLEAFTN", LABELS))
GENDER = {"03": "m", "10": "m", "11": "m", "12": "m", "15": "m",
          "08": "f", "09": "f", "13": "f", "14": "f", "16": "f"}
EXPECTED = "wav/SSTTTEV.wav|flac (the EMO-DB layout, e.g. wav/03a01Fa.wav)"
_NAME = re.compile(r"^(\d\d)([ab]\d\d)([A-Z])([a-z])$")


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every EMO-DB file in ``corpus_dir/wav``.

    Raises
    ------
    CorpusError
        No ``wav`` folder, a name not in the EMO-DB pattern, or an unknown
        speaker or emotion code.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    wav_dir = corpus_dir / "wav"
    if not wav_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: no 'wav' folder; expected {EXPECTED}")
    files = audio_files(wav_dir, report=report)
    if not files:
        raise CorpusError(f"{wav_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows, codes, speakers = [], {}, {}
    for path in files:
        m = _NAME.match(path.stem)
        if not m:
            raise CorpusError(f"{path}: file name is not SSTTTEV; expected {EXPECTED}")
        speaker, text, emotion, _version = m.groups()
        codes.setdefault(emotion, path)
        speakers.setdefault(speaker, path)
        rows.append(
            Utterance(
                id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""), speaker=speaker,
                gender=GENDER.get(speaker, ""), corpus="emodb", extra={"code": emotion, "text": text},
            )
        )
    check_labels(codes, EMOTION_CODES, "emotion", "EMO-DB letters are W L E A F T N")
    check_labels(speakers, GENDER, "speaker", "EMO-DB speakers are 03 and 08-16")
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small EMO-DB tree under ``root``: speakers 03 (male) and 08 (female), each emotion letter once."""
    root = Path(root)
    for speaker in ("03", "08"):
        for i, letter in enumerate(EMOTION_CODES):
            write_tone(root / "wav" / f"{speaker}a0{i % 7 + 1}{letter}a.wav", freq=150.0 + 20 * i,
                       seed=10 * int(speaker) + i)
    return root
