"""Torch datasets over (manifest ids, feature store): lazy reads, normalisation, padding.

The store is read lazily, one HDF5 handle per process (``FeatureStore``
reopens after a fork), so ``DataLoader(num_workers=N)`` is safe.
"""

from __future__ import annotations

import numpy as np
import torch

from sertool.errors import SertoolError
from sertool.store import FeatureStore


class JoinedStore:
    """A frame-level store with an utterance-level one appended to every frame.

    ``joined[id]`` is ``(T, D + E)``: the frames of ``frames[id]`` with
    ``utterance[id]`` (shape (1, E), e.g. a speaker embedding) repeated on
    each. Without an utterance store it is the frame store itself.
    """

    def __init__(self, frame_store_path, utterance_store_path=None):
        self.frames = FeatureStore(frame_store_path)
        self.utterance = FeatureStore(utterance_store_path) if utterance_store_path else None
        if self.utterance is not None and self.utterance.attrs.get("level") != "utterance":
            raise SertoolError(f"{utterance_store_path}: not an utterance-level store (one vector per "
                               "utterance); extract one with e.g. --features mfcc_stats")
        self.dim = self.frames.dim + (self.utterance.dim if self.utterance else 0)

    def __contains__(self, utt_id: str) -> bool:
        return utt_id in self.frames and (self.utterance is None or utt_id in self.utterance)

    def __getitem__(self, utt_id: str) -> np.ndarray:
        x = self.frames[utt_id]
        if self.utterance is None:
            return x
        v = self.utterance[utt_id]
        return np.concatenate([x, np.repeat(v, x.shape[0], axis=0)], axis=1)

    def keys(self) -> list[str]:
        return [k for k in self.frames.keys() if k in self]


def normalisation_stats(store, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std (float32, (D,)) over every frame of ``ids``.

    Call it with training ids only: statistics never see validation or test data.
    """
    total = np.zeros(store.dim, np.float64)
    squares = np.zeros(store.dim, np.float64)
    count = 0
    for utt_id in ids:
        x = store[utt_id].astype(np.float64)
        total += x.sum(axis=0)
        squares += (x * x).sum(axis=0)
        count += x.shape[0]
    if count == 0:
        raise SertoolError("no training frames to compute normalisation statistics from")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-5).astype(np.float32)


class FeatureDataset(torch.utils.data.Dataset):
    """Items ``(feats (T, D) float32 normalised, label index)`` for the given ids.

    Parameters
    ----------
    store_path
        HDF5 feature store.
    utterance_store_path
        Optional utterance-level store appended to every frame (:class:`JoinedStore`).
    ids, labels
        Utterance ids and their class indices (-1 when unlabelled).
    mean, std
        Normalisation statistics, (D,).
    """

    def __init__(self, store_path, ids: list[str], labels: list[int], mean: np.ndarray, std: np.ndarray,
                 utterance_store_path=None):
        self.store = JoinedStore(store_path, utterance_store_path)
        missing = [i for i in ids if i not in self.store]
        if missing:
            raise SertoolError(f"{store_path}: no features for {len(missing)} utterance(s) (e.g. {missing[0]!r}); "
                               "rerun `sertool extract` on this manifest")
        self.ids, self.labels = list(ids), list(labels)
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.transform = None  # e.g. SpecAugment, for training sets only

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        x = torch.from_numpy((self.store[self.ids[index]] - self.mean) / self.std)
        if self.transform is not None:
            x = self.transform(x)
        return x, self.labels[index]


class SpecAugment:
    """Random feature-band and time masks (Park et al., 2019) on one normalised item (T, D).

    Masked cells are set to 0, the training mean after normalisation. Widths
    are drawn uniformly in [0, width]; the randomness comes from torch's
    generator, which the training loop seeds per epoch (and DataLoader per
    worker), so runs are reproducible.
    """

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int):
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        frames, dim = x.shape
        for count, width, size, axis in ((self.freq_masks, self.freq_width, dim, 1),
                                         (self.time_masks, self.time_width, frames, 0)):
            for _ in range(count):
                w = int(torch.randint(0, min(width, size) + 1, ()))
                start = int(torch.randint(0, size - w + 1, ()))
                if axis == 1:
                    x[:, start:start + w] = 0
                else:
                    x[start:start + w] = 0
        return x


def collate(batch):
    """Pad to the longest item: ``feats (B, T, D)``, ``lengths (B,)``, ``labels (B,)``."""
    lengths = torch.tensor([x.shape[0] for x, _ in batch], dtype=torch.long)
    feats = torch.zeros(len(batch), int(lengths.max()), batch[0][0].shape[1])
    for b, (x, _) in enumerate(batch):
        feats[b, : x.shape[0]] = x
    return feats, lengths, torch.tensor([y for _, y in batch], dtype=torch.long)
