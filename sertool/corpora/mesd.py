"""MESD, the Mexican Emotional Speech Database (Duville, Alonso-Valerdi & Ibarra-Zarate, 2021), single words.

Layout: ``<Emotion>_<V>_<C>_<word>.(wav|flac)`` at any depth under
``DIR``; the Mendeley release (data.mendeley.com/datasets/cy34mh68j9, v5)
keeps them in ``Mexican Emotional Speech Database (MESD)/``, e.g.
``Anger_C_A_abajo.wav``.

- ``Emotion`` (the code): Anger -> angry, Disgust -> disgust, Fear ->
  fearful, Happiness -> happy, Neutral -> neutral, Sadness -> sad.
- ``V`` voice type: F adult female, M adult male, C child.
- ``C`` word corpus: A (words repeated across prosodies and voices) or B
  (words controlled for age of acquisition, frequency, familiarity, ...).
- ``word``: the word or phrase, with ``_`` for spaces (``por_favor``).

NO SPEAKER IDS. The corpus has 3 female, 2 male and 6 child voices, but
neither the file names nor the release say which actor spoke a file. The
best documented grouping is the voice type, so ``speaker`` is ``F``, ``M``
or ``C``: three pseudo-speakers, each mixing several people. A
"speaker-independent" split of MESD therefore separates voice types, not
people; say so when reporting results on it. Gender: F -> f, M -> m,
C -> "" (children of both sexes).

Skipped: files under a folder whose name contains "naturalness"
(``Speaker-embedded naturalness-reduced female voices``, synthetic
re-renderings of female corpus-B words, levels 1 and 2 in their names):
they are not human recordings. Skipped files are counted in the report.

Manifest: id = file stem, label = canonical name, session empty; extra
columns ``code`` (the emotion word), ``voice`` (F/M/C), ``word_corpus``
(A/B) and ``word`` (spaces restored).

Cite: M. M. Duville, L. M. Alonso-Valerdi, D. I. Ibarra-Zarate, "Mexican
Emotional Speech Database Based on Semantic, Frequency, Familiarity,
Concreteness, and Cultural Shaping of Affective Prosody", Data 6(12):130,
2021. Licence: CC BY 4.0.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, checked_rows, require_dir
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "disgust", "fearful", "happy", "neutral", "sad")
EMOTION_CODES = dict(zip(("Anger", "Disgust", "Fear", "Happiness", "Neutral", "Sadness"), LABELS))
VOICE_GENDER = {"F": "f", "M": "m", "C": ""}
EXPECTED = ("<Emotion>_<F|M|C>_<A|B>_<word>.wav|flac (the MESD layout, "
            "e.g. Mexican Emotional Speech Database (MESD)/Anger_C_A_abajo.wav)")
_NAME = re.compile(r"^([A-Za-z]+)_([A-Za-z])_([A-Za-z])_(.+)$")
_SKIPPED_FOLDER = "naturalness"


def _synthetic(path: Path, corpus_dir: Path) -> bool:
    """Whether ``path`` sits in the release's naturalness-reduced (synthetic) folder."""
    return any(_SKIPPED_FOLDER in part.lower() for part in path.relative_to(corpus_dir).parts[:-1])


def _row(path: Path) -> Utterance:
    """The row of one MESD file (label empty for an unknown emotion word); CorpusError on a malformed name."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <Emotion>_<voice>_<corpus>_<word>; expected {EXPECTED}")
    emotion, voice, word_corpus, word = m.groups()
    voice, word_corpus = voice.upper(), word_corpus.upper()
    if voice not in VOICE_GENDER or word_corpus not in ("A", "B"):
        raise CorpusError(f"{path}: voice {voice!r} or word corpus {word_corpus!r} is not F/M/C and A/B; "
                          f"expected {EXPECTED}")
    return Utterance(
        id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""), speaker=voice, gender=VOICE_GENDER[voice],
        corpus="mesd", extra={"code": emotion, "voice": voice, "word_corpus": word_corpus,
                              "word": word.replace("_", " ")},
    )


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every human MESD recording under ``corpus_dir``.

    Speakers are the voice types F, M and C (the corpus has no speaker ids;
    see the module docstring). Synthetic naturalness-reduced files are
    skipped and counted in ``report``.

    Raises
    ------
    CorpusError
        No audio files, a name outside the MESD scheme, an unknown emotion
        word, or the same recording twice.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    files = audio_files(corpus_dir, recursive=True, report=report)
    human = [path for path in files if not _synthetic(path, corpus_dir)]
    if len(human) < len(files):
        report.skip(len(files) - len(human))
    if not human:
        raise CorpusError(f"{corpus_dir}: no human .wav or .flac recordings; expected {EXPECTED}")
    rows = [_row(path) for path in human]
    return checked_rows(rows, EMOTION_CODES, EXPECTED, report)


def fake_tree(root: Path) -> Path:
    """A small MESD tree under ``root``: voices F and C, every emotion once each, one two-word name, one synthetic file.

    The synthetic file sits in the naturalness-reduced folder and must be skipped.
    """
    root = Path(root)
    folder = root / "Mexican Emotional Speech Database (MESD)"
    words = ("abajo", "por_favor", "ataque", "hola", "gracias", "llanto")
    for s, (voice, corpus) in enumerate((("F", "A"), ("C", "B"))):
        for i, emotion in enumerate(EMOTION_CODES):
            write_tone(folder / f"{emotion}_{voice}_{corpus}_{words[i]}.wav", freq=150.0 + 20 * i + 11 * s,
                       seed=10 * s + i)
    write_tone(root / "Speaker-embedded naturalness-reduced female voices" / "Anger_F_B_1_ataque.wav")
    return root
