"""CREMA-D, the Crowd-sourced Emotional Multimodal Actors Dataset (Cao et al., IEEE TAC 2014), acted labels.

Layout, as in the corpus repository (github.com/CheyneyComputerScience/CREMA-D):
``DIR/AudioWAV/<actor>_<sentence>_<emotion>_<level>.(wav|flac)``, e.g.
``AudioWAV/1001_DFA_ANG_XX.wav``. Only ``AudioWAV`` is read (``AudioMP3``,
``VideoFlash``, ``VideoDemographics.csv`` and the rating tables are left
alone).

- actor: 1001-1091 (91 actors, 48 male, 43 female).
- sentence (12): IEO "It's eleven o'clock", TIE "That is exactly what
  happened", IOM "I'm on my way to the meeting", IWW "I wonder what this is
  about", TAI "The airplane is almost full", MTI "Maybe tomorrow it will be
  cold", IWL "I would like a new alarm clock", ITH "I think I have a
  doctor's appointment", DFA "Don't forget a jacket", ITS "I think I've seen
  this before", TSI "The surface is slick", WSI "We'll stop in a couple of
  minutes".
- emotion (the acted one): ANG -> angry, DIS -> disgust, FEA -> fearful,
  HAP -> happy, NEU -> neutral, SAD -> sad.
- level: LO low, MD medium, HI high, XX unspecified (only IEO has levels).

Manifest: id = file stem, speaker = the actor id (``1001``), gender m/f from
the ``Sex`` column of the repository's ``VideoDemographics.csv`` (copied into
:data:`FEMALE_ACTORS`, so copies without that file get it too), session empty; extra columns ``code`` (ANG ...),
``sentence`` (IEO ...) and ``level`` (LO/MD/HI/XX). The crowd-perceived
labels (``processedResults``) are not used. Nothing is skipped; a file with
no samples (the release's ``1076_MTI_SAD_XX`` is reported silent) goes to the
failures like any unreadable file.

Cite: H. Cao, D. G. Cooper, M. K. Keutmann, R. C. Gur, A. Nenkova,
R. Verma, "CREMA-D: Crowd-sourced Emotional Multimodal Actors Dataset",
IEEE Trans. Affective Computing 5(4), 2014. Licence: Open Database License
(ODbL) with Database Contents License (DbCL).
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "disgust", "fearful", "happy", "neutral", "sad")
EMOTION_CODES = dict(zip(("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"), LABELS))
SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
LEVELS = ("LO", "MD", "HI", "XX")
EXPECTED = ("AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav|flac "
            "(the CREMA-D layout, e.g. AudioWAV/1001_DFA_ANG_XX.wav)")
#: Actors whose ``Sex`` is Female in the corpus's ``VideoDemographics.csv``; the other actors of 1001-1091 are Male.
FEMALE_ACTORS = frozenset(str(1000 + n) for n in (
    2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 18, 20, 21, 24, 25, 28, 29, 30, 37, 43, 46, 47, 49, 52, 53, 54, 55, 56, 58, 60,
    61, 63, 72, 73, 74, 75, 76, 78, 79, 82, 84, 89, 91))
GENDER = {str(actor): "f" if str(actor) in FEMALE_ACTORS else "m" for actor in range(1001, 1092)}
_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})$")


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every CREMA-D clip in ``corpus_dir/AudioWAV``.

    Raises
    ------
    CorpusError
        No ``AudioWAV`` folder or no clips in it, a name outside the CREMA-D
        scheme, or an unknown emotion, sentence, level or actor code.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    audio_dir = corpus_dir / "AudioWAV"
    if not audio_dir.is_dir():
        raise CorpusError(f"{corpus_dir}: no 'AudioWAV' folder; expected {EXPECTED}")
    files = audio_files(audio_dir, report=report)
    if not files:
        raise CorpusError(f"{audio_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows, found = [], {"emotion": {}, "sentence": {}, "level": {}}
    for path in files:
        m = _NAME.match(path.stem)
        if not m:
            raise CorpusError(f"{path}: file name is not <actor>_<sentence>_<emotion>_<level>; expected {EXPECTED}")
        actor, sentence, emotion, level = m.groups()
        if actor not in GENDER:
            raise CorpusError(f"{path}: actor {actor} is outside 1001-1091; expected {EXPECTED}")
        for what, code in (("emotion", emotion), ("sentence", sentence), ("level", level)):
            found[what].setdefault(code, path)
        rows.append(Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""), speaker=actor,
                              gender=GENDER[actor], corpus="crema-d",
                              extra={"code": emotion, "sentence": sentence, "level": level}))
    for what, known in (("emotion", EMOTION_CODES), ("sentence", dict.fromkeys(SENTENCES)),
                        ("level", dict.fromkeys(LEVELS))):
        check_labels(found[what], known, what, f"expected {EXPECTED}")
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small CREMA-D tree under ``root``: actors 1001 (male) and 1002 (female), every emotion.

    Sentence IEO carries the levels (LO/MD/HI) as in the corpus; the others XX.
    An ``AudioMP3`` copy of one clip and ``VideoDemographics.csv`` sit beside ``AudioWAV`` (not read).
    """
    root = Path(root)
    for a, actor in enumerate(("1001", "1002")):
        for i, emotion in enumerate(EMOTION_CODES):
            sentence, level = ("IEO", LEVELS[i % 3]) if i < 3 else (SENTENCES[i], "XX")
            write_tone(root / "AudioWAV" / f"{actor}_{sentence}_{emotion}_{level}.wav", freq=150.0 + 20 * i,
                       seed=10 * a + i)
    write_tone(root / "AudioMP3" / "1001_IEO_ANG_LO.wav")  # another folder: not read
    (root / "VideoDemographics.csv").write_text("ActorID,Age,Sex,Race,Ethnicity\n"
                                                "1001,51,Male,Caucasian,Not Hispanic\n"
                                                "1002,21,Female,Caucasian,Not Hispanic\n")
    return root
