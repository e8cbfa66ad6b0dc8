"""CaFE, the Canadian French Emotional speech database (Gournay, Lahaie & Lefebvre, MMSys 2018).

Layout: ``AA-E-I-S`` files at any depth under ``DIR``, in the release's
folders ``<Émotion>/<Faible|Fort>/AA-E-I-S.(wav|flac|aiff)`` and
``Neutre/AA-N-...``, e.g. ``CaFE_48k/Colère/Faible/01-C-1-1.wav``. The
48 kHz release (zenodo.org/record/1478765) is WAV and names neutral files
``AA-N-1-S``; the 192 kHz release (parts ``CaFE_192k_1``, ``CaFE_192k_2``)
is AIFF and names them ``AA-N-S``, without the intensity: both are read.
The folder names are not used (the name carries everything).

- ``AA`` actor 01-12: odd = male, even = female (the Readme's table).
- ``E`` emotion letter (French initials): C (colère) -> angry, D (dégoût)
  -> disgust, J (joie) -> happy, N (neutre) -> neutral, P (peur) ->
  fearful, S (surprise) -> surprised, T (tristesse) -> sad.
- ``I`` intensity: 1 faible (low), 2 fort (high); absent on 192 kHz
  neutral files, required on every other emotion.
- ``S`` sentence 1-6 ("Un cheval fou dans mon jardin" ... "Six ours aimants
  domestiqués").

12 actors x 6 sentences x (6 emotions x 2 intensities + neutral) = 936
files. Nothing is skipped (Readme.txt and License.txt are not audio).

Manifest: id = file stem, label = canonical name, speaker = ``AA``, gender
from its parity, session empty; extra columns ``code`` (the letter),
``intensity`` (``1``/``2``, ``""`` when the name has none) and
``sentence``.

Cite: P. Gournay, O. Lahaie, R. Lefebvre, "A Canadian French Emotional
Speech Dataset", ACM MMSys 2018. Licence: CC BY-NC-SA 4.0.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "disgust", "happy", "neutral", "fearful", "surprised", "sad")
EMOTION_CODES = dict(zip("CDJNPST", LABELS))
#: The release's folder of each emotion letter (used by :func:`fake_tree`).
FOLDERS = {"C": "Colère", "D": "Dégoût", "J": "Joie", "N": "Neutre", "P": "Peur", "S": "Surprise",
           "T": "Tristesse"}
EXPECTED = "<Émotion>/<Faible|Fort>/AA-E-I-S.wav|flac|aiff (the CaFE layout, e.g. Colère/Faible/01-C-1-1.wav)"
_NAME = re.compile(r"^(\d\d)-([A-Za-z])-(?:(\d)-)?(\d)$")


def _row(path: Path) -> Utterance:
    """The row of one CaFE file (label empty for an unknown letter); CorpusError on a malformed name."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not AA-E-I-S; expected {EXPECTED}")
    actor, letter, intensity, sentence = m.groups()
    letter = letter.upper()
    if intensity is None and letter != "N":
        raise CorpusError(f"{path}: no intensity field (only neutral files may omit it); expected {EXPECTED}")
    return Utterance(
        id=path.stem, path=path, label=EMOTION_CODES.get(letter, ""), speaker=actor,
        gender="m" if int(actor) % 2 else "f", corpus="cafe",
        extra={"code": letter, "intensity": intensity or "", "sentence": sentence},
    )


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every CaFE file (48 kHz WAV or 192 kHz AIFF release) under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No audio files, a name outside the CaFE scheme, an unknown emotion
        letter, or the same recording twice (e.g. both releases under one
        folder).
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)  # AIFF included: a format libsndfile reads
    if not files:
        raise CorpusError(f"{corpus_dir}: no .wav, .flac or .aiff files; expected {EXPECTED}")
    rows = [_row(path) for path in files]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report)


def fake_tree(root: Path) -> Path:
    """A small 48 kHz-release CaFE tree under ``root``: actors 01 (m) and 02 (f), each emotion at both intensities.

    Neutral has one file per actor (``AA-N-1-S``); ``Readme.txt`` is not audio and not listed.
    """
    root = Path(root) / "CaFE_48k"
    for s, actor in enumerate(("01", "02")):
        for i, (letter, folder) in enumerate(FOLDERS.items()):
            for intensity, level in (("1", "Faible"), ("2", "Fort")):
                if letter == "N" and intensity == "2":
                    continue
                where = root / folder if letter == "N" else root / folder / level
                write_tone(where / f"{actor}-{letter}-{intensity}-{i % 6 + 1}.wav",
                           freq=150.0 + 20 * i + 40 * int(intensity) + 7 * s, seed=100 * s + 10 * i + int(intensity))
    (root / "Readme.txt").write_text("CaFE readme (not audio)\n")
    return root.parent
