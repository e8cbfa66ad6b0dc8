"""One label vocabulary for every corpus: canonical names, named label sets, and mappings.

Every preparer writes canonical names in the ``label`` column (``angry``, never ``ang``, ``anger``,
``W`` or ``05``) and keeps the corpus's own code in the ``code`` column, so manifests of different
corpora can be trained and evaluated together.

Canonical names (:data:`CANONICAL`): the basic emotions ``angry``, ``happy``, ``sad``, ``neutral``,
``fearful``, ``disgust``, ``surprised``, then ``calm``, ``bored``, ``contempt``, ``excited``,
``frustrated``, ``amused``, ``sleepy``, ``anxious``, ``apologetic``, ``assertive``, ``concerned``,
``encouraging``, ``pensive``, ``other``; and the levels ``low`` / ``high`` of corpora that
rate how strongly an emotion is expressed rather than which (BAVED: low, neutral, high).

Label sets (:data:`LABEL_SETS`, ``--labels NAME`` of ``train`` and ``evaluate``): ``big4`` (angry,
happy, neutral, sad: the set most cross-corpus work reports), ``big6`` (``big4`` + fearful,
disgust), ``big7`` (``big6`` + surprised), ``all`` (every label present). A mapping
(``--map excited=happy --map calm=neutral``) renames labels before the set is applied; rows whose
label is outside the set are left out (and counted).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Iterable, Mapping

from sertool.errors import ConfigError

CANONICAL = ("angry", "happy", "sad", "neutral", "fearful", "disgust", "surprised", "calm", "bored",
             "contempt", "excited", "frustrated", "amused", "sleepy", "anxious", "apologetic", "assertive",
             "concerned", "encouraging", "pensive", "low", "high", "other")

#: Named label sets; ``all`` keeps every label.
LABEL_SETS: dict[str, tuple[str, ...]] = {
    "big4": ("angry", "happy", "neutral", "sad"),
    "big6": ("angry", "disgust", "fearful", "happy", "neutral", "sad"),
    "big7": ("angry", "disgust", "fearful", "happy", "neutral", "sad", "surprised"),
    "all": (),
}

#: Common spellings of the canonical names (lower case) -> canonical name, for :func:`canonical`.
SYNONYMS = {
    "anger": "angry", "ang": "angry", "mad": "angry",
    "happiness": "happy", "hap": "happy", "joy": "happy", "joyful": "happy", "pleasant_surprise": "surprised",
    "ps": "surprised", "surprise": "surprised", "sur": "surprised",
    "sadness": "sad", "neu": "neutral", "fear": "fearful", "fea": "fearful", "afraid": "fearful",
    "disgusted": "disgust", "dis": "disgust", "boredom": "bored", "boring": "bored",
    "excitement": "excited", "exc": "excited", "frustration": "frustrated", "fru": "frustrated",
    "amusement": "amused", "sleepiness": "sleepy", "anxiety": "anxious", "oth": "other",
}


def canonical(name: str) -> str:
    """The canonical name of ``name`` (case-insensitive, common synonyms), or ``name`` lower-cased if unknown.

    Parameters
    ----------
    name
        A label as a corpus or a user spells it (``Anger``, ``hap``, ``Fear``).

    Returns
    -------
    str
        The name in :data:`CANONICAL` when one matches, else ``name.strip().lower()``.
    """
    key = name.strip().lower()
    return SYNONYMS.get(key, key)


def parse_mapping(items: Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["excited=happy", "calm=neutral"]`` (or a dict) -> ``{"excited": "happy", "calm": "neutral"}``.

    Raises
    ------
    ConfigError
        An item without exactly one ``=``, or an empty side.
    """
    if not items:
        return {}
    if isinstance(items, Mapping):
        return {canonical(k): canonical(v) for k, v in items.items()}
    mapping = {}
    for item in items:
        parts = str(item).split("=")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise ConfigError(f"label mapping {item!r} must be FROM=TO, e.g. excited=happy")
        mapping[canonical(parts[0])] = canonical(parts[1])
    return mapping


def resolve_set(label_set: str | Iterable[str] | None) -> tuple[str, ...]:
    """The labels of a named set, or of a comma-separated / listed set of names; ``()`` keeps every label.

    Raises
    ------
    ConfigError
        An unknown set name.
    """
    if label_set is None or label_set == "" or label_set == "all":
        return ()
    if isinstance(label_set, str):
        if label_set in LABEL_SETS:
            return LABEL_SETS[label_set]
        if "," not in label_set:
            raise ConfigError(f"unknown label set {label_set!r}; choose one of {', '.join(LABEL_SETS)} "
                              "or list labels separated by commas")
        label_set = label_set.split(",")
    return tuple(sorted({canonical(x) for x in label_set if x.strip()}))


def apply_labels(utterances: list, label_set=None, mapping=None) -> tuple[list, Counter]:
    """Rename labels by ``mapping`` and keep the rows whose label is in ``label_set``.

    With a set or a mapping, labels are first put in canonical form (:func:`canonical`: ``Anger`` ->
    ``angry``); without either, the rows are returned unchanged.

    Parameters
    ----------
    utterances
        Manifest rows (:class:`~sertool.io.manifest.Utterance`).
    label_set
        A name in :data:`LABEL_SETS`, labels separated by commas, a list, or None (every label).
    mapping
        ``FROM=TO`` items or a dict, applied before the set.

    Returns
    -------
    list
        The kept rows, labels renamed.
    collections.Counter
        Label -> number of rows left out because their (renamed) label is outside the set.
    """
    wanted = set(resolve_set(label_set))
    renames = parse_mapping(mapping)
    if not wanted and not renames:
        return list(utterances), Counter()
    kept, dropped = [], Counter()
    for u in utterances:
        label = canonical(u.label) if u.label else u.label  # "Anger" is "angry" for the set and the mapping
        label = renames.get(label, label)
        if wanted and label not in wanted:
            dropped[label] += 1
            continue
        kept.append(u if label == u.label else replace(u, label=label))
    return kept, dropped
