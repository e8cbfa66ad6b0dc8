"""Several manifests as one training set: speakers named per corpus, one label vocabulary.

Two corpora can both have a speaker ``01``; trained together they are two people. When more than one
manifest is given, every speaker becomes ``<corpus>:<speaker>`` (the row's ``corpus`` column, or the
manifest's file stem when it is empty), and the ``corpus`` column is filled, so ``--protocol loco``
and per-corpus statistics know where each row came from. Utterance ids must stay unique across the
manifests (they key the feature store). Labels are then mapped and filtered
(:func:`sertool.corpora.labels.apply_labels`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

from sertool.corpora.labels import apply_labels
from sertool.errors import ManifestError
from sertool.io.manifest import Utterance, read_manifest


@dataclass
class Combined:
    """Rows of one or more manifests after namespacing and label selection.

    Attributes
    ----------
    rows : list of Utterance
        The rows kept.
    manifests : list of Path
        The manifests read, in order.
    dropped : Counter
        Label -> rows left out by the label set.
    changed : bool
        The rows differ from the single manifest given (namespaced, renamed or filtered): a run must
        keep its own copy of them.
    """

    rows: list[Utterance]
    manifests: list[Path]
    dropped: Counter = field(default_factory=Counter)
    changed: bool = False

    @property
    def corpora(self) -> list[str]:
        """The corpora of the rows, sorted."""
        return sorted({u.corpus for u in self.rows if u.corpus})


def namespaced(rows: list[Utterance], corpus: str) -> list[Utterance]:
    """``rows`` with speakers ``<corpus>:<speaker>`` and the ``corpus`` column filled where empty."""
    out = []
    for u in rows:
        name = u.corpus or corpus
        speaker = f"{name}:{u.speaker}" if u.speaker and not u.speaker.startswith(f"{name}:") else u.speaker
        out.append(replace(u, corpus=name, speaker=speaker))
    return out


def combine_manifests(manifests: Sequence, *, label_set=None, mapping=None) -> Combined:
    """Read ``manifests`` as one set of rows (see the module docstring).

    Parameters
    ----------
    manifests
        One or more manifest CSV paths.
    label_set
        A named set (``big4`` ...), labels separated by commas, or None for every label.
    mapping
        ``FROM=TO`` items or a dict applied before the set.

    Returns
    -------
    Combined

    Raises
    ------
    ManifestError
        A missing or malformed manifest, or an utterance id found in two manifests.
    ConfigError
        An unknown label set or a malformed mapping.
    """
    paths = [Path(m) for m in manifests]
    if not paths:
        raise ManifestError("no manifest given")
    rows, seen = [], {}
    for path in paths:
        part = read_manifest(path)
        if len(paths) > 1:
            part = namespaced(part, path.stem)
        for u in part:
            if u.id in seen:
                raise ManifestError(f"{path}: utterance id {u.id!r} is also in {seen[u.id]}; ids must be unique "
                                    "across the manifests trained together (they key the feature store)")
            seen[u.id] = path
        rows.extend(part)
    kept, dropped = apply_labels(rows, label_set, mapping)
    changed = len(paths) > 1 or bool(dropped) or any(a.label != b.label for a, b in zip(kept, rows))
    return Combined(kept, paths, dropped, changed or len(kept) != len(rows))


def corpus_counts(rows: list[Utterance]) -> dict[str, Counter]:
    """corpus -> label -> rows, for summaries and per-corpus balance."""
    counts: dict[str, Counter] = {}
    for u in rows:
        counts.setdefault(u.corpus, Counter())[u.label] += 1
    return counts
