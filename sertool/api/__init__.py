"""The public Python API: one call per ``sertool`` command, re-exported lazily by :mod:`sertool`.

Each function takes its data positionally and everything else by keyword
(``sertool.train(manifest, store, model="svm", output="runs/svm")``), does
what the command of the same name does, returns a result object instead of
printing, and raises :class:`~sertool.errors.SertoolError` subclasses only
(each function's ``Raises`` section names the kinds). Thread counts, BLAS
pools and the matplotlib backend are as they were when the call returns.

One name per concept, as on the command line: ``features`` (a preset),
``output`` (what is written), ``settings`` (config values) and ``config`` (a
TOML file of them), ``window``/``hop`` (seconds), ``jobs`` (processes),
``device``, ``log`` (a callable that gets progress lines).

Modules: :mod:`~sertool.api.data` (corpora, features, stores, registries),
:mod:`~sertool.api.runs` (training and scoring runs), :mod:`~sertool.api.inference`
(models on audio), :mod:`~sertool.api.reports` (report pages and timeline pictures) and
:mod:`~sertool.api.results` (result types). None imports numpy, torch or HDF5 at its top:
the command line imports this package for ``--help``.
"""

from sertool.api.data import (augment, corpus_names, extract, feature_config, feature_names, feature_presets,
                              model_names, prepare, store_describe, store_merge)
from sertool.api.inference import export, predict, predict_files, stream
from sertool.api.reports import report, timeline
from sertool.api.results import Comparison, ExportResult, MergeResult, StoreDescription, TrainSetup
from sertool.api.runs import compare, crosscorpus, evaluate, fuse, train, train_setup

__all__ = ["prepare", "extract", "augment", "train", "evaluate", "predict", "predict_files", "stream", "export",
           "fuse", "compare", "crosscorpus", "store_describe", "store_merge", "report", "timeline", "feature_config",
           "train_setup", "model_names", "feature_names", "feature_presets", "corpus_names", "Comparison",
           "ExportResult", "MergeResult", "StoreDescription", "TrainSetup"]

#: The calls behind the commands, one each (``store_describe``/``store_merge``: ``sertool store describe``/``merge``).
COMMANDS = tuple(__all__[:16])
