"""EmoV-DB, the Emotional Voices Database (Adigwe et al., 2018), North American English.

Two distributed layouts are read, both one folder per speaker and emotion:

- the sorted release (github.com/numediart/EmoV-DB, "recommended"):
  ``DIR/<speaker>/<Emotion>/<file>.(wav|flac)``, e.g. ``bea/Amused/amused_1-15_0001.wav``;
- the OpenSLR archives (SLR115, ``bea_Amused.tar.gz`` ...) unpacked side by
  side: ``DIR/<speaker>_<Emotion>/<file>.(wav|flac)``, e.g.
  ``jenie_Amused/amused_57-84_0057.wav``.

File names: ``<style>_<first>-<last>_<NNNN>``, the style word (amused,
anger, disgust, neutral, sleepiness), the range of the annotation file it
was cut from (written ``1-15`` or ``141_168``: both occur), and ``NNNN``
the CMU Arctic sentence number (``arctic_aNNNN``). The emotion is read from
the folder, as the corpus's own scripts do.

Emotion folders (the code): Amused -> amused, Angry -> angry, Disgusted ->
disgust, Neutral -> neutral, Sleepy -> sleepy (folder names are matched
without regard to case).

Speakers: bea (f), jenie (f), josh (m), sam (m), from the README's table;
josh recorded only Amused, Neutral and Sleepy. Any other speaker folder is
read with gender ``""``. Nothing is skipped (annotation TextGrids are not
audio).

Manifest: id = ``<speaker>_<file stem>`` (stems repeat across speakers),
label = canonical name, speaker = folder name, session empty; extra
columns ``code`` (the emotion folder name) and ``sentence`` (``NNNN``).

Cite: A. Adigwe, N. Tits, K. El Haddad, S. Ostadabbas, T. Dutoit, "The
Emotional Voices Database: Towards Controlling the Emotion Dimension in
Voice Generation Systems", arXiv:1806.09514, 2018. Licence (LICENSE.md):
non-commercial purposes only (research, teaching, publication).
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("amused", "angry", "disgust", "neutral", "sleepy")
#: Emotion folder (lower case) -> canonical label.
EMOTION_CODES = {"amused": "amused", "angry": "angry", "disgusted": "disgust", "neutral": "neutral",
                 "sleepy": "sleepy"}
GENDER = {"bea": "f", "jenie": "f", "josh": "m", "sam": "m"}
EXPECTED = ("<speaker>/<Emotion>/<style>_<first>-<last>_<NNNN>.wav|flac or <speaker>_<Emotion>/... "
            "(the EmoV-DB layout, e.g. bea/Amused/amused_1-15_0001.wav)")
_NAME = re.compile(r"^([A-Za-z]+)_(\d+)[-_](\d+)_(\d{4})$")
_ARCHIVE_DIR = re.compile(r"^([A-Za-z]+)_([A-Za-z]+)$")


def _speaker_and_emotion(path: Path, corpus_dir: Path) -> tuple[str, str]:
    """(speaker, emotion folder) from where the file sits; CorpusError outside both layouts."""
    parts = path.relative_to(corpus_dir).parts
    if len(parts) == 3:
        return parts[0], parts[1]
    if len(parts) == 2 and _ARCHIVE_DIR.match(parts[0]):
        speaker, emotion = _ARCHIVE_DIR.match(parts[0]).groups()
        return speaker, emotion
    raise CorpusError(f"{path}: not in a <speaker>/<Emotion>/ or <speaker>_<Emotion>/ folder; expected {EXPECTED}")


def _row(path: Path, corpus_dir: Path) -> Utterance:
    """The row of one EmoV-DB file (label empty for an unknown emotion folder)."""
    speaker, emotion = _speaker_and_emotion(path, corpus_dir)
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <style>_<first>-<last>_<NNNN>; expected {EXPECTED}")
    return Utterance(
        id=f"{speaker}_{path.stem}", path=path, label=EMOTION_CODES.get(emotion.lower(), ""), speaker=speaker,
        gender=GENDER.get(speaker.lower(), ""), corpus="emov-db", extra={"code": emotion, "sentence": m.group(4)},
    )


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every EmoV-DB recording under ``corpus_dir`` (sorted or OpenSLR layout).

    Raises
    ------
    CorpusError
        No audio files, a file outside the speaker/emotion folders, a file
        name outside the scheme, an unknown emotion folder, or the same
        recording twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files; expected {EXPECTED}")
    rows = [_row(path, corpus_dir) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report, what="emotion folder", code_of=str.lower)


def fake_tree(root: Path) -> Path:
    """A small sorted EmoV-DB tree under ``root``: bea (f) in all five emotions, josh (m) in his three.

    Both spellings of the range occur (``1-28`` and ``141_168``), as in the release.
    """
    root = Path(root)
    folders = {"Amused": "amused", "Angry": "anger", "Disgusted": "disgust", "Neutral": "neutral",
               "Sleepy": "sleepiness"}
    for s, (speaker, emotions) in enumerate((("bea", list(folders)), ("josh", ["Amused", "Neutral", "Sleepy"]))):
        for i, folder in enumerate(emotions):
            sentence = 141 + i if i % 2 else 1 + i
            span = "141_168" if i % 2 else "1-28"
            write_tone(root / speaker / folder / f"{folders[folder]}_{span}_{sentence:04d}.wav",
                       freq=150.0 + 20 * i + 7 * s, seed=10 * s + i)
    return root
