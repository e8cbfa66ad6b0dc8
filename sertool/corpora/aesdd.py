"""AESDD, the Acted Emotional Speech Dynamic Database (Vryzas et al., 2018), Greek.

Layout: ``DIR/<emotion>/xAA (B).(wav|flac)``, e.g. ``anger/a03 (4).wav``:
five folders named after the emotions (anger, disgust, fear, happiness,
sadness); files are found at any depth (the release's top folder is
``Acted Emotional Speech Dynamic Database``). The README's scheme:

- ``x`` the first letter of the emotion (the code): a -> angry, d ->
  disgust, f -> fearful, h -> happy, s -> sad.
- ``AA`` the utterance, 01-20 (19 scripted utterances and one improvised,
  20, per actor and emotion).
- ``B`` the actor (speaker) number, 1, 2, ...; version 1.0 had 5 actors,
  later releases add more ("dynamic").
- a trailing lower-case letter marks a second qualified take of the same
  utterance: ``f18 (5).wav`` and ``f18 (5)b.wav``.

Gender: the documentation gives 3 female and 2 male actors in v1.0 but no
actor -> gender table, so gender is ``""``. Nothing is skipped; the
release has a few files that do not decode, which go to the report as
failures.

Manifest: id = file stem, label = canonical name, speaker = ``B`` without
leading zeros, session empty; extra columns ``code`` (the letter),
``utterance`` (``AA``) and ``take`` (``""`` or the letter).

Cite: N. Vryzas, R. Kotsakis, A. Liatsou, C. Dimoulas, G. Kalliris, "Speech
Emotion Recognition for Performance Interaction", J. Audio Eng. Soc. 66(6),
2018. Distributed free for research (m3c.web.auth.gr); no licence file.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "disgust", "fearful", "happy", "sad")
EMOTION_CODES = dict(zip("adfhs", LABELS))
#: The release's folder of each emotion letter (used by :func:`fake_tree`).
FOLDERS = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "s": "sadness"}
EXPECTED = "<emotion>/xAA (B).wav|flac (the AESDD layout, e.g. anger/a03 (4).wav)"
_NAME = re.compile(r"^([A-Za-z])(\d\d) ?\((\d+)\)([a-z]?)$")


def _row(path: Path) -> Utterance:
    """The row of one AESDD file (label empty for an unknown letter); CorpusError on a malformed name."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not xAA (B); expected {EXPECTED}")
    letter, utterance, actor, take = m.groups()
    letter = letter.lower()
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(letter, ""), speaker=str(int(actor)),
                     corpus="aesdd", extra={"code": letter, "utterance": utterance, "take": take})


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every AESDD file under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No audio files, a name outside the AESDD scheme, an unknown emotion
        letter, or the same recording twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report)


def fake_tree(root: Path) -> Path:
    """A small AESDD tree under ``root``: actors 1 and 5, every emotion letter once each, one second take (``b``)."""
    root = Path(root) / "Acted Emotional Speech Dynamic Database"
    for s, actor in enumerate(("1", "5")):
        for i, (letter, folder) in enumerate(FOLDERS.items()):
            write_tone(root / folder / f"{letter}{i + 1:02d} ({actor}).wav", freq=150.0 + 20 * i + 13 * s,
                       seed=10 * s + i)
    write_tone(root / "fear" / "f03 (5)b.wav", freq=333.0, seed=99)
    return root.parent
