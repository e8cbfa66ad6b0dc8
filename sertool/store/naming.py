"""Which store in an output folder belongs to which manifest.

A store is named after its manifest's file name, ``<stem>.<feature set>-<hash8>.h5``,
so two manifests of one name in different folders (``a/m.csv``, ``b/m.csv``)
extracted into one folder would share a store, and replace each other's
entries (same ids, other audio). A store records the manifest it was made from
(root attribute ``manifest``, its absolute path); when the plain name is held by
another manifest that still exists, the second manifest's store is
``<stem>-<tag>.<feature set>-<hash8>.h5``, ``tag`` being 6 hex digits of the
sha256 of its absolute path (:func:`sertool.store.identity.manifest_tag`). A
store whose recorded manifest no longer exists is taken over (the manifest was
moved or renamed): its entries are checked by the audio's size and mtime as
usual.
"""

from __future__ import annotations

import os
from pathlib import Path

from sertool.store.identity import store_path
from sertool.store.layout import h5py_module
from sertool.store.shards import shard_paths


def owned_store_path(out_dir: str | os.PathLike, manifest: str | os.PathLike, feature_set: str,
                     config_hash: str) -> tuple[Path, str | None]:
    """The store of ``manifest``'s features in ``out_dir``, and a note when it is not the plain name.

    Parameters
    ----------
    out_dir
        The output folder.
    manifest
        The manifest's path.
    feature_set, config_hash
        As :func:`sertool.store.identity.store_path`.

    Returns
    -------
    tuple
        ``(path, note)``: the plain name when it is free or this manifest's; else the tagged name, with a
        one-line note saying which manifest holds the plain name (None for the plain name).
    """
    plain = store_path(out_dir, manifest, feature_set, config_hash)
    tagged = store_path(out_dir, manifest, feature_set, config_hash, tagged=True)
    owner = None if _exists(tagged) else _foreign_owner(plain, Path(manifest))
    if not _exists(tagged) and owner is None:
        return plain, None
    holder = f" (made from {owner})" if owner else ""
    return tagged, (f"{plain.name} in {plain.parent} belongs to another manifest named {Path(manifest).name}"
                    f"{holder}; the features of {manifest} are in {tagged.name}")


def recorded_manifest(store: Path) -> str | None:
    """The ``manifest`` attribute of ``store`` (or of its first shard), or None when none can be read."""
    for path in [store, *shard_paths(store)]:
        if not path.is_file():
            continue
        try:
            with h5py_module().File(path, "r") as h5:
                value = h5.attrs.get("manifest")
        except (OSError, ValueError):
            continue  # not HDF5: opening it for writing reports that
        return value.decode() if isinstance(value, bytes) else (str(value) if value is not None else None)
    return None


def _exists(store: Path) -> bool:
    """``store`` or one of its ``--shard`` stores exists."""
    return store.exists() or bool(shard_paths(store))


def _foreign_owner(plain: Path, manifest: Path) -> str | None:
    """The manifest recorded in ``plain`` when it is another manifest that still exists, else None."""
    owner = recorded_manifest(plain)
    if not owner or owner == str(manifest.resolve()):
        return None
    try:
        if not Path(owner).exists() or os.path.samefile(owner, manifest):
            return None  # moved or renamed since (or the same file by another path): this manifest's store
    except OSError:
        return None
    return owner
