"""The store file's layout: format constants and the index of the audio each entry came from.

File layout (readable with plain h5py)::

    /                     attrs: format ("sertool-features"), format_version, config (JSON),
                                 config_hash (sha256 hex), feature_set, feature_type, level
                                 ("frame" | "utterance"), dim, sample_rate, sertool_version,
                                 manifest (path of the manifest it was made from)
    /feats/<utt_id>       float32 (num_frames, dim), time-major
    /index/id             utterance ids (UTF-8 strings), one row per entry in /feats
    /index/source_path    the audio file each entry was computed from (UTF-8), same order
    /index/source_size    its size in bytes (int64), same order
    /index/source_mtime_ns its modification time in ns (int64), same order
"""

from __future__ import annotations

import numpy as np

from sertool.store.identity import SourceIdentity

FORMAT = "sertool-features"
FORMAT_VERSION = 1


def h5py_module():
    """The h5py module, imported on first use."""
    import h5py  # heavy (HDF5 library): loaded only when a store is opened

    return h5py


def read_index(h5) -> dict[str, SourceIdentity]:
    """id -> identity of the audio of each entry of the open HDF5 file ``h5`` (empty without an index)."""
    if "index" not in h5:
        return {}
    g = h5["index"]
    ids = g["id"].asstr()[()]
    paths = g["source_path"].asstr()[()]
    return {i: SourceIdentity(int(s), int(m), p)
            for i, p, s, m in zip(ids, paths, g["source_size"][()], g["source_mtime_ns"][()])}


def write_index(h5, index: dict[str, SourceIdentity]) -> None:
    """Replace the ``/index`` group of the writable HDF5 file ``h5`` with ``index`` (id -> identity)."""
    h5py = h5py_module()
    if "index" in h5:
        del h5["index"]
    g = h5.create_group("index")
    ids = list(index)
    g.create_dataset("id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
    g.create_dataset("source_path", data=np.array([_storable(index[i].path) for i in ids], dtype=object),
                     dtype=h5py.string_dtype())
    g.create_dataset("source_size", data=np.array([index[i].size for i in ids], dtype=np.int64))
    g.create_dataset("source_mtime_ns", data=np.array([index[i].mtime_ns for i in ids], dtype=np.int64))


def _storable(path: str) -> str:
    """``path`` as HDF5 can store it: what is not valid UTF-8 (a file name's odd bytes) or NUL becomes ``?``.

    The path is informative only (:class:`SourceIdentity` compares size and mtime), so a lossy copy is enough
    and a checkpoint never fails on a file name.
    """
    return path.encode("utf-8", "replace").decode("utf-8").replace("\x00", "?")
