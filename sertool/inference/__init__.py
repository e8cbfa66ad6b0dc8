"""The scoring engine: feature sources, window planning, model runners, normalisation and CSV rows.

Layer 5: imports models, extraction, features, store, io, runtime. Modules, low to high:

- :mod:`~sertool.inference.windows`: the one (pure) window planner;
- :mod:`~sertool.inference.runner`: model runners (``probabilities(windows) -> (N, C)``) and the fusion weighting;
- :mod:`~sertool.inference.sources`: audio -> raw features (files, long files, clips, live streams, VAD regions);
- :mod:`~sertool.inference.rows`: the row layout of predictions.csv and resume;
- :mod:`~sertool.inference.export`: ONNX / TorchScript export and their runner;
- :mod:`~sertool.inference.engine`: :class:`~sertool.inference.engine.Scorer`, the four composed;
- :mod:`~sertool.inference.bundled`, :mod:`~sertool.inference.inputs`, :mod:`~sertool.inference.groups`,
  :mod:`~sertool.inference.prefetch`: bundled models, input discovery, speaker groups, feature workers;
- :mod:`~sertool.inference.predict` (files -> CSV), :mod:`~sertool.inference.memory` (``predict_audio``),
  :mod:`~sertool.inference.stream` (a live stream -> CSV).
"""
