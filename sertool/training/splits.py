"""Evaluation protocols: which utterances train, validate and test in each fold.

Speaker-independent by default. Every protocol returns :class:`Fold` objects
whose ``valid`` set (used to pick the epoch and stop early) is drawn from the
training speakers only, never from the test fold. Augmented rows (with
``source_id``) carry their source's speaker, so they always follow their
source (the ``random`` protocol groups them with it explicitly); they are
training material only and are dropped from validation and test sets, which
hold original recordings.

``valid_speakers`` is a count of speakers (default 2), or, below 1, a share of the training files
(``0.2``: speakers holding about a fifth of the training files), so a corpus of very unequal speakers neither
loses a quarter of its training data to one large validation speaker nor chooses on a dozen files.

Protocols:

- ``loso``: leave one speaker out, every speaker is the test set once.
- ``speaker-kfold``: ``folds`` groups of whole speakers (default 5), of about equal file counts
  (:func:`balanced_groups`; speakers of equal counts are dealt round robin in a seeded shuffled order).
- ``session``: one fold per value of the ``session`` column (IEMOCAP LOSO).
- ``holdout``: one fold, ``test_speakers`` named.
- ``column``: one fold from a manifest column (default ``split``) holding
  train / valid / test; without valid rows, validation speakers are drawn
  from the train rows.
- ``loco``: leave one corpus out (the ``corpus`` column): every corpus is the
  test set once; ``valid_speakers`` validation speakers are drawn from EACH
  training corpus, so neither training nor model selection ever sees the
  test corpus.
- ``all``: one fold training on every speaker but the validation speakers,
  with no test set: for a final model, whose accuracy must come from a
  cross-validated run.
- ``random``: the papers' speaker-DEPENDENT split (80/10/10 of utterance
  groups, stratified by label): the same speakers appear in train and test.
  It warns on use; its numbers are not comparable with the others.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from sertool.errors import ConfigError
from sertool.io.manifest import Utterance

PROTOCOLS = ("loso", "speaker-kfold", "session", "holdout", "column", "loco", "random", "all")
RANDOM_WARNING = ("protocol 'random' is speaker-dependent: test speakers are also in training, "
                  "so its accuracy overstates performance on new speakers")


@dataclass(frozen=True)
class Fold:
    """One train/valid/test assignment; ids are utterance ids."""

    index: int
    name: str
    train: tuple[str, ...]
    valid: tuple[str, ...]
    test: tuple[str, ...]


def _by_speaker(utts: list[Utterance]) -> dict[str, list[Utterance]]:
    groups = defaultdict(list)
    for u in utts:
        if not u.speaker:
            raise ConfigError(f"utterance {u.id!r} has no speaker; speaker-independent protocols need one "
                              "(use --protocol random or column, or prepare with --speaker-regex)")
        groups[u.speaker].append(u)
    return dict(sorted(groups.items()))


def _valid_order(train_speakers: list[str], utts_by_speaker, rng: random.Random) -> list[str]:
    """The training speakers in the order validation draws them: shuffled, alternating genders when known."""
    by_gender = defaultdict(list)
    for s in train_speakers:
        by_gender[utts_by_speaker[s][0].gender or "?"].append(s)
    for speakers in by_gender.values():
        rng.shuffle(speakers)
    pools = [by_gender[g] for g in sorted(by_gender)]
    order = []
    while any(pools):
        order += [pool.pop() for pool in pools if pool]
    return order


def valid_amount(value) -> int | float:
    """``--valid-speakers`` read: a count (a whole number >= 0, as int) or a share of the training files (0 < x < 1).

    Raises
    ------
    ConfigError
        Anything else (negative, fractional above 1, not a number).
    """
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if 0 < number < 1:
        return number
    if number >= 0 and number.is_integer():
        return int(number)
    raise ConfigError(f"--valid-speakers {value!r} is neither a speaker count (0, 1, 2, ...) nor a share of the "
                      "training files between 0 and 1: give a count or a share such as 0.2")


def _pick_valid(train_speakers: list[str], utts_by_speaker, count: float, rng: random.Random) -> list[str]:
    """Validation speakers drawn from the training speakers, alternating genders when known.

    ``count`` >= 1 (or 0): that many speakers. ``0 < count < 1``: a share of the training FILES: speakers are
    taken in the drawn order, skipping any whose files would take the held-out share above 1.25 x ``count``,
    until the share is reached; when the speakers under that cap hold too little, the smallest larger
    speaker alone is held out instead if its file count is closer to the share.
    """
    if 0 < count < 1:
        return _pick_share(train_speakers, utts_by_speaker, count, rng)
    if len(train_speakers) <= count:
        raise ConfigError(f"only {len(train_speakers)} training speakers: cannot hold out {count} for validation; "
                          "use fewer --valid-speakers")
    return sorted(_valid_order(train_speakers, utts_by_speaker, rng)[:count])


def _pick_share(train_speakers: list[str], utts_by_speaker, share: float, rng: random.Random) -> list[str]:
    if len(train_speakers) < 2:
        raise ConfigError(f"only {len(train_speakers)} training speaker(s): cannot hold out a share of them for "
                          "validation; use --valid-speakers 0")
    files = {s: len(utts_by_speaker[s]) for s in train_speakers}
    goal, picked, held = share * sum(files.values()), [], 0
    for s in _valid_order(train_speakers, utts_by_speaker, rng):
        if held + files[s] <= 1.25 * goal:
            picked.append(s)
            held += files[s]
        if held >= goal:
            break
    # too few speakers under the cap (the small ones test in this fold): the closer of them and the smallest
    # larger speaker alone, so a fold neither chooses on a handful of files nor loses more than it must
    larger = [s for s in train_speakers if s not in picked and files[s] > 1.25 * goal]
    options = ([picked] if picked else []) + ([[min(larger, key=lambda s: (files[s], s))]] if larger else [])
    best = min(options, key=lambda group: abs(sum(files[s] for s in group) - goal))
    if len(best) == len(train_speakers):
        raise ConfigError(f"--valid-speakers {share}: the held-out share would take every training speaker")
    return sorted(best)


def _fold(index, name, test_speakers, speakers, valid_count, rng) -> Fold:
    train_speakers = [s for s in speakers if s not in test_speakers]
    valid_speakers = _pick_valid(train_speakers, speakers, valid_count, rng)
    ids = lambda group: tuple(u.id for s in group for u in speakers[s])  # noqa: E731
    return Fold(index, name, ids([s for s in train_speakers if s not in valid_speakers]), ids(valid_speakers),
                ids(sorted(test_speakers)))


def make_folds(utts: list[Utterance], protocol: str, *, folds: int = 5, valid_speakers: float = 2,
               test_speakers: list[str] | None = None, split_column: str = "split", seed: int = 0,
               warn=None) -> list[Fold]:
    """Split ``utts`` by ``protocol`` (see the module docstring).

    Raises
    ------
    ConfigError
        Unknown protocol, missing speakers or sessions, too few speakers.
    """
    augmented = {u.id for u in utts if u.source_id}
    valid_speakers = valid_amount(valid_speakers)
    return [Fold(f.index, f.name, f.train, tuple(i for i in f.valid if i not in augmented),
                 tuple(i for i in f.test if i not in augmented))
            for f in _make_folds(utts, protocol, folds=folds, valid_speakers=valid_speakers,
                                 test_speakers=test_speakers, split_column=split_column, seed=seed, warn=warn)]


def balanced_groups(shuffled: list[str], counts: dict[str, int], folds: int) -> list[list[str]]:
    """Speakers in ``folds`` groups of about equal file counts (``speaker-kfold``).

    Speakers go, most files first (ties in their ``shuffled`` order), each to the group with the fewest files
    so far (ties: the lowest group index). With equal counts this is ``shuffled[i::folds]``, the round robin.

    Parameters
    ----------
    shuffled
        Speaker names in the seeded shuffled order.
    counts
        Speaker -> its number of files.
    folds
        Number of groups.

    Returns
    -------
    list of list of str
        Each group's speakers, sorted.
    """
    groups: list[list[str]] = [[] for _ in range(folds)]
    sizes = [0] * folds
    for speaker in sorted(shuffled, key=lambda s: -counts[s]):  # a stable sort: ties keep the shuffled order
        smallest = min(range(folds), key=lambda k: (sizes[k], k))
        groups[smallest].append(speaker)
        sizes[smallest] += counts[speaker]
    return [sorted(g) for g in groups]


def _make_folds(utts, protocol, *, folds, valid_speakers, test_speakers, split_column, seed, warn) -> list[Fold]:
    rng = random.Random(seed)
    if protocol == "random":
        if warn:
            warn(RANDOM_WARNING)
        return [_random_fold(utts, rng)]
    if protocol == "column":
        return [_column_fold(utts, split_column, valid_speakers, rng)]
    speakers = _by_speaker(utts)
    names = list(speakers)
    if protocol == "loso":
        return [_fold(i, s, [s], speakers, valid_speakers, rng) for i, s in enumerate(names)]
    if protocol == "speaker-kfold":
        if not 2 <= folds <= len(names):
            raise ConfigError(f"--folds {folds}: need between 2 and {len(names)} (the number of speakers)")
        shuffled = names[:]
        rng.shuffle(shuffled)
        groups = balanced_groups(shuffled, {s: len(speakers[s]) for s in names}, folds)
        return [_fold(i, "+".join(g), g, speakers, valid_speakers, rng) for i, g in enumerate(groups)]
    if protocol == "session":
        sessions = defaultdict(set)
        for u in utts:
            if not u.session:
                raise ConfigError(f"utterance {u.id!r} has no session; --protocol session needs the session column")
            sessions[u.session].add(u.speaker)
        return [_fold(i, f"session{s}", sorted(sp), speakers, valid_speakers, rng)
                for i, (s, sp) in enumerate(sorted(sessions.items()))]
    if protocol == "loco":
        return _loco_folds(utts, speakers, valid_speakers, rng)
    if protocol == "all":
        return [_fold(0, "all", [], speakers, valid_speakers, rng)]
    if protocol == "holdout":
        missing = [s for s in (test_speakers or []) if s not in speakers]
        if not test_speakers or missing:
            raise ConfigError(f"--protocol holdout needs --test-speakers from {', '.join(names)}"
                              + (f" (unknown: {', '.join(missing)})" if missing else ""))
        return [_fold(0, "+".join(test_speakers), test_speakers, speakers, valid_speakers, rng)]
    raise ConfigError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")


def _loco_folds(utts, speakers, valid_count, rng) -> list[Fold]:
    """One fold per corpus: its speakers test; ``valid_count`` validation speakers from each other corpus."""
    corpus_of = {}
    for u in utts:
        if not u.corpus:
            raise ConfigError(f"utterance {u.id!r} has no corpus; --protocol loco needs the corpus column "
                              "(prepare each corpus with sertool prepare, then train on the manifests together)")
        if corpus_of.setdefault(u.speaker, u.corpus) != u.corpus:
            raise ConfigError(f"speaker {u.speaker!r} appears in corpora {corpus_of[u.speaker]!r} and {u.corpus!r}; "
                              "train on the manifests together so speakers are named per corpus")
    corpora = sorted(set(corpus_of.values()))
    if len(corpora) < 2:
        raise ConfigError(f"--protocol loco needs two or more corpora; the manifest has {', '.join(corpora)}")
    ids = lambda group: tuple(u.id for s in group for u in speakers[s])  # noqa: E731
    folds = []
    for index, test_corpus in enumerate(corpora):
        valid, train = [], []
        for corpus in corpora:
            if corpus == test_corpus:
                continue
            members = [s for s in speakers if corpus_of[s] == corpus]
            chosen = _pick_valid(members, speakers, valid_count, rng)
            valid += chosen
            train += [s for s in members if s not in chosen]
        test = [s for s in speakers if corpus_of[s] == test_corpus]
        folds.append(Fold(index, test_corpus, ids(train), ids(sorted(valid)), ids(test)))
    return folds


def _column_fold(utts, column, valid_count, rng) -> Fold:
    roles = defaultdict(list)
    for u in utts:
        value = u.extra.get(column, "")
        if value not in ("train", "valid", "test"):
            raise ConfigError(f"utterance {u.id!r}: column {column!r} is {value!r}; expected train, valid or test")
        roles[value].append(u)
    if not roles["train"] or not roles["test"]:
        raise ConfigError(f"column {column!r} needs both train and test rows")
    valid = roles["valid"]
    train = roles["train"]
    if not valid:
        speakers = _by_speaker(train)
        chosen = set(_pick_valid(list(speakers), speakers, valid_count, rng))
        valid = [u for u in train if u.speaker in chosen]
        train = [u for u in train if u.speaker not in chosen]
    return Fold(0, column, tuple(u.id for u in train), tuple(u.id for u in valid), tuple(u.id for u in roles["test"]))


def _random_fold(utts, rng) -> Fold:
    groups = defaultdict(list)  # an augmented copy goes wherever its source goes
    for u in utts:
        groups[u.source_id or u.id].append(u)
    by_label = defaultdict(list)
    for key, members in sorted(groups.items()):
        by_label[members[0].label].append(members)
    train, valid, test = [], [], []
    for label in sorted(by_label):
        items = by_label[label]
        rng.shuffle(items)
        n_test = max(1, round(0.1 * len(items)))
        n_valid = max(1, round(0.1 * len(items)))
        for i, members in enumerate(items):
            target = test if i < n_test else valid if i < n_test + n_valid else train
            target.extend(u.id for u in members)
    return Fold(0, "random", tuple(train), tuple(valid), tuple(test))
