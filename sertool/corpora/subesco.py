"""SUBESCO, the SUST Bangla Emotional Speech Corpus (Sultana et al., PLOS ONE 2021).

7000 utterances: 20 professional actors (10 male, 10 female) x 10 sentences
x 7 emotions x 5 takes.

Layout: ``DIR/**/<G>_<SS>_<NAME>_S_<n>_<EMOTION>_<t>.(wav|flac)``, e.g.
``F_02_MONIKA_S_1_NEUTRAL_5.wav`` (the release is one flat folder; any
folders are accepted):

- G gender (M/F), SS the speaker's serial number within that gender
  (F_02 and M_02 are different people), NAME the speaker's name.
- ``S_<n>`` sentence 1-10, ``<t>`` take 1-5.
- EMOTION: ANGRY -> angry, DISGUST -> disgust, FEAR -> fearful,
  HAPPY -> happy, NEUTRAL -> neutral, SAD -> sad, SURPRISE -> surprised.

Manifest: id = file stem, speaker = ``<G>_<SS>`` (``F_02``), gender m/f
from G, session empty; extra columns ``code`` (ANGRY ...), ``sentence``
(1-10), ``take`` (1-5) and ``speaker_name``. Nothing is skipped; the same
file name found twice is an error, and so is one speaker id with two names.

Cite: S. Sultana, M. S. Rahman, M. R. Selim, M. Z. Iqbal, "SUST Bangla
Emotional Speech Corpus (SUBESCO): An audio-only emotional speech corpus
for Bangla", PLOS ONE 16(4), 2021, doi:10.1371/journal.pone.0250173.
Licence: CC BY 4.0.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, check_unique_ids, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
EMOTION_CODES = dict(zip(("ANGRY", "DISGUST", "FEAR", "HAPPY", "NEUTRAL", "SAD", "SURPRISE"), LABELS))
EXPECTED = ("<G>_<SS>_<NAME>_S_<n>_<EMOTION>_<t>.wav|flac "
            "(the SUBESCO layout, e.g. F_02_MONIKA_S_1_NEUTRAL_5.wav)")
_NAME = re.compile(r"^([MF])_(\d+)_([A-Za-z]+)_S_(\d+)_([A-Za-z]+)_(\d+)$")


def _row(path: Path) -> Utterance:
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <G>_<SS>_<NAME>_S_<n>_<EMOTION>_<t>; expected {EXPECTED}")
    gender, number, name, sentence, emotion, take = m.groups()
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(emotion.upper(), ""),
                     speaker=f"{gender}_{number}", gender=gender.lower(), corpus="subesco",
                     extra={"code": emotion.upper(), "sentence": sentence, "take": take, "speaker_name": name.upper()})


def _check_names(rows: list[Utterance]) -> None:
    """CorpusError when one speaker id appears with two names (a mistyped serial number)."""
    first: dict[str, Utterance] = {}
    for row in rows:
        seen = first.setdefault(row.speaker, row)
        if seen.extra["speaker_name"] != row.extra["speaker_name"]:
            raise CorpusError(f"{row.path}: speaker {row.speaker} is {row.extra['speaker_name']} here but "
                              f"{seen.extra['speaker_name']} in {seen.path.name}; fix the name; expected {EXPECTED}")


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every SUBESCO utterance under ``corpus_dir`` (searched recursively).

    Raises
    ------
    CorpusError
        No audio files, a name outside the SUBESCO scheme, an unknown emotion,
        a file name found twice, or one speaker id with two names.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows, codes = [], {}
    for path in files:
        rows.append(_row(path))
        codes.setdefault(rows[-1].extra["code"], path)
    check_labels(codes, EMOTION_CODES, "emotion",
                 f"SUBESCO emotions are {', '.join(EMOTION_CODES)}; expected {EXPECTED}")
    check_unique_ids(rows, EXPECTED)
    _check_names(rows)
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small SUBESCO tree under ``root`` (flat, as released): F_02 MONIKA and M_02 (another person), every emotion."""
    root = Path(root)
    for s, speaker in enumerate(("F_02_MONIKA", "M_02_RAFI")):
        for i, emotion in enumerate(EMOTION_CODES):
            sentence, take = i % 10 + 1, i % 5 + 1
            write_tone(root / f"{speaker}_S_{sentence}_{emotion}_{take}.wav", freq=150.0 + 20 * i,
                       seed=100 * s + i)
    return root
