"""SAVEE, the Surrey Audio-Visual Expressed Emotion database (Haq & Jackson, 2009), audio part.

Four male speakers of British English (DC, JE, JK, KL), 15 sentences per
emotion (30 neutral): 120 files each, 480 in all.

Layout, either as distributed (``AudioData``) or as in the Kaggle copy (``ALL``)::

    DIR/<speaker>/<emotion><NN>.(wav|flac)       e.g. DIR/DC/a01.wav (DIR = AudioData)
    DIR/**/<speaker>_<emotion><NN>.(wav|flac)    e.g. DIR/ALL/DC_a01.wav

- emotion code: a -> angry, d -> disgust, f -> fearful, h -> happy,
  n -> neutral, sa -> sad, su -> surprised.
- NN: the sentence number within the emotion (01-15, neutral 01-30). Each
  emotion has 3 common, 2 emotion-specific and 10 generic TIMIT sentences
  (neutral: its own 15 plus the common and emotion-specific ones), so NN
  identifies a text only together with the emotion.
- speaker: two capital letters, the folder name in the first form, the name
  prefix in the second.

Manifest: id = ``<speaker>_<emotion><NN>`` in both forms (``DC_a01``),
speaker = ``DC``/``JE``/``JK``/``KL``, gender ``m`` (all four are male),
session empty; extra columns ``code`` (a ... su) and ``sentence`` (NN).
Nothing is skipped; the same utterance found twice (both forms under DIR) is
an error.

Cite: S. Haq, P. J. B. Jackson, "Speaker-dependent audio-visual emotion
recognition", AVSP 2009. Free for research use (registration on the
University of Surrey site).
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
EMOTION_CODES = dict(zip(("a", "d", "f", "h", "n", "sa", "su"), LABELS))
EXPECTED = ("<speaker>/<e><NN>.wav|flac or **/<speaker>_<e><NN>.wav|flac "
            "(the SAVEE layout, e.g. DC/a01.wav or ALL/DC_a01.wav)")
_NAME = re.compile(r"^(?:([A-Z]{2})_)?([a-z]{1,2})(\d\d)$")
_SPEAKER = re.compile(r"^[A-Z]{2}$")


def _row(path: Path) -> Utterance:
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <e><NN> or <speaker>_<e><NN>; expected {EXPECTED}")
    speaker, emotion, sentence = m.groups()
    if speaker is None:
        speaker = path.parent.name
        if not _SPEAKER.match(speaker):
            raise CorpusError(f"{path}: no speaker in the name and folder {speaker!r} is not a speaker "
                              f"(two capital letters, e.g. DC); expected {EXPECTED}")
    return Utterance(id=f"{speaker}_{emotion}{sentence}", path=path, label=EMOTION_CODES.get(emotion, ""),
                     speaker=speaker, gender="m", corpus="savee", extra={"code": emotion, "sentence": sentence})


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every SAVEE file under ``corpus_dir`` (searched recursively).

    Raises
    ------
    CorpusError
        No audio files, a name outside the SAVEE scheme, a speakerless name
        outside a speaker folder, an unknown emotion code, or one utterance
        found twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report, fix=f"SAVEE codes are a d f h n sa su; expected {EXPECTED}")


def fake_tree(root: Path) -> Path:
    """A small SAVEE tree under ``root`` as distributed: speakers DC and JE, each emotion code twice (NN 01, 02)."""
    root = Path(root)
    for s, speaker in enumerate(("DC", "JE")):
        for i, code in enumerate(EMOTION_CODES):
            for n in (1, 2):
                write_tone(root / speaker / f"{code}{n:02d}.wav", freq=150.0 + 20 * i + 5 * n,
                           seed=100 * s + 10 * i + n)
    return root
