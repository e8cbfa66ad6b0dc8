"""FeatureStore: one HDF5 file of features per (manifest, feature config).

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

Crash safety: the store file is never modified in place (see
:class:`StoreWriter`): a kill at any moment leaves a complete store holding
every entry up to the last checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sertool import __version__
from sertool.errors import StoreError

if TYPE_CHECKING:
    import numpy as np

FORMAT = "sertool-features"
#: Free bytes kept on the store's disk for the checkpoint's index and metadata writes.
RESERVE_BYTES = 1 << 20
FORMAT_VERSION = 1


@dataclass(frozen=True)
class SourceIdentity:
    """What identifies the audio an entry was computed from: size in bytes and mtime in ns.

    ``path`` is informative only: moving a corpus does not invalidate its features.
    """

    size: int
    mtime_ns: int
    path: str = dataclasses.field(default="", compare=False)

    @classmethod
    def of(cls, path: str | os.PathLike) -> "SourceIdentity":
        st = os.stat(path)
        return cls(int(st.st_size), int(st.st_mtime_ns), str(path))


def store_path(out_dir: str | os.PathLike, manifest: str | os.PathLike, feature_set: str, config_hash: str) -> Path:
    """``<out_dir>/<manifest stem>.<feature set>-<first 8 hex digits of the config hash>.h5``."""
    return Path(out_dir) / f"{Path(manifest).stem}.{feature_set}-{config_hash[:8]}.h5"


def shard_path(store: str | os.PathLike, index: int, count: int) -> Path:
    """The partial store of shard ``index`` of ``count`` (0-based): ``m.mfcc-1234abcd.shard-0-of-4.h5``."""
    store = Path(store)
    return store.with_name(f"{store.stem}.shard-{index}-of-{count}.h5")


def shard_paths(store: str | os.PathLike) -> list[Path]:
    """The shard files of ``store`` in its folder (any count), sorted."""
    store = Path(store)
    return sorted(store.parent.glob(f"{store.stem}.shard-*-of-*.h5"))


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (0 <= K < N) -> ``(K, N)``; ConfigError for anything else."""
    from sertool.errors import ConfigError

    try:
        index, count = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r} must be K/N, e.g. 0/4 (shards are numbered from 0)") from None
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--shard {text!r}: K must be 0 ... N-1 (shards are numbered from 0)")
    return index, count


def merge_stores(sources: list, writer: "StoreWriter", wanted: dict[str, "SourceIdentity"] | None = None) -> int:
    """Copy entries of ``sources`` (stores of the same config) into ``writer``; returns how many were copied.

    With ``wanted`` (id -> identity of the audio as it is now), only entries
    the writer still needs whose recorded identity equals the current one are
    copied (a shard computed from an older version of a file is ignored);
    without it, every entry. Arrays are copied as stored, so the result is
    equal, entry by entry, to a store written in one run.
    """
    copied = 0
    for source in sources:
        with FeatureStore(source) as store:
            if store.config_hash != writer.attrs["config_hash"]:
                raise StoreError(f"{source}: features of config {store.config_hash[:8]}, not "
                                 f"{writer.attrs['config_hash'][:8]}; merge stores of one config only")
            for utt_id, identity in store.index().items():
                if wanted is not None and (wanted.get(utt_id) != identity or not writer.needs(utt_id, identity)):
                    continue
                writer.add(utt_id, store[utt_id], identity)
                copied += 1
    return copied


def _h5py():
    import h5py

    return h5py


def _read_index(h5) -> dict[str, SourceIdentity]:
    if "index" not in h5:
        return {}
    g = h5["index"]
    ids = g["id"].asstr()[()]
    paths = g["source_path"].asstr()[()]
    return {i: SourceIdentity(int(s), int(m), p)
            for i, p, s, m in zip(ids, paths, g["source_size"][()], g["source_mtime_ns"][()])}


def _write_index(h5, index: dict[str, SourceIdentity]) -> None:
    import numpy as np

    h5py = _h5py()
    if "index" in h5:
        del h5["index"]
    g = h5.create_group("index")
    ids = list(index)
    g.create_dataset("id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
    g.create_dataset("source_path", data=np.array([index[i].path for i in ids], dtype=object),
                     dtype=h5py.string_dtype())
    g.create_dataset("source_size", data=np.array([index[i].size for i in ids], dtype=np.int64))
    g.create_dataset("source_mtime_ns", data=np.array([index[i].mtime_ns for i in ids], dtype=np.int64))


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
                self._h5 = _h5py().File(self.path, "r")
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
        return _read_index(self._file())

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
        import numpy as np

        from sertool.io.manifest import read_manifest

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
            with _h5py().File(self.path, "r") as h5:
                self.index = _read_index(h5)
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
        from sertool.io.locks import OutputLock

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

    def _create_empty(self) -> None:
        with _h5py().File(self.tmp_path, "w") as h5:
            h5.attrs.update(self.attrs)
            h5.create_group("feats")
            _write_index(h5, {})
        os.replace(self.tmp_path, self.path)

    # -- writing ----------------------------------------------------------
    def needs(self, utt_id: str, identity: SourceIdentity) -> bool:
        """True unless the store already has ``utt_id`` from audio with this identity."""
        return self.index.get(utt_id) != identity

    def add(self, utt_id: str, feats: np.ndarray, identity: SourceIdentity) -> None:
        """Write one entry (replacing an older one); durable at the next checkpoint."""
        import numpy as np

        if feats.dtype not in (np.float32, np.float16) or feats.ndim != 2 or feats.shape[1] != int(self.attrs["dim"]):
            rows = "one row (1, dim) per file" if self.attrs.get("level") == "utterance" else "(frames, dim)"
            raise StoreError(f"{utt_id}: features of shape {feats.shape} {feats.dtype} do not fit a store of dim "
                             f"{self.attrs['dim']}; an extractor must return float32 (or float16) {rows}, with the dim it "
                             "reported on its first file")
        h5py = _h5py()
        self._open_copy()
        self._check_space(feats.nbytes)
        failure = space = dset = None
        try:
            if utt_id in self.index and utt_id in self._feats:  # a changed file: replace its entry
                del self._feats[utt_id]
            # The low-level calls cost half of create_dataset's per-entry overhead.
            space = h5py.h5s.create_simple(feats.shape)
            kind = h5py.h5t.IEEE_F16LE if feats.dtype == np.float16 else h5py.h5t.IEEE_F32LE  # ssl dtype=float16
            dset = h5py.h5d.create(self._feats.id, utt_id.encode(), kind, space)
            dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(feats))
        except OSError as exc:
            failure = OSError(exc.errno, exc.strerror)
        if failure is not None:
            # Outside the except block, so no traceback keeps HDF5 handles alive past the file's close
            # (freeing them afterwards segfaulted).
            space = dset = None
            self._abandon_copy(failure)
        self.index[utt_id] = identity
        if time.monotonic() - self._last_checkpoint >= self._interval:
            self.checkpoint()

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
        import shutil

        try:
            shutil.copyfile(self.path, self.tmp_path)
        except OSError as exc:
            self._abandon_copy(exc)
        # Stretch the interval so that copying costs under 5 % of the run.
        self._interval = max(self.checkpoint_seconds, 20 * (time.monotonic() - start))
        self._h5 = _h5py().File(self.tmp_path, "r+")
        self._feats = self._h5["feats"]

    def checkpoint(self) -> None:
        """Make every entry written so far durable: close the copy and rename it over the store."""
        self._last_checkpoint = time.monotonic()
        if self._h5 is None:
            return
        try:
            # An entry interrupted between creating its dataset and indexing it is dropped:
            # the index is the record of what is complete.
            for orphan in [k for k in self._feats.keys() if k not in self.index]:
                del self._feats[orphan]
            _write_index(self._h5, self.index)
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
        import errno

        self._close_copy()
        self.tmp_path.unlink(missing_ok=True)
        with _h5py().File(self.path, "r") as h5:
            self.index = _read_index(h5)
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


def merge_files(shards: list, output: str | os.PathLike) -> int:
    """Merge stores ``shards`` (of one config) into ``output`` (created, or added to); returns entries copied."""
    if not shards:
        raise StoreError("no stores to merge")
    with FeatureStore(shards[0]) as first:
        attrs = {k: v for k, v in first.attrs.items() if k not in ("format", "format_version", "sertool_version")}
    with StoreWriter(output, attrs) as writer:
        return merge_stores(shards, writer)


def describe(path: str | os.PathLike, *, max_rows: int = 10) -> str:
    """A short text summary of a store: config, entry count and the first entries' shapes."""
    with FeatureStore(path) as store:
        attrs = store.attrs
        keys = sorted(store.keys())
        lines = [
            f"{store.path}: {len(keys)} entries, feature set {attrs['feature_set']} "
            f"({attrs['feature_type']}, {attrs['level']} level, dim {attrs['dim']}, {attrs['sample_rate']} Hz), "
            f"config {store.config_hash[:8]}, sertool {attrs['sertool_version']}",
        ]
        for key in keys[:max_rows]:
            feats = store[key]
            lines.append(f"  {key:28s} {feats.shape[0]:5d} x {feats.shape[1]:<4d} "
                         f"mean {feats.mean():9.3f}  std {feats.std():8.3f}")
        if len(keys) > max_rows:
            lines.append(f"  ... {len(keys) - max_rows} more")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """``python -m sertool.store.core STORE.h5 ...``: describe each store; exit code 0, 1 (error) or 2 (usage)."""
    import sys

    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m sertool.store.core STORE.h5 ...   (describe feature stores)", file=sys.stderr if not argv
              else sys.stdout)
        return 2 if not argv else 0
    try:
        for arg in argv:
            print(describe(arg), flush=True)
    except BrokenPipeError:  # `| head` closed the pipe: normal in a shell pipeline
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except StoreError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:]))
