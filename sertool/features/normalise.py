"""Feature normalisation as a recorded strategy, shared by train, evaluate and predict.

Modes (``train --norm``, stored in the checkpoint's ``norm`` field):

- ``global``: one mean/std per feature dimension over every frame of the
  fold's training utterances; stored in the checkpoint and applied to
  anything scored later.
- ``speaker``: each speaker's features are standardised with that speaker's
  own mean/std, computed over the frames (or vectors) of that speaker's
  original utterances, without labels and without any other speaker's data.
  Test and validation speakers use their own statistics. Augmented copies
  are normalised with their speaker's statistics but never contribute to
  them. Scoring needs several utterances per speaker
  (:data:`MIN_SPEAKER_UTTERANCES`); nothing is stored in the checkpoint but
  the mode.
- ``utterance``: each utterance standardised over its own frames
  (frame-level stores only).
- ``set``: statistics of a set of files scored together. In training, each
  corpus (the ``corpus`` column) is one set, its statistics from its own
  original training utterances; they are stored in the checkpoint, and
  validation or test rows of a training corpus use them. Rows of any other
  corpus (a ``loco`` test corpus, ``evaluate --on``) and the files
  ``predict`` scores together (a folder or a manifest) form one set whose
  statistics come from its own features, without labels: the transductive
  case, valid when the set holds several emotions (at least
  :data:`MIN_SET_UTTERANCES` files). A smaller set falls back to the
  statistics of all training utterances, stored in the checkpoint.

Which to use (see the README's normalisation guide): ``speaker`` removes
who is speaking, but only when each speaker shows several emotions
(:func:`speaker_trust` warns when the training data break that);
``set`` removes the recording conditions and language of a corpus, and
carries to other corpora; ``global`` carries to single files.

Speaker normalisation is the usual first step of speaker-independent SER:
much of the variance of prosodic and spectral features is who is speaking
(pitch range, loudness, vocal tract), not how they feel; removing each
speaker's own average leaves the deviations that carry the emotion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from sertool.errors import ConfigError, SertoolError

NORM_MODES = ("global", "speaker", "utterance", "set")
#: Fewest utterances of one speaker from which ``speaker`` statistics are computed at scoring time.
MIN_SPEAKER_UTTERANCES = 10
#: Fewest files scored together from which ``set`` statistics are computed (else the training statistics).
MIN_SET_UTTERANCES = 20
#: Group name of the files ``predict`` scores together in ``set`` mode.
SCORED_SET = "<scored set>"
EPS = 1e-5


def check_mode(mode: str, *, level: str | None = None) -> str:
    """Validate a norm mode (and that ``utterance`` is not used on an utterance-level store)."""
    if mode not in NORM_MODES:
        raise ConfigError(f"norm {mode!r} must be one of {', '.join(NORM_MODES)}")
    if mode == "utterance" and level == "utterance":
        raise ConfigError("--norm utterance standardises each utterance over its frames: it needs a frame-level "
                          "store; use --norm speaker or global with utterance-level features")
    return mode


def moments(arrays: Iterable[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (float32, (D,)) over every row of ``arrays`` (each (T, D)); std floored at 1e-5."""
    total = np.zeros(dim, np.float64)
    squares = np.zeros(dim, np.float64)
    count = 0
    for x in arrays:
        x = np.asarray(x, np.float64)
        total += x.sum(axis=0)
        squares += (x * x).sum(axis=0)
        count += x.shape[0]
    if count == 0:
        raise SertoolError("no frames to compute normalisation statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, EPS).astype(np.float32)


def utterance_normalise(x: np.ndarray) -> np.ndarray:
    """``x`` (T, D) standardised over its own frames."""
    mean = x.mean(axis=0, keepdims=True)
    std = np.maximum(x.std(axis=0, keepdims=True), EPS)
    return ((x - mean) / std).astype(np.float32)


def speaker_statistics(store, groups: dict[str, list[str]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """speaker -> (mean, std) from that speaker's own utterance ids (``groups``: speaker -> ids).

    Each speaker's statistics read only the features of the ids listed for
    that speaker: no label, no other speaker's data.
    """
    return {speaker: moments((store[i] for i in ids), store.dim) for speaker, ids in groups.items()}


def speaker_groups(utterances, ids: Iterable[str]) -> dict[str, list[str]]:
    """speaker -> original (non-augmented) utterance ids among ``ids``, for speaker statistics."""
    by_id = {u.id: u for u in utterances}
    groups: dict[str, list[str]] = {}
    for i in ids:
        u = by_id[i]
        if not u.source_id:
            groups.setdefault(u.speaker, []).append(i)
    return groups


@dataclass
class Normaliser:
    """Applies one mode: ``normaliser(utt_id, x (T, D)) -> float32 (T, D)``.

    ``mean``/``std`` are the global statistics (mode ``global``; the fallback of ``set``);
    ``speaker_stats`` maps a group (a speaker, or a set's name) -> (mean, std) and ``speaker_of``
    utterance id -> group (modes ``speaker`` and ``set``).
    """

    mode: str = "global"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    speaker_stats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    speaker_of: dict[str, str] = field(default_factory=dict)
    #: ``set`` mode: the groups whose statistics come from training data (recorded in the checkpoint).
    training_sets: tuple[str, ...] = ()

    def __call__(self, utt_id: str, x: np.ndarray) -> np.ndarray:
        if self.mode == "global":
            return ((x - self.mean) / self.std).astype(np.float32, copy=False)
        if self.mode == "utterance":
            return utterance_normalise(x)
        group = self.speaker_of.get(utt_id)
        if group in self.speaker_stats:
            mean, std = self.speaker_stats[group]
        elif self.mode == "set" and self.mean is not None:
            mean, std = self.mean, self.std
        else:
            raise SertoolError(f"utterance {utt_id!r}: no statistics for its {self.mode} {group!r}")
        return ((x - mean) / std).astype(np.float32, copy=False)

    def checkpoint_fields(self, dim: int) -> dict:
        """``norm``, ``norm_mean``, ``norm_std`` for a checkpoint (identity statistics for speaker/utterance).

        ``set`` checkpoints also record each training set's statistics (``norm["sets"]``: name ->
        [mean list, std list]) and the statistics of all training utterances (``norm_mean``/``norm_std``).
        """
        import torch  # heavy (~1 s): only a checkpoint being written needs tensors

        norm = {"mode": self.mode, "min_utterances": MIN_SPEAKER_UTTERANCES}
        if self.mode in ("global", "set"):
            mean, std = self.mean, self.std
        else:
            mean, std = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        if self.mode == "set":
            norm = {"mode": "set", "min_utterances": MIN_SET_UTTERANCES,
                    "sets": {name: [m.tolist(), s.tolist()] for name, (m, s) in self.speaker_stats.items()
                             if name in self.training_sets}}
        return {"norm": norm, "norm_mean": torch.from_numpy(np.asarray(mean, np.float32)),
                "norm_std": torch.from_numpy(np.asarray(std, np.float32))}


def speaker_normaliser(speaker: str, features: dict[str, np.ndarray]) -> Normaliser:
    """The ``speaker`` normaliser of one speaker's utterances, its statistics from all of their features.

    Parameters
    ----------
    speaker
        The speaker's name.
    features
        Utterance id -> raw features ``(T, D)`` of every utterance of that speaker (at least one).

    Returns
    -------
    Normaliser
        Mode ``speaker``: each of those ids is standardised with the speaker's mean and std.
    """
    arrays = list(features.values())
    stats = moments(arrays, arrays[0].shape[1])
    return Normaliser("speaker", speaker_stats={speaker: stats}, speaker_of={key: speaker for key in features})


def set_name(utterance) -> str:
    """The ``set`` group of a manifest row: its corpus (``""`` -> :data:`SCORED_SET`)."""
    return utterance.corpus or SCORED_SET


def set_normaliser(store, utterances, *, train_ids: list[str], other_ids: Iterable[str] = (),
                   known: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Normaliser:
    """The ``set`` normaliser: training corpora's statistics from their training rows, other sets their own.

    Parameters
    ----------
    store
        Features by id (``store[id] -> (T, D)``, ``store.dim``).
    utterances
        Manifest rows (their ``corpus`` names the set).
    train_ids
        Training utterances: each corpus's original ones give that corpus's statistics, and all of them the
        fallback (``mean``/``std``).
    other_ids
        Validation / test utterances: a corpus with training statistics uses them; any other corpus's rows are
        one set with statistics from their own features (no labels).
    known
        Statistics of training sets recorded in a checkpoint (evaluate: there are no train ids).

    Returns
    -------
    Normaliser
    """
    by_id = {u.id: u for u in utterances}
    stats = dict(known or {})
    train_groups: dict[str, list[str]] = {}
    for i in train_ids:
        if not by_id[i].source_id:
            train_groups.setdefault(set_name(by_id[i]), []).append(i)
    stats.update({name: moments((store[i] for i in ids), store.dim) for name, ids in train_groups.items()})
    other_groups: dict[str, list[str]] = {}
    for i in other_ids:
        name = set_name(by_id[i])
        if name not in stats and not by_id[i].source_id:
            other_groups.setdefault(name, []).append(i)
    stats.update({name: moments((store[i] for i in ids), store.dim) for name, ids in other_groups.items()})
    mean = std = None
    if train_ids:
        mean, std = moments((store[i] for i in train_ids if not by_id[i].source_id), store.dim)
    ids = list(train_ids) + list(other_ids)
    return Normaliser("set", mean, std, speaker_stats=stats, speaker_of={i: set_name(by_id[i]) for i in ids},
                      training_sets=tuple(sorted(set(train_groups) | set(known or {}))))


def fit_normaliser(mode: str, store, utterances, *, train_ids: list[str], other_ids: Iterable[str] = ()) -> Normaliser:
    """The normaliser of one fold.

    ``global`` statistics come from ``train_ids`` only. ``speaker`` statistics
    are computed for every speaker of ``train_ids`` and ``other_ids``
    (validation or test utterances), each from its own original utterances.
    ``set``: :func:`set_normaliser`.
    """
    if mode == "global":
        mean, std = moments((store[i] for i in train_ids), store.dim)
        return Normaliser("global", mean, std)
    if mode == "utterance":
        return Normaliser("utterance")
    if mode == "set":
        return set_normaliser(store, utterances, train_ids=train_ids, other_ids=other_ids)
    ids = list(train_ids) + list(other_ids)
    by_id = {u.id: u for u in utterances}
    stats = speaker_statistics(store, speaker_groups(utterances, ids))
    return Normaliser("speaker", speaker_stats=stats, speaker_of={i: by_id[i].speaker for i in ids})


def checkpoint_sets(checkpoint) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The training sets' statistics a ``set`` checkpoint records: name -> (mean, std) float32 (D,)."""
    sets = (checkpoint.norm or {}).get("sets") or {}
    return {name: (np.asarray(m, np.float32), np.asarray(s, np.float32)) for name, (m, s) in sets.items()}


def from_checkpoint(checkpoint) -> Normaliser:
    """The normaliser a checkpoint records (speaker or scored-set statistics still to be added)."""
    mode = (checkpoint.norm or {}).get("mode", "global")
    return Normaliser(mode, np.asarray(checkpoint.norm_mean, np.float32), np.asarray(checkpoint.norm_std, np.float32),
                      speaker_stats=checkpoint_sets(checkpoint) if mode == "set" else {},
                      training_sets=tuple(checkpoint_sets(checkpoint)) if mode == "set" else ())


def set_of_files(features: dict[str, np.ndarray], fallback: Normaliser) -> tuple[Normaliser, bool]:
    """The ``set`` normaliser of files scored together, and whether their own statistics were used.

    Parameters
    ----------
    features
        Key (path or id) -> raw features ``(T, D)`` of every file of the set.
    fallback
        The checkpoint's normaliser (its ``mean``/``std``: all training utterances).

    Returns
    -------
    Normaliser
        Every key standardised with the set's statistics, or with the training statistics when the set has
        fewer than :data:`MIN_SET_UTTERANCES` files.
    bool
        True when the set's own statistics were used.
    """
    if len(features) < MIN_SET_UTTERANCES:
        return Normaliser("set", fallback.mean, fallback.std), False
    arrays = list(features.values())
    stats = moments(arrays, arrays[0].shape[1])
    return Normaliser("set", fallback.mean, fallback.std, speaker_stats={SCORED_SET: stats},
                      speaker_of={key: SCORED_SET for key in features}), True


def speaker_trust(utterances, ids: Iterable[str], *, dominant: float = 0.8) -> str | None:
    """A warning when ``speaker`` statistics of these training rows would remove the emotion, else None.

    Speaker normalisation subtracts each speaker's average; when a speaker shows (mostly) one emotion,
    that average IS the emotion. Checked: speakers with fewer than :data:`MIN_SPEAKER_UTTERANCES`
    original utterances, and speakers whose most frequent label is more than ``dominant`` of their rows.

    Returns
    -------
    str or None
        One line naming how many speakers fail which check, and what to use instead.
    """
    by_id = {u.id: u for u in utterances}
    labels: dict[str, list[str]] = {}
    for i in ids:
        u = by_id[i]
        if not u.source_id:
            labels.setdefault(u.speaker, []).append(u.label)
    few = sorted(s for s, ls in labels.items() if len(ls) < MIN_SPEAKER_UTTERANCES)
    single = sorted(s for s, ls in labels.items() if max(ls.count(x) for x in set(ls)) > dominant * len(ls))
    if not few and not single:
        return None
    parts = []
    if few:
        parts.append(f"{len(few)} of {len(labels)} speakers have fewer than {MIN_SPEAKER_UTTERANCES} utterances "
                     f"(e.g. {few[0]})")
    if single:
        parts.append(f"{len(single)} of {len(labels)} speakers show one label in more than {dominant:.0%} of "
                     f"their utterances (e.g. {single[0]})")
    return ("speaker normalisation cannot be trusted here: " + "; ".join(parts)
            + ": their statistics hold the emotion itself; use --norm set or global")
