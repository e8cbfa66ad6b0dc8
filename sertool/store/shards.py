"""Shards: partial stores written by ``sertool extract --shard K/N`` jobs, and merging stores into one."""

from __future__ import annotations

import os
from pathlib import Path

from sertool.errors import ConfigError, StoreError
from sertool.store.identity import SourceIdentity
from sertool.store.reader import FeatureStore
from sertool.store.writer import StoreWriter


def shard_path(store: str | os.PathLike, index: int, count: int) -> Path:
    """The partial store of one shard of ``store``.

    Parameters
    ----------
    store
        The full store's path, e.g. ``m.mfcc-1234abcd.h5``.
    index, count
        Shard ``index`` (0-based) of ``count``.

    Returns
    -------
    Path
        Beside ``store``: ``m.mfcc-1234abcd.shard-0-of-4.h5``.
    """
    store = Path(store)
    return store.with_name(f"{store.stem}.shard-{index}-of-{count}.h5")


def shard_paths(store: str | os.PathLike) -> list[Path]:
    """The shard files of ``store`` that exist in its folder (any shard count).

    Parameters
    ----------
    store
        The full store's path.

    Returns
    -------
    list of Path
        Sorted by name; empty when there are none.
    """
    store = Path(store)
    return sorted(store.parent.glob(f"{store.stem}.shard-*-of-*.h5"))


def parse_shard(text: str) -> tuple[int, int]:
    """Parse a ``--shard`` value.

    Parameters
    ----------
    text
        ``"K/N"`` with 0 <= K < N, e.g. ``"0/4"``.

    Returns
    -------
    tuple of int
        ``(K, N)``.

    Raises
    ------
    ConfigError
        Not two integers separated by ``/``, or K outside 0 ... N-1.
    """
    try:
        index, count = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r} must be K/N, e.g. 0/4 (shards are numbered from 0)") from None
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--shard {text!r}: K must be 0 ... N-1 (shards are numbered from 0)")
    return index, count


def merge_stores(sources: list, writer: StoreWriter, wanted: dict[str, SourceIdentity] | None = None) -> int:
    """Copy the entries of stores ``sources`` into ``writer``.

    Arrays are copied as stored, so the result is equal, entry by entry, to a
    store written in one run.

    Parameters
    ----------
    sources
        Store paths, all of the writer's feature config.
    writer
        The open writer of the target store.
    wanted
        id -> identity of the audio as it is now: only entries the writer
        still needs whose recorded identity equals the current one are copied
        (a shard computed from an older version of a file is ignored).
        None copies every entry.

    Returns
    -------
    int
        How many entries were copied.

    Raises
    ------
    StoreError
        A source is missing, unreadable, or of another feature config.
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


def merge_files(stores: list, output: str | os.PathLike) -> int:
    """Merge stores of one feature config (e.g. ``--shard`` outputs) into one store.

    Parameters
    ----------
    stores
        Store paths; the first one's attributes become the output's.
    output
        The store to write: created, or added to when it exists (same config).

    Returns
    -------
    int
        The number of entries written to ``output``.

    Raises
    ------
    StoreError
        No stores given, a store unreadable, configs that differ, an id that two
        of the stores hold for different audio (nothing is written then), or an
        output that cannot be written.
    """
    if not stores:
        raise StoreError("no stores to merge")
    _check_no_clash(stores)
    with FeatureStore(stores[0]) as first:
        attrs = {k: v for k, v in first.attrs.items() if k not in ("format", "format_version", "sertool_version")}
    with StoreWriter(output, attrs) as writer:
        return merge_stores(stores, writer)


def _check_no_clash(stores: list) -> None:
    """StoreError when two of ``stores`` hold one id for different audio (e.g. two manifests of one name).

    The same id for the same audio (size and mtime), as overlapping shards hold, is fine.
    """
    seen: dict[str, tuple[SourceIdentity, str]] = {}
    for source in stores:
        with FeatureStore(source) as store:
            index = store.index()
        for utt_id, identity in index.items():
            earlier = seen.setdefault(utt_id, (identity, str(source)))
            if earlier[0] != identity:
                raise StoreError(f"{source} and {earlier[1]} both hold id {utt_id!r}, for different audio "
                                 f"({identity.path or '?'} and {earlier[0].path or '?'}); merging them would keep "
                                 "one and drop the other: merge stores whose ids differ (rename the ids in one "
                                 "manifest and extract it again)")
