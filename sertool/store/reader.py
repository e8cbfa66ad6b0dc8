"""FeatureStore: read access to one HDF5 file of features per (manifest, feature config).

The file's layout is described in :mod:`sertool.store.layout`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from sertool.errors import StoreError
from sertool.io.manifest import read_manifest
from sertool.store.identity import SourceIdentity
from sertool.store.layout import FORMAT, FORMAT_VERSION, h5py_module, read_index


class FeatureStore:
    """Read-only access to a store file; also a context manager.

    ``store[id]`` returns float32 ``(num_frames, dim)``; ``store.attrs`` has the
    root attributes with ``config`` decoded to a dict. The HDF5 file is opened
    on first use, so an instance can be created before forking DataLoader
    workers (each opens its own handle).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreError(f"{self.path}: feature store not found; create it with `sertool extract`")
        self._h5 = None
        self._pid = None
        self.attrs = self._read_attrs()

    def _file(self):
        if self._h5 is None or self._pid != os.getpid():
            try:
                self._h5 = h5py_module().File(self.path, "r")
            except OSError as exc:
                raise StoreError(f"{self.path}: not a readable HDF5 feature store ({exc}); delete it and rerun extract") from None
            self._pid = os.getpid()
        return self._h5

    def _read_attrs(self) -> dict:
        attrs = dict(self._file().attrs)
        if attrs.get("format") != FORMAT:
            raise StoreError(f"{self.path}: not a sertool feature store (no format attribute); delete it or pick another file")
        if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
            raise StoreError(f"{self.path}: store format {attrs['format_version']} is newer than this sertool; upgrade sertool")
        attrs["config"] = json.loads(attrs["config"])
        return attrs

    @property
    def dim(self) -> int:
        return int(self.attrs["dim"])

    @property
    def config_hash(self) -> str:
        return str(self.attrs["config_hash"])

    @property
    def feature_names(self) -> list[str]:
        """Column names (openSMILE's own names for openSMILE sets)."""
        names = self.attrs.get("feature_names")
        return json.loads(names) if names else [f"f{i}" for i in range(self.dim)]

    def index(self) -> dict[str, SourceIdentity]:
        """id -> identity of the audio each entry came from."""
        return read_index(self._file())

    def __contains__(self, utt_id: str) -> bool:
        return f"feats/{utt_id}" in self._file()

    def __len__(self) -> int:
        f = self._file()
        return len(f["feats"]) if "feats" in f else 0

    def keys(self) -> list[str]:
        f = self._file()
        return list(f["feats"].keys()) if "feats" in f else []

    def __getitem__(self, utt_id: str) -> np.ndarray:
        try:
            return self._file()["feats"][utt_id][()]
        except KeyError:
            raise StoreError(f"{self.path}: no features for utterance {utt_id!r}; rerun `sertool extract`") from None

    def to_arrays(self, manifest=None, *, ids: list[str] | None = None, pad: bool = True):
        """The store's features as arrays, for scikit-learn or your own torch code.

        Parameters
        ----------
        manifest
            Manifest (path or list of Utterances) whose rows to read, in order, with
            their labels; default: the manifest the store was made from.
        ids
            Only these utterance ids (in this order).
        pad
            Frame-level stores: zero-pad to the longest utterance (``X`` (N, T, D));
            False returns a list of (T_i, D) arrays.

        Returns
        -------
        X : numpy.ndarray
            (N, D) float32 for utterance-level stores, (N, T, D) (or a list) for frame-level ones.
        y : list[str]
            The label of each row ("" when unlabelled).
        ids : list[str]
        lengths : numpy.ndarray
            (N,) int64 frames per utterance (all 1 at utterance level).

        Raises
        ------
        StoreError
            A listed utterance has no features in the store.
        """
        rows = manifest if isinstance(manifest, list) else read_manifest(manifest or self.attrs["manifest"])
        if ids is not None:
            by_id = {u.id: u for u in rows}
            missing = [i for i in ids if i not in by_id]
            if missing:
                raise StoreError(f"{missing[0]!r} is not in the manifest; pass ids from it")
            rows = [by_id[i] for i in ids]
        feats = [self[u.id] for u in rows]
        lengths = np.array([f.shape[0] for f in feats], np.int64)
        if self.attrs.get("level") == "utterance":
            x = np.concatenate(feats).astype(np.float32) if feats else np.zeros((0, self.dim), np.float32)
        elif not pad:
            x = feats
        else:
            x = np.zeros((len(feats), int(lengths.max()) if feats else 0, self.dim), np.float32)
            for k, f in enumerate(feats):
                x[k, : f.shape[0]] = f
        return x, [u.label for u in rows], [u.id for u in rows], lengths

    def close(self) -> None:
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
