"""Torch datasets over (manifest ids, feature store): lazy reads, normalisation, padding.

The store is read lazily, one HDF5 handle per process (``FeatureStore``
reopens after a fork), so ``DataLoader(num_workers=N)`` is safe.
"""

from __future__ import annotations

import numpy as np
import torch

from sertool.errors import SertoolError
from sertool.features.normalise import moments
from sertool.store.reader import FeatureStore


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
    try:
        return moments((store[i] for i in ids), store.dim)
    except SertoolError:
        raise SertoolError("no training frames to compute normalisation statistics from") from None


def utterance_matrix(dataset: "FeatureDataset") -> tuple[np.ndarray, np.ndarray]:
    """All items of an utterance-level dataset as ``X`` (N, D) float32 (normalised) and ``y`` (N,) int64."""
    x = np.stack([dataset[k][0].numpy()[0] for k in range(len(dataset))]) if len(dataset) else np.zeros((0, 0))
    return x.astype(np.float32), np.asarray(dataset.labels, np.int64)


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
    normaliser
        ``normaliser(utt_id, x) -> x`` (a :class:`sertool.features.normalise.Normaliser`).
    """

    def __init__(self, store_path, ids: list[str], labels: list[int], normaliser, utterance_store_path=None):
        self.store = JoinedStore(store_path, utterance_store_path)
        missing = [i for i in ids if i not in self.store]
        if missing:
            raise SertoolError(f"{store_path}: no features for {len(missing)} utterance(s) (e.g. {missing[0]!r}); "
                               "rerun `sertool extract` on this manifest")
        self.ids, self.labels = list(ids), list(labels)
        self.normaliser = normaliser
        self.transform = None  # transform(x, generator), e.g. SpecAugment, for training sets only
        self.epoch_seed = 0  # set per epoch by the training loop; with the item index it seeds the transform

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int):
        utt_id = self.ids[index]
        x = torch.from_numpy(self.normaliser(utt_id, self.store[utt_id]))
        if self.transform is not None:
            # one generator per (epoch, item): the same masks and crops whatever the number of loader workers
            x = self.transform(x, torch.Generator().manual_seed(self.epoch_seed * 1000003 + index))
        return x, self.labels[index]


class RandomCrop:
    """A random ``frames``-long crop of one training item (T, D) longer than that; shorter items pass unchanged.

    Models with a fixed input length (``input_frames``) centre-crop at test
    time; a random crop in training shows them every part of longer clips.
    """

    def __init__(self, frames: int):
        self.frames = frames

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        extra = x.shape[0] - self.frames
        if extra <= 0:
            return x
        start = int(torch.randint(0, extra + 1, (), generator=generator))
        return x[start:start + self.frames]


class SpecAugment:
    """Random feature-band and time masks (Park et al., 2019) on one normalised item (T, D).

    Masked cells are set to 0, the training mean after normalisation. Widths
    are drawn uniformly in [0, width] from ``generator``, which the dataset
    seeds per (epoch, item), so runs are reproducible with any number of workers.
    """

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int):
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.clone()
        frames, dim = x.shape
        for count, width, size, axis in ((self.freq_masks, self.freq_width, dim, 1),
                                         (self.time_masks, self.time_width, frames, 0)):
            for _ in range(count):
                w = int(torch.randint(0, min(width, size) + 1, (), generator=generator))
                start = int(torch.randint(0, size - w + 1, (), generator=generator))
                if axis == 1:
                    x[:, start:start + w] = 0
                else:
                    x[start:start + w] = 0
        return x


def collate(batch):
    """Pad to the longest item: ``feats (B, T, D)``, ``lengths (B,)``, ``labels (B,)`` (regression: ``(B, K)``)."""
    lengths = torch.tensor([x.shape[0] for x, _ in batch], dtype=torch.long)
    feats = torch.zeros(len(batch), int(lengths.max()), batch[0][0].shape[1])
    for b, (x, _) in enumerate(batch):
        feats[b, : x.shape[0]] = x
    targets = [y for _, y in batch]  # class indices (int64), or regression values: lists of floats (float32)
    return feats, lengths, torch.tensor(targets, dtype=torch.long if isinstance(targets[0], int) else torch.float32)
