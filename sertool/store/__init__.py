"""The HDF5 feature store: one file per (manifest, feature config), one writer, shards that merge.

Modules: :mod:`~sertool.store.identity` (what identifies an entry's audio, the
store's file name; light), :mod:`~sertool.store.layout` (the HDF5 layout),
:mod:`~sertool.store.reader` (:class:`FeatureStore`), :mod:`~sertool.store.writer`
(:class:`StoreWriter`), :mod:`~sertool.store.shards` (``--shard`` partial stores,
merging) and :mod:`~sertool.store.describe` (a text summary).

Layer 2: imports :mod:`sertool.io` and below.
"""
