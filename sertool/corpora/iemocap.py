"""IEMOCAP (Busso et al., 2008), categorical labels.

Layout, as distributed::

    DIR/SessionN/dialog/EmoEvaluation/<dialog>.txt
    DIR/SessionN/sentences/wav/<dialog>/<utterance>.wav

Each evaluation file has one line per utterance,
``[start - end]<TAB>Ses01F_impro01_M000<TAB>neu<TAB>[v, a, d]``, giving the
majority (ground-truth) label code: neu, hap, exc, ang, sad, fru, fea, sur,
dis, oth, xxx (no majority).

Label sets (``label_set``):

- ``4`` (default, the common 4-class protocol): angry (ang), happy (hap and
  exc merged), sad (sad), neutral (neu): 5531 utterances on the full corpus.
- ``4-noexc``: the same without excited: 4490 utterances.
- ``6``: angry, happy, excited, sad, neutral, frustrated, kept apart.
- ``all``: every code but xxx, each its own class.

Utterances whose code is outside the chosen set are left out by design (the
count is reported); a code that is not an IEMOCAP code is an error.

Speaker: session + the letter that starts the utterance suffix
(``Ses01F_impro01_M000`` is spoken by ``Ses01M``; the ``F`` after ``Ses01``
only says who wore the motion-capture markers). Session column: 1-5.
Extra columns: ``dialog``, ``kind`` (improvised/scripted), ``code`` (the
IEMOCAP code, e.g. ``exc`` for a row labelled happy) and the mean dimensional
ratings of the line's ``[v, a, d]`` field: ``valence``, ``activation`` and
``dominance`` (1-5 scales; ``sertool train --target valence --target
activation --target dominance`` trains on them). ``label_set="dimensional"``
keeps every utterance, also those without a majority label (``xxx``, label
``unknown``) or with ``oth``: the ratings exist for all of them.
``subset`` keeps ``improvised`` or ``scripted`` dialogs only.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import require_dir, with_duration
from sertool.corpora.fake import make_fake_iemocap
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

CODES = ("neu", "hap", "exc", "ang", "sad", "fru", "fea", "sur", "dis", "oth", "xxx")
LABEL_SETS = {
    "4": {"ang": "angry", "hap": "happy", "exc": "happy", "sad": "sad", "neu": "neutral"},
    "4-noexc": {"ang": "angry", "hap": "happy", "sad": "sad", "neu": "neutral"},
    "6": {"ang": "angry", "hap": "happy", "exc": "excited", "sad": "sad", "neu": "neutral",
          "fru": "frustrated"},
    "all": {"ang": "angry", "hap": "happy", "exc": "excited", "sad": "sad", "neu": "neutral",
            "fru": "frustrated", "fea": "fearful", "sur": "surprised", "dis": "disgust", "oth": "other"},
}
LABEL_SETS["dimensional"] = {**LABEL_SETS["all"], "xxx": "unknown"}
LABELS = ("angry", "happy", "sad", "neutral")
SUBSETS = ("all", "improvised", "scripted")
EXPECTED = "SessionN/dialog/EmoEvaluation/*.txt and SessionN/sentences/wav/<dialog>/<utt>.wav (the IEMOCAP layout)"
_SESSION_DIR = re.compile(r"^Session(\d+)$")
_LINE = re.compile(r"^\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(Ses\d\d[MF]_\S+)\s+(\w+)\s+"
                   r"\[\s*([-\d.]+)\s*,\s*([-\d.]+)\s*,\s*([-\d.]+)\s*\]")
DIMENSIONS = ("valence", "activation", "dominance")
_UTT = re.compile(r"^(Ses\d\d)[MF]_(\S+)_([MF])\d+$")


def speaker_of(utterance_id: str) -> tuple[str, str]:
    """``Ses01F_impro01_M000`` -> (``"Ses01M"``, ``"m"``): session + suffix letter."""
    m = _UTT.match(utterance_id)
    if not m:
        raise CorpusError(f"utterance id {utterance_id!r} is not SesNN[MF]_<dialog>_[MF]NNN")
    return m.group(1) + m.group(3), m.group(3).lower()


def _evaluation_lines(path: Path):
    for line_no, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        m = _LINE.match(line)
        if m:
            ratings = dict(zip(DIMENSIONS, (m.group(5), m.group(6), m.group(7))))
            yield line_no, m.group(3), m.group(4), float(m.group(2)) - float(m.group(1)), ratings


def prepare(corpus_dir: Path, *, report: RunReport, label_set: str = "4", subset: str = "all") -> list[Utterance]:
    """Build the manifest rows of IEMOCAP utterances in ``label_set``.

    Raises
    ------
    CorpusError
        No SessionN folders or evaluation files, an unknown label code, an
        unknown label set or subset.
    """
    if label_set not in LABEL_SETS:
        raise CorpusError(f"unknown IEMOCAP label set {label_set!r}; choose one of {', '.join(LABEL_SETS)}")
    if subset not in SUBSETS:
        raise CorpusError(f"unknown IEMOCAP subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    mapping = LABEL_SETS[label_set]
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    sessions = sorted(d for d in corpus_dir.iterdir() if d.is_dir() and _SESSION_DIR.match(d.name))
    if not sessions:
        raise CorpusError(f"{corpus_dir}: no SessionN folders; expected {EXPECTED}")
    rows, left_out = [], 0
    for session_dir in sessions:
        session = _SESSION_DIR.match(session_dir.name).group(1)
        eval_dir = session_dir / "dialog" / "EmoEvaluation"
        eval_files = sorted(p for p in eval_dir.glob("*.txt") if not p.name.startswith("."))
        if not eval_files:
            raise CorpusError(f"{eval_dir}: no evaluation .txt files; expected {EXPECTED}")
        for eval_file in eval_files:
            dialog = eval_file.stem
            for line_no, utt_id, code, duration, ratings in _evaluation_lines(eval_file):
                if code not in CODES:
                    raise CorpusError(
                        f"{eval_file}, line {line_no}: unknown label code {code!r} "
                        f"(IEMOCAP codes: {', '.join(CODES)}); fix the file"
                    )
                kind = "improvised" if "_impro" in utt_id else "scripted"
                if code not in mapping or subset not in ("all", kind):
                    left_out += 1
                    continue
                speaker, gender = speaker_of(utt_id)
                rows.append(
                    Utterance(
                        id=utt_id, label=mapping[code], speaker=speaker, gender=gender,
                        session=session, corpus="iemocap", duration=duration,
                        path=session_dir / "sentences" / "wav" / dialog / f"{utt_id}.wav",
                        extra={"dialog": dialog, "kind": kind, "code": code, **ratings},
                    )
                )
    if not rows:
        raise CorpusError(f"{corpus_dir}: no utterances with labels in set {label_set!r}; expected {EXPECTED}")
    report.skip(left_out)
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small IEMOCAP tree under ``root`` (:func:`sertool.corpora.fake.make_fake_iemocap`, 0.3 s clips)."""
    return make_fake_iemocap(root, seconds=0.3)
