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

NORM_MODES = ("global", "speaker", "utterance")
#: Fewest utterances of one speaker from which ``speaker`` statistics are computed at scoring time.
MIN_SPEAKER_UTTERANCES = 10
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

    ``mean``/``std`` are the global statistics (mode ``global``);
    ``speaker_stats`` maps speaker -> (mean, std) and ``speaker_of`` utterance
    id -> speaker (mode ``speaker``).
    """

    mode: str = "global"
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    speaker_stats: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    speaker_of: dict[str, str] = field(default_factory=dict)

    def __call__(self, utt_id: str, x: np.ndarray) -> np.ndarray:
        if self.mode == "global":
            return ((x - self.mean) / self.std).astype(np.float32, copy=False)
        if self.mode == "utterance":
            return utterance_normalise(x)
        speaker = self.speaker_of.get(utt_id)
        if speaker not in self.speaker_stats:
            raise SertoolError(f"utterance {utt_id!r}: no statistics for its speaker {speaker!r}")
        mean, std = self.speaker_stats[speaker]
        return ((x - mean) / std).astype(np.float32, copy=False)

    def checkpoint_fields(self, dim: int) -> dict:
        """``norm``, ``norm_mean``, ``norm_std`` for a checkpoint (identity statistics unless global)."""
        import torch  # heavy (~1 s): only a checkpoint being written needs tensors

        if self.mode == "global":
            mean, std = self.mean, self.std
        else:
            mean, std = np.zeros(dim, np.float32), np.ones(dim, np.float32)
        return {"norm": {"mode": self.mode, "min_utterances": MIN_SPEAKER_UTTERANCES},
                "norm_mean": torch.from_numpy(np.asarray(mean, np.float32)),
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


def fit_normaliser(mode: str, store, utterances, *, train_ids: list[str], other_ids: Iterable[str] = ()) -> Normaliser:
    """The normaliser of one fold.

    ``global`` statistics come from ``train_ids`` only. ``speaker`` statistics
    are computed for every speaker of ``train_ids`` and ``other_ids``
    (validation or test utterances), each from its own original utterances.
    """
    if mode == "global":
        mean, std = moments((store[i] for i in train_ids), store.dim)
        return Normaliser("global", mean, std)
    if mode == "utterance":
        return Normaliser("utterance")
    ids = list(train_ids) + list(other_ids)
    by_id = {u.id: u for u in utterances}
    stats = speaker_statistics(store, speaker_groups(utterances, ids))
    return Normaliser("speaker", speaker_stats=stats, speaker_of={i: by_id[i].speaker for i in ids})


def from_checkpoint(checkpoint) -> Normaliser:
    """The normaliser a checkpoint records (speaker statistics still to be added for ``speaker``)."""
    mode = (checkpoint.norm or {}).get("mode", "global")
    return Normaliser(mode, np.asarray(checkpoint.norm_mean, np.float32), np.asarray(checkpoint.norm_std, np.float32))
