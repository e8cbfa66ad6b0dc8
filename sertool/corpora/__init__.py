"""Corpus preparers: corpus folder -> list of :class:`~sertool.manifest.Utterance`.

Each module documents its corpus layout and label codes and exposes
``LABELS`` and ``prepare(corpus_dir, *, report, **options)``. ``PREPARERS``
maps the CLI name to the module.
"""

from __future__ import annotations

from sertool.corpora import emodb, folder, iemocap, ravdess

PREPARERS = {
    "ravdess": ravdess,
    "emodb": emodb,
    "iemocap": iemocap,
    "folder": folder,
}
