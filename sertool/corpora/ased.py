"""ASED, the Amharic Speech Emotion Dataset (Retta et al., ACM TALLIP 2022), version 1.

Layout: ``DIR/<NN><Emotion>/<e><n>-<yy>-<aa>-<gg>-<bb>.(wav|flac)``, e.g.
``01Neutral/n1-01-01-01-01.wav``: one folder per emotion, ``01Neutral``,
``02Fearful``, ``03Happy``, ``04Sad``, ``05Angry`` (the corpus's GitHub
release, github.com/Ethio2021/ASED_V1).

- ``e`` emotion letter, read case-insensitively (the release has one
  ``S4-04-02-01-29``): n -> neutral, f -> fearful, h -> happy, s -> sad,
  a -> angry; ``n`` the number of its folder (1-5). The letter, the number
  and the folder must agree.
- ``yy`` sentence, ``aa`` repetition, ``gg`` gender code (01 female,
  02 male), ``bb`` speaker number (01-65; the full corpus has 65 speakers,
  2474 utterances, four dialects: Gojjam, Wollo, Shewa, Gonder).

Manifest: id = file stem, label = canonical name, speaker = the speaker
number ``bb`` alone (``09``), session empty; extra columns ``code`` (the
letter, lower case), ``sentence`` (yy), ``repetition`` (aa) and
``gender_code`` (gg, as written in that file).

Gender: ``gg`` is not constant per speaker in the public release (five
speaker numbers appear with both codes), so a speaker's gender is the
majority code over that speaker's files (``""`` on a tie), the same on all
its rows; each such speaker is reported as a warning (``RunReport.warn``)
naming its minority file. Nothing is skipped.

Cite: E. A. Retta, E. Almekhlafi, R. Sutcliffe, M. Mhamed, H. Ali, J. Feng,
"A New Amharic Speech Emotion Dataset and Classification Benchmark", ACM
TALLIP, 2022. No licence is stated: research use.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from sertool.corpora.common import audio_files, check_labels, check_unique_ids, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS = ("neutral", "fearful", "happy", "sad", "angry")
EMOTION_CODES = dict(zip("nfhsa", LABELS))
#: Folder number -> the folder's emotion word, as the release names the folders.
FOLDERS = {"1": "Neutral", "2": "Fearful", "3": "Happy", "4": "Sad", "5": "Angry"}
GENDER_CODES = {"01": "f", "02": "m"}
EXPECTED = "<NN><Emotion>/<e><n>-<yy>-<aa>-<gg>-<bb>.wav|flac (the ASED layout, e.g. 01Neutral/n1-01-01-01-01.wav)"
_NAME = re.compile(r"^([A-Za-z])(\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")


def _emotion_dirs(corpus_dir: Path) -> dict[str, Path]:
    """Folder number -> its folder (``01Neutral`` ...), for the emotion folders present."""
    dirs = {n: corpus_dir / f"0{n}{word}" for n, word in FOLDERS.items() if (corpus_dir / f"0{n}{word}").is_dir()}
    if not dirs:
        raise CorpusError(f"{corpus_dir}: no 01Neutral ... 05Angry folders; expected {EXPECTED}")
    return dirs


def _row(path: Path, folder_number: str) -> tuple[Utterance, str]:
    """One file's row (gender still empty) and its gender code; CorpusError on a name outside the scheme."""
    m = _NAME.match(path.stem)
    if not m:
        raise CorpusError(f"{path}: file name is not <e><n>-<yy>-<aa>-<gg>-<bb>; expected {EXPECTED}")
    letter, number, sentence, repetition, gender_code, speaker = m.groups()
    letter = letter.lower()
    if number != folder_number:
        raise CorpusError(f"{path}: folder number {number} in the name but folder {path.parent.name}; "
                          f"move the file; expected {EXPECTED}")
    if letter in EMOTION_CODES and EMOTION_CODES[letter] != FOLDERS[number].lower():
        raise CorpusError(f"{path}: emotion letter {letter!r} ({EMOTION_CODES[letter]}) in folder "
                          f"{path.parent.name}; move the file; expected {EXPECTED}")
    row = Utterance(id=path.stem, path=path, label=EMOTION_CODES.get(letter, ""), speaker=speaker, corpus="ased",
                    extra={"code": letter, "sentence": sentence, "repetition": repetition,
                           "gender_code": gender_code})
    return row, gender_code


def speaker_genders(rows: list[Utterance], report: RunReport) -> dict[str, str]:
    """Speaker -> m/f by the majority of its files' gender codes (``""`` on a tie); warn on every mixed speaker.

    Parameters
    ----------
    rows
        ASED rows with ``extra["gender_code"]`` (01 female, 02 male).
    report
        Each speaker whose files carry both codes gets one warning naming a minority file.

    Returns
    -------
    dict
        Speaker number -> ``"f"``, ``"m"`` or ``""``.
    """
    counts: dict[str, Counter] = {}
    for row in rows:
        counts.setdefault(row.speaker, Counter())[row.extra["gender_code"]] += 1
    genders = {}
    for speaker, codes in sorted(counts.items()):
        (top, n_top), *rest = codes.most_common()
        genders[speaker] = "" if rest and rest[0][1] == n_top else GENDER_CODES.get(top, "")
        if rest:
            minority = next(r for r in rows if r.speaker == speaker and r.extra["gender_code"] != top)
            spread = " and ".join(f"{code} ({n} file{'s' * (n > 1)})" for code, n in sorted(codes.items()))
            report.warn(f"speaker {speaker}", minority.path, "prepare",
                        f"ASED speaker {speaker}'s files carry gender codes {spread}; "
                        f"gender set to {genders[speaker] or 'empty (a tie)'} by the majority")
    return genders


def prepare(corpus_dir: Path, *, report: RunReport) -> list[Utterance]:
    """Build the manifest rows of every ASED file under ``corpus_dir``.

    Raises
    ------
    CorpusError
        No emotion folders, a file name outside the ASED scheme, a letter or
        number that disagrees with its folder, or an unknown emotion letter or
        gender code.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    rows, letters, gender_codes = [], {}, {}
    for number, folder in _emotion_dirs(corpus_dir).items():
        for path in audio_files(folder, report=report):
            row, gender_code = _row(path, number)
            letters.setdefault(row.extra["code"], path)
            gender_codes.setdefault(gender_code, path)
            rows.append(row)
    if not rows:
        raise CorpusError(f"{corpus_dir}: no .wav or .flac files in the emotion folders; expected {EXPECTED}")
    check_labels(letters, EMOTION_CODES, "emotion", f"ASED letters are n f h s a; expected {EXPECTED}")
    check_labels(gender_codes, GENDER_CODES, "gender", f"ASED gender codes are 01 and 02; expected {EXPECTED}")
    check_unique_ids(rows, EXPECTED)
    genders = speaker_genders(rows, report)
    rows = [Utterance(**{**row.__dict__, "gender": genders[row.speaker]}) for row in rows]
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small ASED tree under ``root``: speakers 01 (female) and 02 (male), each emotion letter twice.

    Speaker 02 has one file with the female code (outvoted: a warning), and
    one sad file is named with the upper-case ``S`` the real release has.
    """
    root = Path(root)
    for i, (letter, number) in enumerate(zip(EMOTION_CODES, FOLDERS)):
        folder = root / f"0{number}{FOLDERS[number]}"
        for speaker, gender_code in (("01", "01"), ("02", "02")):
            for repetition in ("01", "02"):
                code = "01" if (speaker, letter, repetition) == ("02", "n", "02") else gender_code
                first = letter.upper() if (speaker, letter, repetition) == ("01", "s", "02") else letter
                write_tone(folder / f"{first}{number}-0{i + 1}-{repetition}-{code}-{speaker}.wav",
                           freq=150.0 + 20 * i + 5 * int(repetition), seed=10 * int(speaker) + i)
    return root
