"""Former home of the store's classes, kept so ``from sertool.store.core import X`` still works.

New code imports from the modules themselves: :mod:`~sertool.store.identity`,
:mod:`~sertool.store.reader`, :mod:`~sertool.store.writer`,
:mod:`~sertool.store.shards` and :mod:`~sertool.store.describe`.
"""

from __future__ import annotations

from sertool.store.describe import describe
from sertool.store.identity import SourceIdentity, store_path
from sertool.store.layout import FORMAT, FORMAT_VERSION
from sertool.store.reader import FeatureStore
from sertool.store.shards import merge_files, merge_stores, parse_shard, shard_path, shard_paths
from sertool.store.writer import RESERVE_BYTES, StoreWriter

__all__ = ["FORMAT", "FORMAT_VERSION", "RESERVE_BYTES", "FeatureStore", "SourceIdentity", "StoreWriter", "describe",
           "merge_files", "merge_stores", "parse_shard", "shard_path", "shard_paths", "store_path"]
