"""ShEMO, the Sharif Emotional Speech Database (Mohamad Nezami, Jamshid Lou & Karami, LRE 2019), Persian.

3000 semi-natural utterances from radio plays, 87 speakers (31 female,
56 male), labelled by majority vote of twelve annotators.

Layout, as the two archives unpack (``female.zip``, ``male.zip``;
github.com/pariajm/sharif-emotional-speech-dataset)::

    DIR/female/F<SS><E><UU>.(wav|flac)     e.g. female/F03S02.wav
    DIR/male/M<SS><E><UU>.(wav|flac)       e.g. male/M02F01.wav

Files are searched recursively, so other folder names work too.

- First letter: F female, M male speaker; SS the speaker code within that
  gender (F03 and M03 are different people).
- E emotion: A -> angry, F -> fearful, H -> happy, N -> neutral, S -> sad,
  W -> surprised (F in the fourth place is fear, in the first female).
- UU the utterance number of that speaker in that emotion.

Manifest: id = file stem, speaker = gender letter + code (``F03``), gender
m/f from the first letter, session empty; extra columns ``code`` (A ... W).
Fear is rare in the corpus (38 utterances), so 5-class work often drops it:
use ``--labels`` at training time. Nothing is skipped; the same file name
found twice is an error. A file inside a folder named ``female`` or ``male``
must carry that gender letter.

Cite: O. Mohamad Nezami, P. Jamshid Lou, M. Karami, "ShEMO: a large-scale
validated database for Persian speech emotion detection", Language Resources
and Evaluation 53(1), 2019. Free for academic use.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "fearful", "happy", "neutral", "sad", "surprised")
EMOTION_CODES = dict(zip("AFHNSW", LABELS))
GENDER_FOLDERS = {"female": "F", "male": "M"}
EXPECTED = "female/F<SS><E><UU>.wav|flac and male/M<SS><E><UU>.wav|flac (the ShEMO layout, e.g. female/F03S02.wav)"
_NAME = re.compile(r"^([FM])(\d\d)([A-Z])(\d\d)$")


def _row(path: Path) -> Utterance:
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <F|M><SS><E><UU>; expected {EXPECTED}")
    gender, speaker, emotion, _utterance = m.groups()
    folder_gender = GENDER_FOLDERS.get(path.parent.name.lower())
    if folder_gender and folder_gender != gender:
        raise CorpusError(f"{path}: speaker letter {gender} in folder {path.parent.name}; move the file; "
                          f"expected {EXPECTED}")
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""), speaker=gender + speaker,
                     gender=gender.lower(), corpus="shemo", extra={"code": emotion})


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every ShEMO utterance under ``corpus_dir`` (searched recursively).

    Raises
    ------
    CorpusError
        No audio files, a name outside the ShEMO scheme or disagreeing with
        its female/male folder, an unknown emotion letter, or a name found twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report, fix=f"ShEMO letters are A F H N S W; expected {EXPECTED}")


def fake_tree(root: Path) -> Path:
    """A small ShEMO tree under ``root``: speakers F01 and M01 (two people), each emotion letter once or twice."""
    root = Path(root)
    for s, (folder, letter) in enumerate(GENDER_FOLDERS.items()):
        for i, emotion in enumerate(EMOTION_CODES):
            for n in range(1, 3 if emotion == "N" else 2):
                write_tone(root / folder / f"{letter}01{emotion}{n:02d}.wav", freq=150.0 + 20 * i + 5 * n,
                           seed=100 * s + 10 * i + n)
    return root
