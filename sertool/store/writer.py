"""StoreWriter: the single writer of a feature store (lock, add, checkpoint, commit).

Crash safety: the store file is never modified in place: a kill at any
moment leaves a complete store holding every entry up to the last checkpoint.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from sertool import __version__
from sertool.errors import StoreError
from sertool.io.atomic import create_exclusive
from sertool.io.locks import OutputLock
from sertool.store.identity import SourceIdentity
from sertool.store.layout import FORMAT, FORMAT_VERSION, h5py_module, read_index, write_index
from sertool.store.reader import FeatureStore

#: Free bytes kept on the store's disk for the checkpoint's index and metadata writes.
RESERVE_BYTES = 1 << 20


class EntryError(StoreError):
    """One entry cannot be stored (its id is no HDF5 name, or its array does not fit the store).

    The store and every other entry are unaffected: callers record a failure
    for that utterance and go on.
    """


def check_entry_id(utt_id) -> None:
    """EntryError unless ``utt_id`` can name an entry: a non-empty UTF-8 string, not ``.``, no ``/`` or NUL byte.

    HDF5 cuts a name at a NUL byte (``a\\x00b`` would overwrite entry ``a``)
    and reads ``/`` as a path, so such ids are refused before anything is written.
    """
    reason = None
    if not isinstance(utt_id, str) or not utt_id or utt_id == ".":
        reason = "it is empty or '.'"
    elif "\x00" in utt_id or "/" in utt_id:
        reason = "it contains a NUL byte or '/'"
    else:
        try:
            utt_id.encode("utf-8")
        except UnicodeEncodeError:
            reason = "it is not valid UTF-8"
    if reason:
        raise EntryError(f"id {utt_id!r} cannot name a store entry ({reason}); rename it in the manifest")


class StoreWriter:
    """The single writer of a store: locks it, adds entries, checkpoints, commits.

    Entries are written into a private copy (``.<store>.tmp``); a checkpoint
    closes it and atomically renames it over the store, so the store file is
    always a complete, closed HDF5 file. Checkpoints happen every
    ``checkpoint_seconds`` (stretched to at least 20x the time one copy takes,
    so they cost under 5 %), and on exit, including Ctrl-C and exceptions: a
    kill -9 loses at most the work since the last checkpoint, never the store.

    Parameters
    ----------
    path
        The store file (created if missing).
    attrs
        Root attributes; must include ``config`` (dict), ``config_hash`` and ``dim``.
    overwrite
        Start from an empty store, dropping the existing file.
    checkpoint_seconds
        Target interval between checkpoints.
    """

    def __init__(self, path: str | os.PathLike, attrs: dict, *, overwrite: bool = False,
                 checkpoint_seconds: float = 30.0):
        self.path = Path(path)
        self.overwrite = overwrite
        self.attrs = {"format": FORMAT, "format_version": FORMAT_VERSION, "sertool_version": __version__,
                      **attrs, "config": json.dumps(attrs["config"], sort_keys=True)}
        self.tmp_path = self.path.with_name(f".{self.path.name}.tmp")
        self.checkpoint_seconds = checkpoint_seconds
        self._interval = checkpoint_seconds
        self._feats = None
        self._h5 = None
        self._last_checkpoint = time.monotonic()
        self._lock_fh = None
        self.index: dict[str, SourceIdentity] = {}

    # -- life cycle -------------------------------------------------------
    def __enter__(self) -> "StoreWriter":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            self.tmp_path.unlink(missing_ok=True)  # left by a killed run: never trusted
            if self.overwrite:
                self.path.unlink(missing_ok=True)
            if self.path.exists():
                self._check_existing()
            else:
                self._create_empty()
            with h5py_module().File(self.path, "r") as h5:
                self.index = read_index(h5)
        except BaseException:
            self._unlock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.checkpoint()  # finished entries are complete: keep them whatever stopped the run
        finally:
            self._unlock()

    def _lock(self) -> None:
        self._lock_fh = OutputLock(self.path, f"{self.path}: another sertool process is writing this store; wait for "
                                   "it to finish", StoreError).acquire()

    def _unlock(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.release()
            self._lock_fh = None

    def _check_existing(self) -> None:
        try:
            existing = FeatureStore(self.path)
        except StoreError as exc:
            raise StoreError(f"{exc}; or pass --overwrite to rebuild it") from None
        with existing:
            if existing.config_hash != self.attrs["config_hash"]:
                raise StoreError(
                    f"{self.path}: holds features for config {existing.config_hash[:8]}, not "
                    f"{self.attrs['config_hash'][:8]}; delete it or pass --overwrite"
                )

    def _fresh_copy_path(self) -> None:
        """The private copy's name, emptied and created anew: never written through a planted file or symlink."""
        self.tmp_path.unlink(missing_ok=True)
        create_exclusive(self.tmp_path)

    def _create_empty(self) -> None:
        self._fresh_copy_path()
        with h5py_module().File(self.tmp_path, "w") as h5:
            h5.attrs.update(self.attrs)
            h5.create_group("feats")
            write_index(h5, {})
        os.replace(self.tmp_path, self.path)

    # -- writing ----------------------------------------------------------
    def needs(self, utt_id: str, identity: SourceIdentity) -> bool:
        """True unless the store already has ``utt_id`` from audio with this identity."""
        return self.index.get(utt_id) != identity

    def add(self, utt_id: str, feats: np.ndarray, identity: SourceIdentity) -> None:
        """Write one entry (replacing an older one); durable at the next checkpoint.

        Parameters
        ----------
        utt_id
            The utterance id.
        feats
            float32 (or float16) ``(num_frames, dim)``; ``(1, dim)`` for utterance-level stores.
        identity
            The audio the features were computed from.

        Raises
        ------
        EntryError
            This entry only: an id HDF5 cannot use as a name (see :func:`check_entry_id`), an array of the
            wrong dtype or shape, or one HDF5 refuses. Nothing of it is left in the store; every other
            entry is kept.
        StoreError
            A full disk, or a write that failed (the store keeps its last checkpoint).
        """
        check_entry_id(utt_id)
        self._check_array(utt_id, feats)
        h5py = h5py_module()
        self._open_copy()
        self._check_space(feats.nbytes)
        failure = rejected = space = dset = None
        try:
            if utt_id in self.index and utt_id in self._feats:  # a changed file: replace its entry
                del self._feats[utt_id]
            # The low-level calls cost half of create_dataset's per-entry overhead.
            space = h5py.h5s.create_simple(feats.shape)
            kind = h5py.h5t.IEEE_F16LE if feats.dtype == np.float16 else h5py.h5t.IEEE_F32LE  # ssl dtype=float16
            dset = h5py.h5d.create(self._feats.id, utt_id.encode(), kind, space)
            dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(feats))
        except OSError as exc:  # the file itself failed (disk, size limit): the copy cannot be trusted
            failure = OSError(exc.errno, exc.strerror)
        except Exception as exc:  # noqa: BLE001 - HDF5 refused this entry only (ValueError, TypeError, ...)
            rejected = " ".join(str(exc).split()) or type(exc).__name__
        # Outside the except blocks, so no traceback keeps HDF5 handles alive past the file's close
        # (freeing them afterwards segfaulted).
        space = dset = None
        if failure is not None:
            self._abandon_copy(failure)
        if rejected is not None:
            self._drop_entry(utt_id)
            raise EntryError(f"id {utt_id!r}: HDF5 cannot store this entry ({rejected}); the other entries are "
                             "kept")
        self.index[utt_id] = identity
        if time.monotonic() - self._last_checkpoint >= self._interval:
            self.checkpoint()

    def _check_array(self, utt_id: str, feats) -> None:
        """EntryError unless ``feats`` is a float32 (or float16) ``(rows, dim)`` array of this store's dim."""
        if (isinstance(feats, np.ndarray) and feats.dtype in (np.float32, np.float16) and feats.ndim == 2
                and feats.shape[1] == int(self.attrs["dim"])):
            return
        rows = "one row (1, dim) per file" if self.attrs.get("level") == "utterance" else "(frames, dim)"
        shape = f"{feats.shape} {feats.dtype}" if isinstance(feats, np.ndarray) else type(feats).__name__
        raise EntryError(f"{utt_id}: features of shape {shape} do not fit a store of dim {self.attrs['dim']}; an "
                         f"extractor must return float32 (or float16) {rows}, with the dim it reported on its "
                         "first file")

    def _drop_entry(self, utt_id: str) -> None:
        """Forget ``utt_id`` after a refused write: its index row, and any part of it HDF5 created."""
        self.index.pop(utt_id, None)
        try:
            if utt_id in self._feats:
                del self._feats[utt_id]
        except Exception:  # noqa: BLE001 - an odd name HDF5 cannot look up: the checkpoint drops orphans anyway
            pass

    def remove(self, utt_id: str) -> None:
        """Drop ``utt_id`` from the store (no-op when absent); durable at the next checkpoint."""
        if utt_id not in self.index:
            return
        self._open_copy()
        if utt_id in self._feats:
            del self._feats[utt_id]
        del self.index[utt_id]

    def _open_copy(self) -> None:
        if self._h5 is not None:
            return
        start = time.monotonic()
        try:
            self._fresh_copy_path()
            shutil.copyfile(self.path, self.tmp_path)
        except OSError as exc:
            self._abandon_copy(exc)
        # Stretch the interval so that copying costs under 5 % of the run.
        self._interval = max(self.checkpoint_seconds, 20 * (time.monotonic() - start))
        self._h5 = h5py_module().File(self.tmp_path, "r+")
        self._feats = self._h5["feats"]
        if "manifest" in self.attrs:  # a store taken over by a moved manifest records where it is now
            self._h5.attrs["manifest"] = self.attrs["manifest"]

    def checkpoint(self) -> None:
        """Make every entry written so far durable: close the copy and rename it over the store.

        Raises
        ------
        StoreError
            The copy could not be written (the store keeps its last checkpoint).
        """
        self._last_checkpoint = time.monotonic()
        if self._h5 is None:
            return
        try:
            # An entry interrupted between creating its dataset and indexing it is dropped:
            # the index is the record of what is complete.
            for orphan in [k for k in self._feats.keys() if k not in self.index]:
                del self._feats[orphan]
            write_index(self._h5, self.index)
            self._h5.close()
        except OSError as exc:
            failure = OSError(exc.errno, exc.strerror)
        except BaseException:
            self._close_copy()
            self.tmp_path.unlink(missing_ok=True)
            raise
        else:
            failure = None
        if failure is not None:
            self._abandon_copy(failure)
        self._h5 = None
        try:
            with open(self.tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        except OSError as exc:
            self._abandon_copy(exc)
        os.replace(self.tmp_path, self.path)

    def _check_space(self, nbytes: int) -> None:
        """StoreError before a write that would leave less than :data:`RESERVE_BYTES` free on the store's disk.

        HDF5 does not recover from a failed write (freeing its handles afterwards
        can crash the process), so a full disk is caught before it happens; the
        reserve lets the checkpoint on exit save every entry written so far.
        """
        st = os.statvfs(self.tmp_path.parent)
        if st.f_bavail * st.f_frsize < nbytes + RESERVE_BYTES:
            raise StoreError(f"{self.path.parent}: disk full ({st.f_bavail * st.f_frsize // 1024} KiB free) while "
                             f"writing {self.path.name}; free some space (or use another -o) and rerun: the entries "
                             "finished so far are kept")

    def _close_copy(self) -> None:
        """Close the private copy whatever state a failed write left it in (h5py must not free it later)."""
        h5, self._h5, self._feats = self._h5, None, None
        if h5 is not None:
            try:
                h5.close()
            except Exception:  # noqa: BLE001 - a failing flush on a full disk; the copy is dropped anyway
                pass

    def _abandon_copy(self, exc: OSError) -> None:
        """After a failed write: drop the private copy, keep the store as of its last checkpoint, raise StoreError."""
        self._close_copy()
        self.tmp_path.unlink(missing_ok=True)
        with h5py_module().File(self.path, "r") as h5:
            self.index = read_index(h5)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreError(f"{self.path.parent}: disk full while writing {self.path.name}; free some space (or "
                             f"use another -o) and rerun: the store keeps the {len(self.index)} entries saved "
                             "before") from None
        if exc.errno == errno.EFBIG or "errno = 27" in str(exc):
            raise StoreError(f"{self.path}: the file size limit was reached while writing the store (ulimit -f, "
                             "or the file system's largest file); raise the limit or use another -o and rerun: the "
                             f"store keeps the {len(self.index)} entries saved before") from None
        reason = " ".join(str(exc.strerror or exc).split())  # HDF5 messages span lines
        raise StoreError(f"{self.path}: cannot write the store ({reason}); the store keeps the "
                         f"{len(self.index)} entries saved before") from None
