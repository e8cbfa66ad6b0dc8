"""sertool: speech emotion recognition from the command line and from Python.

The package is a small library with a thin Click shell (:mod:`sertool.cli`).
``import sertool`` is cheap: the names below are loaded on first use
(heavy dependencies such as numpy, h5py, librosa and torch come with them).

One call per command (:mod:`sertool.api`): :func:`prepare`, :func:`extract`,
:func:`augment`, :func:`train`, :func:`evaluate`, :func:`predict` (in
memory), :func:`predict_files` (into CSV), :func:`stream` (a live stream),
:func:`export`, :func:`fuse`, :func:`compare`, :func:`crosscorpus`, :func:`store_describe`,
:func:`store_merge`, :func:`report` (an HTML page of evaluated runs), :func:`timeline` (a picture of
``predict --segments`` output); the configs they would use, :func:`feature_config` and
:func:`train_setup`; the registries :func:`model_names`, :func:`feature_names`,
:func:`feature_presets`, :func:`corpus_names`. Their result types, and
:func:`load_audio`, :class:`FeatureStore`, :class:`Checkpoint`,
:class:`SertoolError` and its subclasses, are exported too.
"""

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS = {
    **{name: "sertool.api" for name in (
        "prepare", "extract", "augment", "train", "evaluate", "predict", "predict_files", "stream", "export",
        "fuse", "compare", "crosscorpus", "store_describe", "store_merge", "report", "timeline", "feature_config",
        "train_setup", "model_names", "feature_names", "feature_presets", "corpus_names")},
    # result types of the calls above
    "PrepareResult": "sertool.corpora",
    "ExtractResult": "sertool.extraction.pipeline",
    "RunReport": "sertool.io.report",
    "FoldResult": "sertool.training.trainer",
    "EvaluationResult": "sertool.scoring.evaluate",
    "FusionResult": "sertool.scoring.fuse",
    "CrossCorpusResult": "sertool.scoring.crosscorpus",
    "Predictions": "sertool.inference.predict",
    "StreamResult": "sertool.inference.stream",
    "ReportResult": "sertool.scoring.html_report",
    "TimelineResult": "sertool.scoring.timeline",
    **{name: "sertool.api.results" for name in (
        "Comparison", "ExportResult", "MergeResult", "StoreDescription", "TrainSetup")},
    # building blocks
    "load_audio": "sertool.io.audio",
    "FeatureStore": "sertool.store.reader",
    "Checkpoint": "sertool.models.checkpoint",
    **{name: "sertool.errors" for name in (
        "SertoolError", "ConfigError", "CorpusError", "ManifestError", "AudioError", "FeatureError", "StoreError",
        "CheckpointError", "ExportError", "UntrustedCodeError")},
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    """Load a public name on first use (PEP 562) and cache it on the package."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sertool' has no attribute {name!r}")
    import importlib  # lazy name lookup (PEP 562): `import sertool` loads no submodule until a name is used

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
