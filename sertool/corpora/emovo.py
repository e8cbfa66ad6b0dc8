"""EMOVO, the Italian emotional speech corpus (Costantini et al., LREC 2014).

Layout: ``DIR/<actor>/<emo>-<actor>-<sentence>.(wav|flac)``, e.g.
``f1/dis-f1-b1.wav``: one folder per actor, ``f1 f2 f3`` (female) and
``m1 m2 m3`` (male); the actor in the name must match its folder. The
folders may sit one level deeper (``EMOVO/f1/...``): files are found at any
depth.

Emotion codes (Italian): dis (disgusto) -> disgust, gio (gioia) -> happy,
neu (neutrale) -> neutral, pau (paura) -> fearful, rab (rabbia) -> angry,
sor (sorpresa) -> surprised, tri (tristezza) -> sad.

Sentences: b1-b3 (short), l1-l4 (long), n1-n5 (nonsense), d1-d2
(questions): 14 sentences x 7 emotions x 6 actors = 588 files.

Manifest: id = file stem, label = canonical name, speaker = actor
(``f1``), gender f/m from the actor's letter, session empty; extra columns
``code`` (the three letters) and ``sentence``. Nothing is skipped (the
release's documents are not audio).

Cite: G. Costantini, I. Iaderola, A. Paoloni, M. Todisco, "EMOVO Corpus: an
Italian Emotional Speech Database", LREC 2014. Distributed for research by
the Fondazione Ugo Bordoni; no licence file in the release.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("disgust", "happy", "neutral", "fearful", "angry", "surprised", "sad")
EMOTION_CODES = dict(zip(("dis", "gio", "neu", "pau", "rab", "sor", "tri"), LABELS))
EXPECTED = "<actor>/<emo>-<actor>-<sentence>.wav|flac (the EMOVO layout, e.g. f1/dis-f1-b1.wav)"
_NAME = re.compile(r"^([a-z]{3})-([fm]\d)-([a-z]\d)$", re.IGNORECASE)


def _row(path: Path) -> Utterance:
    """The row of one EMOVO file (label empty for an unknown code); CorpusError on another name or folder."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <emo>-<actor>-<sentence>; expected {EXPECTED}")
    emotion, actor, sentence = (g.lower() for g in m.groups())
    if path.parent.name.lower() != actor:
        raise CorpusError(f"{path}: actor {actor} in the name but folder {path.parent.name}; move the file; "
                          f"expected {EXPECTED}")
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""), speaker=actor, gender=actor[0],
                     corpus="emovo", extra={"code": emotion, "sentence": sentence})


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every EMOVO file under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No audio files, a name outside the EMOVO scheme, an actor that
        disagrees with its folder, an unknown emotion code, or the same
        recording twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files in actor folders; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report)


def fake_tree(root: Path) -> Path:
    """A small EMOVO tree under ``root``: actors f1 and m2, every emotion code once each, plus a document."""
    root = Path(root)
    sentences = ("b1", "l2", "n3", "d1", "b3", "l4", "n5")
    for s, actor in enumerate(("f1", "m2")):
        for i, code in enumerate(EMOTION_CODES):
            write_tone(root / actor / f"{code}-{actor}-{sentences[i]}.wav", freq=150.0 + 20 * i + 9 * s,
                       seed=10 * s + i)
    (root / "documents").mkdir()
    (root / "documents" / "README.txt").write_text("EMOVO documentation (not audio)\n")
    return root
