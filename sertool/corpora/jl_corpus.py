"""JL-Corpus (James, Tian & Watson, Interspeech 2018), New Zealand English, primary and secondary emotions.

Layout: ``<gender><n>_<emotion>_<sentence><session>_<take>.(wav|flac)``
anywhere under ``DIR``; the Kaggle release (kaggle.com/tli725/jl-corpus)
keeps them in ``Raw JL corpus (unchecked and unannotated)/JL(wav+txt)/``,
e.g. ``female1_angry_10a_1.wav``, each next to a ``.txt`` transcript (not
audio, so not listed). Its ``Format_Intro.txt`` names the fields
"(Gender)(speaker.ID)_(Emotion)_(Sentence.ID)(session.ID)".

- ``gender`` + ``n``: the speaker, ``female1``, ``female2``, ``male1``,
  ``male2`` (four actors); gender f/m from the word.
- ``emotion``, written out in the name (the code): primary emotions angry ->
  angry, sad -> sad, neutral -> neutral, happy -> happy, excited -> excited;
  secondary emotions anxious -> anxious, apologetic -> apologetic,
  assertive -> assertive, concerned -> concerned, encouraging ->
  encouraging.
- ``sentence`` 1-15 and ``session`` a/b (the perception-test tables call
  them ContextID and SessionID); ``take`` 1/2, the trailing number, which
  the corpus does not document (two recordings of each sentence and
  session).

10 emotions x 4 speakers x 15 sentences x 2 sessions x 2 takes = 2400
files. Nothing is skipped; a file name outside the scheme is an error.

Manifest: id = file stem, label = canonical name, speaker = ``female1`` ...,
gender from the speaker word, session = ``a``/``b``; extra columns ``code``
(the emotion word), ``emotion_set`` (``primary``/``secondary``),
``sentence`` and ``take``.

The paper lists the secondary emotions as anxious, apologetic, pensive,
worried and enthusiastic, but the released files use anxious, apologetic,
assertive, concerned and encouraging; this parser follows the files.

Cite: J. James, L. Tian, C. I. Watson, "An Open Source Emotional Speech
Corpus for Human Robot Interaction Applications", Interspeech 2018.
The release files state no licence (see its Kaggle page before use).
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

PRIMARY = ("angry", "sad", "neutral", "happy", "excited")
SECONDARY = ("anxious", "apologetic", "assertive", "concerned", "encouraging")
LABELS = PRIMARY + SECONDARY
#: Emotion word in the file name -> canonical label (the corpus's words are already canonical names).
EMOTION_CODES = {word: word for word in LABELS}
EXPECTED = ("<female|male><n>_<emotion>_<sentence><a|b>_<take>.wav|flac under DIR (the JL-Corpus layout, "
            "e.g. JL(wav+txt)/female1_angry_10a_1.wav)")
_NAME = re.compile(r"^(female|male)(\d+)_([a-z]+)_(\d+)([ab])_(\d+)$", re.IGNORECASE)


def _row(path: Path) -> Utterance:
    """The row of one JL-Corpus file (label empty for an unknown emotion word); CorpusError on another name."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <gender><n>_<emotion>_<sentence><session>_<take>; "
                          f"expected {EXPECTED}")
    gender_word, number, emotion, sentence, session, take = m.groups()
    gender_word, emotion = gender_word.lower(), emotion.lower()
    return Utterance(
        id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""), speaker=f"{gender_word}{number}",
        gender="f" if gender_word == "female" else "m", session=session.lower(), corpus="jl-corpus",
        extra={"code": emotion, "emotion_set": "primary" if emotion in PRIMARY else "secondary",
               "sentence": sentence, "take": take},
    )


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every JL-Corpus recording under ``corpus_dir`` (any depth).

    Raises
    ------
    CorpusError
        No audio files, a file name outside the JL-Corpus scheme, an unknown
        emotion word, or the same recording twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report)


def fake_tree(root: Path) -> Path:
    """A small JL-Corpus tree under ``root`` in the Kaggle folders: female1 and male2, every emotion once each.

    The ``.txt`` transcript next to a recording is not audio and not listed.
    """
    root = Path(root)
    folder = root / "Raw JL corpus (unchecked and unannotated)" / "JL(wav+txt)"
    for s, speaker in enumerate(("female1", "male2")):
        for i, emotion in enumerate(LABELS):
            name = f"{speaker}_{emotion}_{i + 1}{'ab'[s]}_{s + 1}"
            write_tone(folder / f"{name}.wav", freq=150.0 + 20 * i + 5 * s, seed=10 * s + i)
    (folder / "female1_angry_1a_1.txt").write_text("Taylor likes stewed Asian food.\n")
    return root
