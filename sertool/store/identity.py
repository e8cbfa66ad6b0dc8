"""What identifies a stored entry's audio, and where a store lives.

Light: no numpy, no HDF5, so the up-to-date check of ``sertool extract`` can use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


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
        """The identity of the file at ``path`` as it is now.

        Raises
        ------
        OSError
            The file cannot be stat'ed.
        """
        st = os.stat(path)
        return cls(int(st.st_size), int(st.st_mtime_ns), str(path))


def manifest_tag(manifest: str | os.PathLike) -> str:
    """6 hex digits of the sha256 of the manifest's absolute path: tells apart manifests of one file name."""
    return hashlib.sha256(str(Path(manifest).resolve()).encode("utf-8", "surrogateescape")).hexdigest()[:6]


def store_path(out_dir: str | os.PathLike, manifest: str | os.PathLike, feature_set: str, config_hash: str,
               *, tagged: bool = False) -> Path:
    """Where the store of a (manifest, feature config) lives.

    Parameters
    ----------
    out_dir
        The output folder.
    manifest
        The manifest's path (its stem names the store; with ``tagged``, its absolute path too).
    feature_set
        The preset name, e.g. ``mfcc``.
    config_hash
        The feature config's sha256 hex digest.
    tagged
        The name of a manifest whose plain name is taken in ``out_dir`` by another manifest of the same
        file name (see :mod:`sertool.store.naming`).

    Returns
    -------
    Path
        ``<out_dir>/<manifest stem>.<feature set>-<first 8 hex digits of the config hash>.h5``; tagged:
        ``<out_dir>/<manifest stem>-<manifest_tag>.<feature set>-<hash8>.h5``.
    """
    stem = f"{Path(manifest).stem}-{manifest_tag(manifest)}" if tagged else Path(manifest).stem
    return Path(out_dir) / f"{stem}.{feature_set}-{config_hash[:8]}.h5"
