"""An exported model file (:mod:`sertool.inference.export`) read and checked before anything in it is used.

- :func:`read_metadata`: its ``sertool.json`` (ONNX ``metadata_props`` entry
  ``sertool``, or the TorchScript archive's extra file), parsed and checked
  field by field (:data:`EXPORT_SCHEMA`, :func:`check_metadata`), without
  loading any TorchScript code.
- An ONNX graph is refused when it names an operator domain beyond the
  standard ones (:data:`ONNX_DOMAINS`), stores weights in external data
  outside its own folder, or holds NaN or infinite weights.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from sertool.errors import ExportError, optional_import
from sertool.models.checkpoint import SCHEMA, check_fields, check_statistics
from sertool.models.targets import check_task, labels_rule

FORMAT = "sertool-export"
FORMAT_VERSION = 1
#: Operator domains an ONNX file may use besides those of functions defined inside it (the standard ones).
ONNX_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


def is_exported(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an exported model (.onnx, or a TorchScript archive with sertool.json)."""
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        return True
    if not path.is_file() or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/extra/sertool.json") or name == "extra/sertool.json"
                       for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def read_metadata(path: Path, session=None) -> tuple[str, dict]:
    """``(format, metadata)`` of an exported file, checked (:func:`check_metadata`).

    An ONNX file is read with the ``onnx`` package: operator domains beyond the standard ones, external
    data outside its folder, and NaN or infinite weights are refused. With an onnxruntime ``session`` of it
    (a trusted file, e.g. a bundled one), its metadata is read from the session instead, without importing
    onnx or checking the graph.
    """
    if not path.is_file():
        raise ExportError(f"{path}: exported model not found; write one with `sertool export CHECKPOINT -o {path.name}`")
    if session is not None:
        text, fmt = session.get_modelmeta().custom_metadata_map.get("sertool"), "onnx"
    elif path.suffix.lower() == ".onnx":
        text, fmt = _onnx_metadata(path), "onnx"
    else:
        text, fmt = _torchscript_metadata(path), "torchscript"
    if not text:
        raise ExportError(f"{path}: no sertool metadata inside; export the model with `sertool export`")
    try:
        metadata = json.loads(text)
    except ValueError as exc:
        raise ExportError(f"{path}: its sertool metadata is not valid JSON ({exc}); export the model again") from None
    check_metadata(metadata, path)
    return fmt, metadata


def _onnx_metadata(path: Path) -> str | None:
    """The ``sertool`` metadata text of an ONNX file whose graph passed :func:`_check_onnx_graph`."""
    onnx = _import("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{path}: not a readable ONNX file ({type(exc).__name__}); export it again") from None
    _check_onnx_graph(model, path)
    return {p.key: p.value for p in model.metadata_props}.get("sertool")


def _torchscript_metadata(path: Path) -> str | None:
    """The ``extra/sertool.json`` text of a TorchScript archive (no TorchScript code is loaded to read it)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("extra/sertool.json")]
            return archive.read(names[0]).decode() if names else None
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise ExportError(f"{path}: not a readable TorchScript archive ({type(exc).__name__}); export it again") \
            from None


#: Fields of the metadata an export must hold (the rest are optional).
EXPORT_REQUIRED = ("format", "format_version", "model", "model_config", "feature_set", "feature_config", "labels",
                   "norm_mean", "norm_std")


def _is_numbers(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


#: Every metadata field sertool reads from an export: name -> (check, what it must be).
EXPORT_SCHEMA = {
    **{name: SCHEMA[name] for name in ("format_version", "model", "model_config", "feature_set", "feature_config",
                                       "labels", "utterance_feature_config", "norm", "calibration", "metrics")},
    "norm_mean": (_is_numbers, "a list of numbers"),
    "norm_std": (_is_numbers, "a list of numbers"),
    "min_frames": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a whole number >= 1"),
    "input_frames": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1),
                     "a whole number >= 1 or null"),
    "checkpoint_sha256": (lambda v: v is None or isinstance(v, str), "a hex string or null"),
}


def check_metadata(metadata, path) -> None:
    """ExportError naming ``path`` for anything sertool would misread in an export's ``sertool.json``.

    Checks the format and version, the required fields, every field's type (:data:`EXPORT_SCHEMA`)
    and the normalisation statistics (finite, of one size, ``std > 0``).
    """
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ExportError(f"{path}: its metadata is not a sertool export's; export the model with `sertool export`")
    check_fields(metadata, {"format_version": EXPORT_SCHEMA["format_version"]}, str(path), ExportError,
                 "export metadata field")
    if metadata.get("format_version", 0) > FORMAT_VERSION:
        raise ExportError(f"{path}: export format {metadata['format_version']} is newer than this sertool; upgrade "
                          "sertool or export the model again")
    missing = [k for k in EXPORT_REQUIRED if k not in metadata]
    if missing:
        raise ExportError(f"{path}: its sertool metadata lacks {', '.join(missing)}; export the model again")
    check_task(metadata, str(path), ExportError)
    check_fields(metadata, {**EXPORT_SCHEMA, "labels": labels_rule(metadata, EXPORT_SCHEMA["labels"])}, str(path),
                 ExportError, "export metadata field")
    check_statistics(metadata["norm_mean"], metadata["norm_std"], metadata.get("norm"), str(path), ExportError)


# --------------------------------------------------------------------------- the ONNX graph
def _check_onnx_graph(model, path: Path) -> None:
    """ExportError for foreign operator domains, external data outside ``path``'s folder, or NaN weights.

    Infinite values pass: exporters store attention masks and clamps as ``-inf`` / ``inf`` constants; damaged
    bytes (``0xff...``) read as NaN.
    """
    local = {function.domain for function in model.functions}
    domains = sorted({op.domain for op in model.opset_import} - set(ONNX_DOMAINS) - local)
    if domains:
        raise ExportError(f"{path}: uses operator domain(s) {', '.join(domains)} beyond the standard ones; "
                          "refused (use a model written by `sertool export`)")
    onnx = _import("onnx")
    tensors = list(_onnx_tensors(model, onnx))
    for tensor in tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            _load_external(tensor, path, onnx)
        values = onnx.numpy_helper.to_array(tensor)
        if np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():  # -inf is a real constant (masks)
            raise ExportError(f"{path}: weight {tensor.name or '(unnamed)'!r} holds NaN or infinite values: the file "
                              "is damaged; export the model again")


def _onnx_tensors(model, onnx):
    """Every tensor stored in an ONNX model: initializers and constant attributes, in subgraphs and functions too."""
    graphs, nodes = [model.graph], [n for f in model.functions for n in f.node]
    while graphs:
        graph = graphs.pop()
        yield from graph.initializer
        nodes += list(graph.node)
        while nodes:
            for attribute in nodes.pop().attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    yield attribute.t
                yield from attribute.tensors
                if attribute.type == onnx.AttributeProto.GRAPH:
                    graphs.append(attribute.g)
                graphs += list(attribute.graphs)


def _load_external(tensor, path: Path, onnx) -> None:
    """Read ``tensor``'s external data, which must be a file inside ``path``'s folder (ExportError otherwise)."""
    folder = path.resolve().parent
    location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
    target = (folder / location).resolve()
    if not location or Path(location).is_absolute() or not target.is_relative_to(folder) or not target.is_file():
        raise ExportError(f"{path}: weight {tensor.name!r} points to data {location!r} outside the model's folder or "
                          "missing; keep an export's data files beside it (sertool exports are one file)")
    try:
        onnx.external_data_helper.load_external_data_for_tensor(tensor, str(folder))
    except Exception as exc:
        raise ExportError(f"{path}: cannot read weight {tensor.name!r} from {location!r} ({type(exc).__name__}); "
                          "export the model again") from None


def _import(module: str):
    return optional_import(module, "export", "export", ExportError)
