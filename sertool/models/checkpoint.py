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
import numbers
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sertool import __version__
from sertool.errors import CheckpointError, ConfigError  # CheckpointError: defined in sertool.errors, importable here
from sertool.features.base import EXTRACTORS
from sertool.features.normalise import NORM_MODES
from sertool.features.trust import named_code, named_folders, require_trust
from sertool.io.atomic import atomic_path
from sertool.models.registry import MODELS, build_model
from sertool.models.targets import as_array, check_task, labels_rule, output_names

FORMAT = "sertool-checkpoint"
FORMAT_VERSION = 1
REQUIRED = ("format", "format_version", "model", "model_config", "feature_set", "feature_config", "labels",
            "norm_mean", "norm_std", "train_config", "metrics", "state_dict")


FUSION = "fusion"


@dataclass
class Checkpoint:
    """A loaded (or new) checkpoint; :attr:`source` names it in messages (its path once loaded)."""

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
    #: ``classification`` (absent in older checkpoints) or ``regression`` (:mod:`sertool.models.targets`)
    task: str = "classification"
    #: regression: the manifest columns predicted, and their training mean and std (one number per target)
    targets: list[str] = field(default_factory=list)
    target_mean: list[float] = field(default_factory=list)
    target_std: list[float] = field(default_factory=list)
    #: what messages call this checkpoint: its file once loaded (not a field: never saved)
    source = "checkpoint"

    @property
    def is_regression(self) -> bool:
        """Whether the model predicts values of :attr:`targets` instead of class probabilities."""
        return self.task == "regression"

    @property
    def outputs(self) -> list[str]:
        """The names of the model's outputs: :attr:`labels`, or :class:`~sertool.models.targets.Targets`."""
        return output_names(self.labels, self.task, self.targets)

    def target_scale(self):
        """``(mean, std)`` float32 arrays (K,) mapping a regression network's output back to the targets."""
        return as_array(self.target_mean), as_array(self.target_std)

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
        return [Checkpoint.from_payload(m, where=f"{self.source}, member {k}") for k, m in enumerate(self.members)]

    def payload(self) -> dict[str, Any]:
        """The plain dict :meth:`save` writes (tensors, numbers, strings, lists, dicts only)."""
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "sertool_version": __version__,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)}}

    def code_references(self) -> list[str]:
        """What scoring with this checkpoint would import or load from outside it (its members' too).

        Feature configs of type ``embedding`` with provider ``python`` name a
        function to import; ``torchscript`` and ``onnx`` name model files whose
        loading runs the code inside them; ``ssl`` names a Hugging Face model
        folder (:mod:`sertool.features.trust`).
        """
        refs = []
        for config in (self.feature_config, self.utterance_feature_config):
            refs += named_code(config or {}) + named_folders(config or {})
        for k, member in enumerate(self.member_checkpoints()):
            refs += [f"member {k}: {r}" for r in member.code_references()]
        return refs

    def check_no_code(self, where, *, trust_code: bool = False) -> None:
        """UntrustedCodeError unless the checkpoint names no code or model folder, or ``trust_code`` was given."""
        require_trust(self.code_references(), str(where), trust_code=trust_code)

    def check_scores(self, probabilities):
        """``probabilities`` (numpy ``(N, C)``) unchanged; CheckpointError naming :attr:`source` if any is not finite.

        Finite weights can still overflow (huge weights, a tiny temperature): such scores are refused, not written
        (the model is broken, so scoring stops; rows already written stay).
        """
        if not np.isfinite(probabilities).all():
            raise CheckpointError(f"{self.source}: the model gave NaN or infinite probabilities (its weights or "
                                  "calibration overflow on this input); retrain the model or use another checkpoint")
        return probabilities

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
        """A checkpoint from a loaded payload dict; CheckpointError (naming ``where``) for a bad one.

        Every field sertool reads is checked here (:func:`check_payload`), members of a fused checkpoint too.
        """
        check_payload(data, where)
        checkpoint = cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
        checkpoint.source = str(where)
        return checkpoint

    def build_model(self):
        """The model with its trained weights, in eval mode."""
        if self.is_fusion:
            raise CheckpointError("a fused checkpoint has no single model; score it with sertool.predict or evaluate")
        try:
            model = build_model(self.model, self.model_config, input_dim=len(self.norm_mean),
                                num_classes=len(self.outputs), stored=True)
        except ConfigError as exc:
            raise CheckpointError(f"{self.source}: its model config does not build model {self.model!r} ({exc}); "
                                  "retrain or re-save the checkpoint") from None
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as exc:
            raise CheckpointError(f"{self.source}: weights do not fit model {self.model!r}: "
                                  f"{str(exc).splitlines()[0]}") from None
        from sertool.models.common import fast_layout  # torch: heavy, loaded only when a model is built

        return fast_layout(model).eval()


# --------------------------------------------------------------------------- the schema
def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value)


def _is_table(value) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) for k in value)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def is_label_list(value) -> bool:
    """Whether ``value`` is a non-empty list of distinct non-empty strings (a model's classes)."""
    return (isinstance(value, list) and bool(value) and all(_is_text(v) for v in value)
            and len(set(value)) == len(value))


def _is_vector(value) -> bool:
    return (hasattr(value, "is_floating_point") and getattr(value, "ndim", None) == 1
            and value.is_floating_point())


def _is_weights(value) -> bool:
    return _is_table(value) and all(hasattr(v, "is_floating_point") for v in value.values())


def is_norm(value) -> bool:
    """Whether ``value`` is a checkpoint's ``norm``: a dict with a known ``mode`` (and ``sets`` of mean/std lists)."""
    if not (_is_table(value) and value.get("mode", "global") in NORM_MODES):
        return False
    sets = value.get("sets", {})
    return _is_table(sets) and all(isinstance(pair, (list, tuple)) and len(pair) == 2 and
                                   all(isinstance(v, list) and all(map(_is_number, v)) for v in pair)
                                   for pair in sets.values())


def is_calibration(value) -> bool:
    """Whether ``value`` is a checkpoint's ``calibration``: a dict whose ``temperature`` is a positive finite number."""
    temperature = value.get("temperature", 1.0) if _is_table(value) else None
    return _is_number(temperature) and 0 < temperature < float("inf")


#: Optional fields that may also be None (read as empty).
OPTIONAL = ("metrics", "utterance_feature_config", "norm", "calibration", "members", "sertool_version",
            "input_frames", "checkpoint_sha256")
#: Every field sertool reads from a checkpoint: name -> (check, what it must be). Absent optional fields are fine.
SCHEMA = {
    "format_version": (_is_count, "a whole number >= 1"),
    "model": (_is_text, "a model name"),
    "model_config": (_is_table, "a table of model settings"),
    "feature_set": (_is_text, "a feature set name"),
    "feature_config": (_is_table, "a table of feature settings"),
    "labels": (is_label_list, "a non-empty list of distinct label names"),
    "norm_mean": (_is_vector, "a 1-D float tensor"),
    "norm_std": (_is_vector, "a 1-D float tensor"),
    "train_config": (_is_table, "a table"),
    "metrics": (_is_table, "a table"),
    "state_dict": (_is_weights, "a table of tensors"),
    "utterance_feature_config": (_is_table, "a table of feature settings"),
    "norm": (is_norm, f"a table with mode {' / '.join(NORM_MODES)} (and sets of [mean, std] lists)"),
    "calibration": (is_calibration, "a table whose temperature is a positive number"),
    "members": (lambda v: isinstance(v, list) and all(isinstance(m, dict) for m in v), "a list of checkpoints"),
    "sertool_version": (lambda v: isinstance(v, str), "a version string"),
}


def _shown(value) -> str:
    """A short description of a bad value for a message."""
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


def check_fields(data: dict, schema: dict, where: str, error=CheckpointError, what: str = "checkpoint field") -> None:
    """``error`` naming ``where`` and the first field of ``data`` that fails its ``schema`` check.

    Parameters
    ----------
    data
        The loaded fields.
    schema
        Field -> (check, what it must be); fields absent from ``data`` are not checked.
    where
        The file, for the message.
    error, what
        The error type, and how the message calls a field (``"checkpoint field"``, ``"export metadata"``).
    """
    for name, (check, must) in schema.items():
        if name in data and not (check(data[name]) or (data[name] is None and name in OPTIONAL)):
            raise error(f"{where}: {what} {name!r} must be {must}, not {_shown(data[name])}; the file is damaged "
                        "or not written by sertool: retrain or re-save it")


def check_payload(data, where: str) -> None:
    """CheckpointError naming ``where`` for anything sertool would misread in a checkpoint payload.

    Checks the format, the required fields, every field's type (:data:`SCHEMA`), that
    ``norm_mean`` / ``norm_std`` (and the ``set`` statistics) are finite, of one size, ``std > 0``,
    that every weight is finite, and the members of a fused checkpoint (recursively).
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a sertool checkpoint (no format field)")
    check_fields(data, {"format_version": SCHEMA["format_version"]}, where)
    if data.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{where}: checkpoint format {data['format_version']} is newer than this sertool; upgrade")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise CheckpointError(f"{where}: checkpoint lacks field(s) {', '.join(missing)}; retrain or re-save it")
    check_task(data, where)
    check_fields(data, {**SCHEMA, "labels": labels_rule(data, SCHEMA["labels"])}, where)
    _check_names(data, where)
    check_statistics(data["norm_mean"], data["norm_std"], data.get("norm"), where)
    _check_weights(data["state_dict"], where)
    if data["model"] == FUSION:
        _check_members(data, where)


def check_statistics(mean, std, norm, where: str, error=CheckpointError) -> None:
    """``error`` naming ``where`` unless the normalisation statistics are finite, of one size, with ``std > 0``.

    Parameters
    ----------
    mean, std
        ``norm_mean`` and ``norm_std``: 1-D tensors, arrays or lists of numbers.
    norm
        The ``norm`` field (its ``sets`` statistics, if any, are checked the same way), or None.
    where, error
        The file, and the error type, for the message.
    """
    mean, std = _floats(mean), _floats(std)
    stats = [(mean, std)] + [(_floats(m), _floats(s)) for m, s in ((norm or {}).get("sets") or {}).values()]
    for m, s in stats:
        if m.ndim != 1 or m.shape != mean.shape or s.shape != mean.shape:
            raise error(f"{where}: norm_mean and norm_std (and any set statistics) must be 1-D and of one size (the "
                        "feature dimension); the file is damaged: retrain or re-save it")
        if not (np.isfinite(m).all() and np.isfinite(s).all() and (s > 0).all()):
            raise error(f"{where}: its normalisation statistics hold NaN, infinite or non-positive std values: the "
                        "file is damaged; copy it again or retrain")


def _floats(values) -> np.ndarray:
    """A tensor, array or list of numbers as a float64 numpy array."""
    if hasattr(values, "is_floating_point"):  # a torch tensor (any float dtype, bfloat16 included)
        values = values.double().numpy()
    return np.asarray(values, np.float64)


def _check_names(data: dict, where: str) -> None:
    """CheckpointError unless the model and the feature types are ones this sertool has.

    An empty feature config (a checkpoint of a model trained on features computed elsewhere, written from
    Python) names no type and passes; scoring audio with it then fails with its own message.
    """
    if data["model"] != FUSION and data["model"] not in MODELS:
        raise CheckpointError(f"{where}: model {data['model']!r} is not one this sertool has "
                              f"({', '.join(sorted(MODELS))}); upgrade sertool, or use a checkpoint written by "
                              "`sertool train`")
    configs = [] if data["model"] == FUSION else [data["feature_config"]]
    for config in configs + [c for c in [data.get("utterance_feature_config")] if c]:
        if config and config.get("type") not in EXTRACTORS:
            raise CheckpointError(f"{where}: feature type {config.get('type')!r} is not one this sertool has "
                                  f"({', '.join(sorted(EXTRACTORS))}); use a checkpoint written by `sertool train`")


def _check_weights(state_dict: dict, where: str) -> None:
    """CheckpointError naming the first weight tensor holding NaN or infinite values."""
    for name, tensor in state_dict.items():
        if tensor.is_floating_point() and not bool(tensor.isfinite().all()):
            raise CheckpointError(f"{where}: weight {name!r} holds NaN or infinite values: the file is damaged; "
                                  "copy it again or retrain")


def _check_members(data: dict, where: str) -> None:
    """A fused checkpoint: members, one numeric weight each, every member valid."""
    members, weights = data.get("members") or [], data["model_config"].get("weights")
    if not members:
        raise CheckpointError(f"{where}: fused checkpoint without members; rerun `sertool fuse`")
    if not (isinstance(weights, list) and len(weights) == len(members) and all(map(_is_number, weights))
            and np.isfinite(weights).all()):
        raise CheckpointError(f"{where}: fused checkpoint's model_config 'weights' must be one number per member "
                              f"({len(members)}); rerun `sertool fuse`")
    for k, member in enumerate(members):
        check_payload(member, f"{where}, member {k}")
