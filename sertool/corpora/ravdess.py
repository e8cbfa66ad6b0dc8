"""RAVDESS (Livingstone & Russo, PLOS ONE 2018), speech part.

Layout: ``DIR/Actor_XX/MM-VV-EE-II-SS-RR-AA.(wav|flac)``.

- MM modality (01 audio-video, 02 video-only, 03 audio-only), VV vocal
  channel (01 speech, 02 song): only speech files (VV = 01) are kept; song
  files are skipped on purpose.
- EE emotion: 01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
  07 disgust, 08 surprised. II intensity (01 normal, 02 strong), SS statement
  (01 "Kids are talking by the door", 02 "Dogs are sitting by the door"),
  RR repetition, AA actor (odd = male, even = female).

Manifest: id = file stem, speaker = ``Actor_XX``, gender m/f from the actor
number, session empty; extra columns ``code`` (EE), ``intensity`` and
``statement``.
Any number of actors is accepted (the full corpus has 24).
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
EMOTION_CODES = {f"{i + 1:02d}": label for i, label in enumerate(LABELS)}
EXPECTED = "Actor_XX/MM-VV-EE-II-SS-RR-AA.wav|flac (the RAVDESS speech layout)"
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every RAVDESS speech file under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No ``Actor_XX`` folders, a file name not in the RAVDESS pattern, an
        actor number that disagrees with its folder, or an unknown emotion code.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    actor_dirs = sorted(d for d in corpus_dir.iterdir() if d.is_dir() and _ACTOR_DIR.match(d.name))
    if not actor_dirs:
        raise CorpusError(f"{corpus_dir}: no Actor_XX folders found; expected {EXPECTED}")
    rows, codes = [], {}
    for actor_dir in actor_dirs:
        actor = _ACTOR_DIR.match(actor_dir.name).group(1)
        for path in audio_files(actor_dir, report=report):
            m = _NAME.match(path.stem)
            if not m:
                raise CorpusError(f"{path}: file name is not MM-VV-EE-II-SS-RR-AA; expected {EXPECTED}")
            _modality, channel, emotion, intensity, statement, _rep, file_actor = m.groups()
            if file_actor != actor:
                raise CorpusError(f"{path}: actor {file_actor} in the name but folder {actor_dir.name}; move the file")
            if channel != "01":
                continue  # song
            codes.setdefault(emotion, path)
            rows.append(
                Utterance(
                    id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""),
                    speaker=f"Actor_{actor}", gender="m" if int(actor) % 2 else "f",
                    corpus="ravdess", extra={"code": emotion, "intensity": intensity, "statement": statement},
                )
            )
    check_labels(codes, EMOTION_CODES, "emotion", "RAVDESS codes are 01-08")
    if not rows:
        raise CorpusError(f"{corpus_dir}: no speech files (vocal channel 01) found; expected {EXPECTED}")
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small RAVDESS tree under ``root``: two actors, each emotion once per actor, and one song file (skipped)."""
    root = Path(root)
    for actor in ("01", "02"):
        for i, code in enumerate(EMOTION_CODES):
            write_tone(root / f"Actor_{actor}" / f"03-01-{code}-01-01-01-{actor}.wav", freq=150.0 + 20 * i,
                       seed=10 * int(actor) + i)
        write_tone(root / f"Actor_{actor}" / f"03-02-01-01-01-01-{actor}.wav")  # song
    return root
