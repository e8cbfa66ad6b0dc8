"""URDU, the Urdu-language speech emotion dataset (Latif et al., 2018): talk-show speech, 4 emotions.

Layout: ``DIR/<Emotion>/S<G><n>_F<k>_<E><m>.(wav|flac)``, e.g.
``Angry/SM1_F10_A010.wav``: four folders, Angry, Happy, Neutral, Sad
(github.com/siddiquelatif/URDU-Dataset; files are found at any depth).

- ``S<G><n>`` the speaker: ``SM1`` ... ``SM27`` (male), ``SF1`` ...
  ``SF11`` (female); gender from ``G``. The same id names the same person
  in every emotion folder (38 speakers, 27 male and 11 female).
- ``F<k>`` the clip's number among that speaker's clips in the folder.
- ``E`` emotion letter (the code): A -> angry, H -> happy, N -> neutral,
  S -> sad; the letter must agree with the folder. ``m`` the clip's number
  in its emotion (``A01`` ... ``A0100``: a ``0`` then 1-100).

400 clips, 100 per emotion. Nothing is skipped.

Manifest: id = file stem, label = canonical name, speaker = ``SM1`` ...,
gender m/f, session empty; extra column ``code`` (the letter).

Cite: S. Latif, A. Qayyum, M. Usman, J. Qadir, "Cross Lingual Speech
Emotion Recognition: Urdu vs. Western Languages", FIT 2018
(arXiv:1812.10411). Public for research; no licence file in the release.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "happy", "neutral", "sad")
EMOTION_CODES = dict(zip("AHNS", LABELS))
#: Emotion folder -> the letter its files carry.
FOLDERS = {"Angry": "A", "Happy": "H", "Neutral": "N", "Sad": "S"}
EXPECTED = "<Emotion>/S<G><n>_F<k>_<E><m>.wav|flac (the URDU layout, e.g. Angry/SM1_F10_A010.wav)"
_NAME = re.compile(r"^(S([MF])\d+)_F(\d+)_([A-Za-z])(\d+)$")


def _row(path: Path) -> Utterance:
    """The row of one URDU clip (label empty for an unknown letter); CorpusError on a bad name or folder."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not S<G><n>_F<k>_<E><m>; expected {EXPECTED}")
    speaker, gender, _clip, letter, _number = m.groups()
    letter = letter.upper()
    folder = {name.lower(): code for name, code in FOLDERS.items()}.get(path.parent.name.lower())
    if folder is None:
        raise CorpusError(f"{path}: not in an Angry, Happy, Neutral or Sad folder; expected {EXPECTED}")
    if letter in EMOTION_CODES and letter != folder:
        raise CorpusError(f"{path}: emotion letter {letter} ({EMOTION_CODES[letter]}) in folder "
                          f"{path.parent.name}; move the file; expected {EXPECTED}")
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(letter, ""), speaker=speaker,
                     gender=gender.lower(), corpus="urdu", extra={"code": letter})


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every URDU clip under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No audio files, a clip outside the four emotion folders, a name
        outside the URDU scheme, a letter that disagrees with its folder, an
        unknown letter, or the same clip twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report)


def fake_tree(root: Path) -> Path:
    """A small URDU tree under ``root``: speakers SM1 (m) and SF10 (f), every emotion twice per speaker."""
    root = Path(root) / "URDU-Dataset"
    for i, (folder, letter) in enumerate(FOLDERS.items()):
        for s, speaker in enumerate(("SM1", "SF10")):
            for k in (1, 2):
                number = 2 * s + k
                write_tone(root / folder / f"{speaker}_F{k}_{letter}0{number}.wav", freq=150.0 + 25 * i + 9 * s + k,
                           seed=100 * i + 10 * s + k)
    return root.parent
