"""What identifies a stored entry's audio, and where a store lives.

Light: no numpy, no HDF5, so the up-to-date check of ``sertool extract`` can use it.
"""

from __future__ import annotations

import dataclasses
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


def store_path(out_dir: str | os.PathLike, manifest: str | os.PathLike, feature_set: str, config_hash: str) -> Path:
    """Where the store of a (manifest, feature config) lives.

    Parameters
    ----------
    out_dir
        The output folder.
    manifest
        The manifest's path (only its stem is used).
    feature_set
        The preset name, e.g. ``mfcc``.
    config_hash
        The feature config's sha256 hex digest.

    Returns
    -------
    Path
        ``<out_dir>/<manifest stem>.<feature set>-<first 8 hex digits of the config hash>.h5``.
    """
    return Path(out_dir) / f"{Path(manifest).stem}.{feature_set}-{config_hash[:8]}.h5"
