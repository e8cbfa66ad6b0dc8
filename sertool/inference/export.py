"""Exported models: a checkpoint as an ONNX graph or a TorchScript module that runs without sertool.

``export_checkpoint(checkpoint, "model.onnx")`` (or ``"model.pt"``) writes the
trained network as one file with everything needed to use it inside:

- the graph: ``feats`` float32 ``(batch, frames, dim)``, features already
  normalised as ``norm`` says, every frame valid (no batch padding), to
  ``logits`` and ``probabilities`` float32 ``(batch, classes)``; batch and
  frames are dynamic. Utterance-level models take ``frames = 1``. The
  probabilities are ``softmax(logits / T)``: the checkpoint's calibrated
  temperature is baked into the graph (the ``logits`` output is untempered).
- ``sertool.json`` (ONNX: the ``metadata_props`` entry ``sertool``;
  TorchScript: the extra file ``sertool.json``): the feature extractor's
  config, labels, normalisation (mode, mean, std), model name and config,
  minimum frames, the calibration (temperature), and the SHA-256 of the checkpoint it came from.

Each export is checked before it is kept: the exported graph and the torch
model score the same random inputs (two batch sizes, two lengths), and the
largest difference in probabilities must stay under :data:`TOLERANCE`.

:func:`load_exported` reads either file back as an :class:`ExportedModel`, a
:class:`~sertool.models.checkpoint.Checkpoint` whose ``build_model()`` returns an
onnxruntime or TorchScript runner, so ``sertool predict model.onnx`` uses the
same feature, normalisation, windowing and CSV code as a checkpoint.

Not every model exports to ONNX (its registry entry's ``onnx_unsupported`` says why); all
export to TorchScript (traced). Loading a TorchScript file runs the TorchScript
program inside it, so scoring one needs ``trust_code``; an ONNX file is a
graph of standard operators run by onnxruntime, and one that names any other
operator domain, keeps weights outside its folder, or holds NaN weights is
refused (:mod:`sertool.inference.exported_file` reads and checks the file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sertool import __version__
from sertool.errors import ConfigError, ExportError, optional_import  # noqa: F401 (ExportError: re-exported)
from sertool.features import build_extractor
from sertool.inference.bundled import bundled_export
from sertool.inference.runner import WINDOW_BATCH, WindowRunner, calibrated
from sertool.io.atomic import atomic_path
from sertool.models import build_model_config, model_spec
from sertool.inference.exported_file import FORMAT, FORMAT_VERSION, is_exported, read_metadata  # noqa: F401
from sertool.models.checkpoint import Checkpoint
from sertool.models.targets import destandardise
from sertool.runtime.process import torch_threads

#: The largest |probability difference| between the export and the checkpoint's model that is accepted.
TOLERANCE = 1e-4
SUFFIXES = {".onnx": "onnx", ".pt": "torchscript"}
#: Frames of the example input the graph is traced with (about 3 s at 10 ms frames).
EXAMPLE_FRAMES = 300


def _min_frames(checkpoint: Checkpoint) -> int:
    """The fewest frames the model's traced graph takes (its registry entry's ``min_frames``)."""
    return 1 if checkpoint.is_fusion else model_spec(checkpoint.model).min_frames


def export_format(path: str | os.PathLike) -> str:
    """``onnx`` or ``torchscript`` from the output's suffix; ConfigError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: the export format comes from the suffix: use .onnx (ONNX) or .pt (TorchScript)")
    return SUFFIXES[suffix]


# --------------------------------------------------------------------------- writing
def _graph(checkpoint: Checkpoint):
    """The trained network as ``feats (B, T, D) -> (logits, softmax(logits / T))``, every frame valid."""
    import torch  # torch: heavy, loaded only when a model is exported

    class Graph(torch.nn.Module):
        def __init__(self, model, temperature: float):
            super().__init__()
            self.model, self.temperature = model, temperature

        def forward(self, feats):
            lengths = torch.full((feats.shape[0],), feats.shape[1], dtype=torch.long)
            logits = self.model(feats, lengths)
            return logits, torch.softmax(calibrated(logits, self.temperature), dim=-1)

    class RegressionGraph(torch.nn.Module):
        def __init__(self, model, mean, std):
            super().__init__()
            self.model = model
            self.register_buffer("mean", torch.from_numpy(mean))
            self.register_buffer("std", torch.from_numpy(std))

        def forward(self, feats):
            lengths = torch.full((feats.shape[0],), feats.shape[1], dtype=torch.long)
            outputs = self.model(feats, lengths)
            return outputs, destandardise(outputs, self.mean, self.std)

    if checkpoint.is_regression:  # the second output holds the predicted values (named "probabilities" too)
        return RegressionGraph(checkpoint.build_model(), *checkpoint.target_scale()).eval()
    return Graph(checkpoint.build_model(), checkpoint.temperature).eval()


def _input_frames(checkpoint: Checkpoint) -> int | None:
    """The frames a fixed-length model centre-crops or zero-pads every input to (its registry's ``fixed_frames``)."""
    config = build_model_config(checkpoint.model, checkpoint.model_config, stored=True)
    return model_spec(checkpoint.model).input_frames(config)


def _metadata(checkpoint: Checkpoint, source: Path | None, utterance_level: bool) -> dict[str, Any]:
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION, "sertool_version": __version__,
        "model": checkpoint.model, "model_config": _plain(checkpoint.model_config),
        "feature_set": checkpoint.feature_set, "feature_config": _plain(checkpoint.feature_config),
        "utterance_feature_config": _plain(checkpoint.utterance_feature_config or {}),
        "labels": list(checkpoint.labels), "norm": _plain(checkpoint.norm or {"mode": "global"}),
        "norm_mean": [float(v) for v in checkpoint.norm_mean], "norm_std": [float(v) for v in checkpoint.norm_std],
        "min_frames": 1 if utterance_level else _min_frames(checkpoint),
        "input_frames": None if utterance_level else _input_frames(checkpoint),
        "input": "feats: float32 (batch, frames, dim), features normalised as 'norm' says ((x - norm_mean) / "
                 "norm_std for mode global), every frame valid; frames = 1 for utterance-level features",
        "outputs": "logits, probabilities: float32 (batch, classes), classes in the order of 'labels'; "
                   "probabilities = softmax(logits / calibration.temperature)",
        "calibration": _plain(checkpoint.calibration or {"method": "none", "temperature": 1.0}),
        "checkpoint_sha256": _sha256(source) if source is not None else None,
        "metrics": _plain(checkpoint.metrics or {}),
        **(_regression_metadata(checkpoint) if checkpoint.is_regression else {}),
    }


def _regression_metadata(checkpoint: Checkpoint) -> dict[str, Any]:
    """The task fields of a regression model's export, and what its outputs hold."""
    return {"task": "regression", "targets": list(checkpoint.targets),
            "target_mean": [float(v) for v in checkpoint.target_mean],
            "target_std": [float(v) for v in checkpoint.target_std],
            "outputs": "logits: float32 (batch, targets), standardised; probabilities: float32 (batch, targets), the "
                       "predicted values = logits * target_std + target_mean, targets in the order of 'targets' "
                       "(a regression model: no classes, 'labels' is empty)"}


def _plain(value):
    """JSON-ready copy of a config (tuples as lists, tensors as lists)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _example_inputs(checkpoint: Checkpoint, utterance_level: bool):
    """Inputs the export is traced with and then checked on: (trace input, [check inputs])."""
    import torch  # torch: heavy, loaded only when a model is exported

    dim = len(checkpoint.norm_mean)
    generator = torch.Generator().manual_seed(0)
    frames = 1 if utterance_level else max(EXAMPLE_FRAMES, _min_frames(checkpoint))
    shapes = [(1, frames)] if utterance_level else [(1, frames), (3, frames // 2 + 7)]
    if not utterance_level:
        shapes.append((2, max(_min_frames(checkpoint), 40)))
    return (torch.randn(2, frames, dim, generator=generator),
            [torch.randn(b, t, dim, generator=generator) for b, t in shapes + [(5, frames)]])


def export_checkpoint(checkpoint, output: str | os.PathLike, *, source: str | os.PathLike | None = None) -> dict:
    """Export ``checkpoint`` (a :class:`Checkpoint` or a path) to ``output`` (.onnx or .pt), checked and atomic.

    Returns a summary: ``format``, ``path``, ``max_difference`` (largest
    |probability difference| against the torch model over the check inputs),
    ``checked_inputs`` (their shapes).
    """
    import torch  # torch: heavy, loaded only when a model is exported

    fmt = export_format(output)
    if not isinstance(checkpoint, Checkpoint):
        source = Path(checkpoint)
        checkpoint = Checkpoint.load(source)
    if checkpoint.is_fusion:
        raise ExportError(f"{source or 'checkpoint'}: a fused model is several models; export each member's "
                          "checkpoint (fold-<i>/checkpoint.pt of each run) and average their probabilities")
    reason = model_spec(checkpoint.model).onnx_unsupported
    if fmt == "onnx" and reason:
        raise ExportError(f"{source or checkpoint.model}: {checkpoint.model} cannot be exported to ONNX: "
                          f"{reason}; export it to TorchScript with -o NAME.pt")
    utterance_level = build_extractor(checkpoint.feature_config).level == "utterance"
    graph = _graph(checkpoint)
    example, checks = _example_inputs(checkpoint, utterance_level)
    metadata = _metadata(checkpoint, Path(source) if source else None, utterance_level)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with torch_threads(max(1, os.cpu_count() or 1)), atomic_path(output) as tmp:
        if fmt == "onnx":
            _write_onnx(graph, example, utterance_level, metadata, tmp)
        else:
            _write_torchscript(graph, example, metadata, tmp)
        runner = ExportRunner(fmt, tmp, threads=1, num_classes=len(checkpoint.outputs))
        difference = 0.0
        with torch.no_grad():
            for feats in checks:
                expected = graph(feats)[1].numpy()
                got = runner.batch_probabilities(feats.numpy())
                difference = max(difference, float(abs(got - expected).max()))
        if not difference <= TOLERANCE:
            raise ExportError(f"{output}: the exported {fmt} model differs from the checkpoint by {difference:.2g} "
                              f"in probability (more than {TOLERANCE:g}); nothing was written")
    return {"format": fmt, "path": str(output), "max_difference": difference,
            "checked_inputs": [list(f.shape) for f in checks]}


def _write_onnx(graph, example, utterance_level: bool, metadata: dict, path: Path) -> None:
    import torch  # torch: heavy, loaded only when a model is exported

    onnx = _import("onnx")
    _import("onnxscript")  # torch's ONNX exporter needs it

    dims = {0: torch.export.Dim("batch", min=1)}
    if not utterance_level:
        dims[1] = torch.export.Dim("frames", min=max(2, metadata["min_frames"]))
    quiet = logging.getLogger("torch.onnx")  # it logs a warning per torchvision operator it cannot register
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            program = torch.onnx.export(graph, (example,), dynamo=True, input_names=["feats"],
                                        output_names=["logits", "probabilities"],
                                        dynamic_shapes={"feats": dims}, verbose=False, report=False)
        except Exception as exc:  # torch's exporter raises many types; one line names the model
            raise ExportError(f"{metadata['model']}: ONNX export failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160]}); export to TorchScript with -o NAME.pt") from None
        finally:
            quiet.setLevel(level)
    model = program.model_proto
    entry = model.metadata_props.add()
    entry.key, entry.value = "sertool", json.dumps(metadata)
    onnx.save_model(model, str(path))


def _write_torchscript(graph, example, metadata: dict, path: Path) -> None:
    import torch  # torch: heavy, loaded only when a model is exported

    with warnings.catch_warnings(), torch.no_grad():
        # tracer warnings about Python values (the check against the checkpoint is the judge), and torch
        # 2.13's deprecation of TorchScript (kept for libtorch / C++ users; ONNX is the recommended export)
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(graph, (example,), check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={"sertool.json": json.dumps(metadata)})


# --------------------------------------------------------------------------- reading
@dataclass
class ExportedModel(Checkpoint):
    """An exported file as a checkpoint: its metadata, and ``build_model()`` giving its runner."""

    path: Path = Path()
    export_format: str = "onnx"
    min_frames: int = 1
    #: the frames the graph crops or pads every input to (a fixed-length model), else None
    input_frames: int | None = None
    #: onnxruntime intra-op threads (None: its default, one per core)
    threads: int | None = None
    #: an onnxruntime session of :attr:`path` already open (the first runner built uses it)
    session: Any = field(default=None, repr=False, compare=False)

    @property
    def temperature(self) -> float:
        """1.0: the graph's probabilities already divide its logits by the calibrated temperature."""
        return 1.0

    def build_model(self) -> ExportRunner:
        """The runner of the exported graph (a :class:`~sertool.inference.runner.WindowRunner` itself)."""
        session, self.session = self.session, None
        return ExportRunner(self.export_format, self.path, threads=self.threads, min_frames=self.min_frames,
                            num_classes=len(self.outputs), input_frames=self.input_frames, session=session)

    def code_references(self) -> list[str]:
        refs = super().code_references()
        if self.export_format == "torchscript":
            refs.append(f"torchscript {str(self.path)!r} (a TorchScript program)")
        return refs


def load_exported(path: str | os.PathLike, *, session=None) -> ExportedModel:
    """An exported .onnx or TorchScript .pt file as an :class:`ExportedModel` (no code runs until scoring).

    Parameters
    ----------
    path
        The exported file.
    session
        An onnxruntime session of a trusted ONNX file (see :func:`~sertool.inference.exported_file.read_metadata`);
        its runner reuses it.

    Raises
    ------
    ExportError
        A missing or unreadable file, foreign operator domains, external data outside its folder, NaN or
        infinite weights (ONNX), or missing or malformed sertool metadata.
    """
    path = Path(path)
    fmt, meta = read_metadata(path, session)
    frames = meta.get("input_frames")
    exported = ExportedModel(
        model=meta["model"], model_config=meta["model_config"], feature_set=meta["feature_set"],
        feature_config=meta["feature_config"], labels=list(meta["labels"]),
        norm_mean=np.asarray(meta["norm_mean"], np.float32), norm_std=np.asarray(meta["norm_std"], np.float32),
        train_config={}, state_dict={}, metrics=meta.get("metrics") or {},
        utterance_feature_config=meta.get("utterance_feature_config") or {},
        norm=meta.get("norm") or {"mode": "global"}, calibration=meta.get("calibration") or {},
        path=path, export_format=fmt, min_frames=meta.get("min_frames", 1), input_frames=frames, session=session,
        task=meta.get("task", "classification"), targets=list(meta.get("targets") or []),
        target_mean=list(meta.get("target_mean") or []), target_std=list(meta.get("target_std") or []))
    exported.source = str(path)
    return exported


def load_scoring_model(path: str | os.PathLike, device: str | None = None) -> Checkpoint:
    """A checkpoint or an exported model, whichever ``path`` is.

    Parameters
    ----------
    path
        A checkpoint, or an exported .onnx / TorchScript file.
    device
        ``"cpu"``: a bundled checkpoint with its ONNX export beside it (:func:`~sertool.inference.bundled.
        bundled_export`) loads as that export when onnxruntime is installed and the export was written from
        exactly this file: it scores the same to float rounding, without importing torch (about 1 s per
        process). Anything else: the file as it is.

    Raises
    ------
    CheckpointError, ExportError
        A missing or unreadable file.
    """
    fast = bundled_export(path) if device == "cpu" else None
    if fast is not None:
        exported = _checked_bundled_export(fast, Path(path))
        if exported is not None:
            return exported
    return load_exported(path) if is_exported(path) else Checkpoint.load(path)


def _checked_bundled_export(export: Path, checkpoint: Path) -> ExportedModel | None:
    """``export`` loaded through onnxruntime, or None when it was not written from ``checkpoint`` (stale)."""
    session = _onnx_session(export, None)
    exported = load_exported(export, session=session)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["sertool"])
    return exported if meta.get("checkpoint_sha256") == _sha256(checkpoint) else None


class ExportRunner(WindowRunner):
    """An exported graph (ONNX through onnxruntime, or TorchScript) as a :class:`WindowRunner`.

    Parameters
    ----------
    fmt
        ``"onnx"`` or ``"torchscript"``.
    path
        The exported file.
    threads
        onnxruntime intra-op threads (None: its default).
    min_frames
        The fewest frames per input the graph takes.
    num_classes
        Classes of the model (columns of the probabilities).
    input_frames
        A fixed-length model's input frames: windows are centre-cropped or zero-padded to it here, as the graph
        itself would (same result), so windows of any length share full batches.
    session
        An onnxruntime session of ``path`` already open (ONNX only).
    """

    #: exported graphs take batches without padding (every item's length is the batch's frame count)
    accepts_padding = False

    def __init__(self, fmt: str, path: Path, threads: int | None, min_frames: int = 1, num_classes: int = 0,
                 input_frames: int | None = None, session=None):
        self.format, self.path, self.min_frames, self.num_classes = fmt, Path(path), min_frames, num_classes
        self.input_frames = input_frames
        if fmt == "onnx" and session is not None and not threads:
            self._session = session
        elif fmt == "onnx":
            self._session = _onnx_session(self.path, threads)
        else:
            self._module = _torchscript_module(self.path)

    def to(self, device) -> "ExportRunner":
        """This runner, which scores on the CPU only (ExportError for another device)."""
        if str(device) != "cpu":
            raise ExportError(f"{self.path}: exported models score on the CPU here; drop --device")
        return self

    def probabilities(self, windows: list[np.ndarray], batch_size: int = WINDOW_BATCH) -> np.ndarray:
        """As :meth:`WindowRunner.probabilities`; a fixed-length model's windows are fitted to its length first."""
        if self.input_frames is not None:
            windows = [fit_length(w, self.input_frames) for w in windows]
        return super().probabilities(windows, batch_size)

    def batch_probabilities(self, batch: np.ndarray, lengths: np.ndarray | None = None) -> np.ndarray:
        """``(B, C)`` float32 probabilities of normalised ``batch`` ``(B, T, D)``, every frame valid.

        Raises
        ------
        ExportError
            Padded items (a length other than T), or fewer frames than the graph takes.
        """
        if lengths is not None and bool((lengths != batch.shape[1]).any()):
            raise ExportError(f"{self.path}: exported models take unpadded batches (every length = the frame count)")
        feats = np.ascontiguousarray(batch, dtype=np.float32)
        if feats.shape[1] < self.min_frames:
            raise ExportError(f"{self.path}: the exported model needs at least {self.min_frames} frames per input; "
                              "score shorter clips with the checkpoint")
        if self.format == "onnx":
            return self._session.run(["probabilities"], {"feats": feats})[0]
        import torch  # torch: heavy, loaded only when a model runs

        with torch.no_grad():
            return self._module(torch.from_numpy(feats))[1].numpy()


def _onnx_session(path: Path, threads: int | None):
    """An onnxruntime CPU session of ``path``; ExportError (one line) when onnxruntime cannot load it."""
    ort = _import("onnxruntime")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a graph it cannot load
        raise ExportError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0][:160]}); export the model "
                          "again") from None


def _torchscript_module(path: Path):
    """The TorchScript program in ``path`` (runs its code: only after ``trust_code``), its weights checked finite."""
    import torch  # torch: heavy, loaded only when a model runs

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
            module = torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:  # TorchScript raises RuntimeError and others for a damaged archive
        raise ExportError(f"{path}: not a loadable TorchScript model ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); export it again") from None
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise ExportError(f"{path}: weight {name!r} holds NaN or infinite values: the file is damaged; export "
                              "the model again")
    return module


def fit_length(window: np.ndarray, frames: int) -> np.ndarray:
    """``window`` ``(T, D)`` centre-cropped (its middle ``frames``) or zero-padded at the end to ``(frames, D)``.

    The numpy twin of :func:`sertool.models.common.fix_length` for one unpadded item: crop start
    ``(T - frames) // 2``, zeros after the last frame.
    """
    total = window.shape[0]
    if total >= frames:
        start = (total - frames) // 2
        return window[start:start + frames]
    out = np.zeros((frames, window.shape[1]), window.dtype)
    out[:total] = window
    return out


def _import(module: str):
    return optional_import(module, "export", "export", ExportError)
