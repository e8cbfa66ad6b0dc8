"""Checkpoint: everything ``evaluate`` and ``predict`` need to rebuild the pipeline.

One ``torch.save`` file holding only tensors, numbers, strings, lists and
dicts, so it loads with ``torch.load(..., weights_only=True)`` (no pickled
code runs). Fields: ``format``, ``format_version``, ``model`` (name),
``model_config`` (dict), ``feature_set``, ``feature_config`` (dict with type
tag), ``labels`` (list), ``norm_mean`` / ``norm_std`` (float32 tensors of the
feature dim, fit on training data), ``train_config`` (dict), ``metrics``
(dict), ``state_dict``, ``sertool_version``, and optionally
``utterance_feature_config`` (features appended to every frame) and
``norm`` (the normalisation mode; identity ``norm_mean``/``norm_std`` unless
it is ``global``) and ``calibration`` (the softmax temperature fitted on the
fold's validation speakers, :mod:`sertool.training.calibration`; absent in
older checkpoints, which score with ``T = 1``).
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sertool import __version__
from sertool.errors import CheckpointError  # defined in sertool.errors, importable here too
from sertool.io.atomic import atomic_path
from sertool.models.registry import build_model

FORMAT = "sertool-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "model", "model_config", "feature_set", "feature_config", "labels",
            "norm_mean", "norm_std", "train_config", "metrics", "state_dict")


FUSION = "fusion"


@dataclass
class Checkpoint:
    model: str
    model_config: dict[str, Any]
    feature_set: str
    feature_config: dict[str, Any]
    labels: list[str]
    norm_mean: Any  # torch.Tensor (D,)
    norm_std: Any  # torch.Tensor (D,)
    train_config: dict[str, Any]
    state_dict: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    #: utterance-level features appended to every frame (``train --utterance-store``); empty when none
    utterance_feature_config: dict[str, Any] = field(default_factory=dict)
    #: normalisation strategy (:mod:`sertool.features.normalise`): ``{"mode": "global" | "speaker" | "utterance", ...}``
    norm: dict[str, Any] = field(default_factory=lambda: {"mode": "global"})
    #: a fused model (``model == "fusion"``): member checkpoint payloads, and ``model_config["weights"]``
    members: list[dict[str, Any]] = field(default_factory=list)
    #: temperature scaling (:mod:`sertool.training.calibration`): ``{"method", "temperature", valid NLL/ECE ...}``
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def temperature(self) -> float:
        """The softmax temperature ``T`` scores use (``softmax(logits / T)``); 1.0 without a calibration."""
        return float((self.calibration or {}).get("temperature", 1.0))

    @property
    def is_fusion(self) -> bool:
        """Whether this checkpoint is a late fusion of member checkpoints (``sertool fuse``)."""
        return self.model == FUSION

    def member_checkpoints(self) -> list["Checkpoint"]:
        """The members of a fused checkpoint, validated like files."""
        return [Checkpoint.from_payload(m, where=f"member {k}") for k, m in enumerate(self.members)]

    def payload(self) -> dict[str, Any]:
        """The plain dict :meth:`save` writes (tensors, numbers, strings, lists, dicts only)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "sertool_version": __version__,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def code_references(self) -> list[str]:
        """What scoring with this checkpoint would import or load as code (its members' too).

        Feature configs of type ``embedding`` with provider ``python`` name a
        function to import; ``torchscript`` and ``onnx`` name model files whose
        loading runs the code inside them.
        """
        refs = []
        for config in (self.feature_config, self.utterance_feature_config):
            config = config or {}
            if config.get("type") == "embedding" and config.get("provider") in ("python", "torchscript", "onnx"):
                refs.append(f"{config['provider']} {config.get('path', '')!r}")
        for k, member in enumerate(self.members):
            refs += [f"member {k}: {r}" for r in Checkpoint.from_payload(member, where=f"member {k}").code_references()]
        return refs

    def check_no_code(self, where, *, trust_code: bool = False) -> None:
        """CheckpointError unless the checkpoint names no code, or ``trust_code`` was given."""
        refs = self.code_references()
        if refs and not trust_code:
            raise CheckpointError(f"{where}: scoring would import or load code named by the checkpoint "
                                  f"({'; '.join(refs)}); pass --trust-code (trust_code=True) only if you trust "
                                  "where it came from")

    @property
    def norm_mode(self) -> str:
        """``global``, ``speaker`` or ``utterance``."""
        return str((self.norm or {}).get("mode", "global"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename), so a kill never leaves half a checkpoint."""
        import torch  # torch: heavy, loaded only when a checkpoint is written

        path = Path(path)
        with atomic_path(path) as tmp:
            torch.save(self.payload(), tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Checkpoint":
        """Load and validate; never executes code from the file."""
        import torch  # torch: heavy, loaded only when a checkpoint is read

        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: checkpoint not found; train one with `sertool train`")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(f"{path}: refused to load (it holds objects other than tensors and plain data: "
                                  f"{str(exc).splitlines()[0][:120]}); use a checkpoint written by sertool") from None
        except Exception as exc:
            raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}); use a checkpoint "
                                  "written by `sertool train`") from None
        return cls.from_payload(data, where=str(path))

    @classmethod
    def from_payload(cls, data, *, where: str) -> "Checkpoint":
        """A checkpoint from a loaded payload dict; CheckpointError (naming ``where``) for a bad one."""
        path = where
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a sertool checkpoint (no format field)")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(f"{path}: checkpoint format {data['format_version']} is newer than this sertool; upgrade")
        missing = [k for k in REQUIRED if k not in data]
        if missing:
            raise CheckpointError(f"{path}: checkpoint lacks field(s) {', '.join(missing)}; retrain or re-save it")
        if not isinstance(data["labels"], list) or not data["labels"]:
            raise CheckpointError(f"{path}: checkpoint field 'labels' must be a non-empty list")
        from sertool.features.normalise import NORM_MODES  # numpy: heavy, loaded only when a checkpoint is read

        mode = (data.get("norm") or {}).get("mode", "global") if isinstance(data.get("norm", {}), dict) else None
        if mode not in NORM_MODES:
            raise CheckpointError(f"{path}: checkpoint field 'norm' names no known mode ({', '.join(NORM_MODES)})")
        import torch  # torch: heavy, loaded only when a checkpoint is read

        mean, std = data["norm_mean"], data["norm_std"]
        if not (isinstance(mean, torch.Tensor) and isinstance(std, torch.Tensor) and mean.ndim == std.ndim == 1
                and mean.shape == std.shape):
            raise CheckpointError(f"{path}: norm_mean and norm_std must be 1-D tensors of one size (the feature "
                                  "dimension); retrain or re-save the checkpoint")
        calibration = data.get("calibration") or {}
        temperature = calibration.get("temperature", 1.0) if isinstance(calibration, dict) else None
        if not (isinstance(temperature, (int, float)) and 0 < temperature < float("inf")):
            raise CheckpointError(f"{path}: checkpoint field 'calibration' holds temperature {temperature!r}, not a "
                                  "positive number; retrain the fold or re-save the checkpoint")
        if data["model"] == FUSION and not data.get("members"):
            raise CheckpointError(f"{path}: fused checkpoint without members; rerun `sertool fuse`")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def build_model(self):
        """The model with its trained weights, in eval mode."""
        if self.is_fusion:
            raise CheckpointError("a fused checkpoint has no single model; score it with sertool.predict or evaluate")
        model = build_model(self.model, self.model_config, input_dim=len(self.norm_mean), num_classes=len(self.labels),
                            stored=True)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"weights do not fit model {self.model!r}: {str(exc).splitlines()[0]}") from None
        from sertool.models.common import fast_layout  # torch: heavy, loaded only when a model is built

        return fast_layout(model).eval()
