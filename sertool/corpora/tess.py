"""TESS, the Toronto Emotional Speech Set (Dupuis & Pichora-Fuller, University of Toronto, 2010).

Two actresses, aged 64 (``OAF``, older adult female) and 26 (``YAF``, younger
adult female), say "Say the word ___" with 200 target words (NU-6), each in
seven emotions: 2800 files.

Layout: ``DIR/**/<speaker>_<word>_<emotion>.(wav|flac)``, e.g.
``OAF_back_angry.wav``: flat as on Scholars Portal Dataverse
(doi:10.5683/SP2/E8H2MF), or in one folder per speaker and emotion as in the
Kaggle copy (``OAF_angry/``, ``OAF_Pleasant_surprise/``, ``YAF_fear/`` ...);
any folders are accepted, the name alone is read.

- emotion, read case-insensitively: angry -> angry, disgust -> disgust,
  fear -> fearful, happy -> happy, neutral -> neutral, ps (pleasant
  surprise) -> surprised, sad -> sad.
- speaker ``OAF`` or ``YAF``; the release misnames one file
  ``OA_bite_neutral.wav``, and ``OA`` is read as ``OAF``.

Manifest: id = file stem, speaker = ``OAF``/``YAF``, gender ``f`` for both,
session empty; extra columns ``code`` (the emotion word as written, lower
case) and ``word``. Nothing is skipped; two files with the same name (a
second copy of the corpus inside the folder, as some downloads nest one) are
an error.

Cite: K. Dupuis, M. K. Pichora-Fuller, "Toronto emotional speech set
(TESS)", University of Toronto, Psychology Department, 2010,
doi:10.5683/SP2/E8H2MF. Licence: CC BY-NC-ND 4.0.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "disgust", "fearful", "happy", "neutral", "surprised", "sad")
EMOTION_CODES = dict(zip(("angry", "disgust", "fear", "happy", "neutral", "ps", "sad"), LABELS))
#: Speaker token in the name -> speaker (``OA`` is the release's one misnamed file).
SPEAKERS = {"OAF": "OAF", "YAF": "YAF", "OA": "OAF"}
EXPECTED = "**/<OAF|YAF>_<word>_<emotion>.wav|flac (the TESS layout, e.g. OAF_angry/OAF_back_angry.wav)"
_NAME = re.compile(r"^([A-Za-z]+)_([A-Za-z]+)_([A-Za-z]+)$")


def _row(path: Path) -> Utterance:
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <speaker>_<word>_<emotion>; expected {EXPECTED}")
    token, word, emotion = m.groups()
    speaker = SPEAKERS.get(token.upper())
    if speaker is None:
        raise CorpusError(f"{path}: unknown speaker {token!r} (TESS speakers: OAF, YAF); expected {EXPECTED}")
    code = emotion.lower()
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(code, ""), speaker=speaker, gender="f",
                     corpus="tess", extra={"code": code, "word": word.lower()})


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every TESS file under ``corpus_dir`` (searched recursively).

    Raises
    ------
    CorpusError
        No audio files, a name outside the TESS scheme, an unknown speaker or
        emotion, or two files with the same name.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report, fix=f"TESS emotions are {', '.join(EMOTION_CODES)}; expected {EXPECTED}")


def fake_tree(root: Path) -> Path:
    """A small TESS tree under ``root`` in the Kaggle folders: OAF and YAF, words back and bite, every emotion.

    One file is named ``OA_bite_neutral.wav``, as in the release (read as OAF).
    """
    root = Path(root)
    folders = {"ps": "Pleasant_surprise"}
    for s, speaker in enumerate(("OAF", "YAF")):
        for i, emotion in enumerate(EMOTION_CODES):
            folder = root / f"{speaker}_{folders.get(emotion, emotion)}"
            for w, word in enumerate(("back", "bite")):
                token = "OA" if (speaker, word, emotion) == ("OAF", "bite", "neutral") else speaker
                write_tone(folder / f"{token}_{word}_{emotion}.wav", freq=150.0 + 20 * i + 5 * w,
                           seed=100 * s + 10 * i + w)
    return root
