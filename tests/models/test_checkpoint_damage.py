"""Damaged checkpoints and exports: NaN weights, fields of the wrong type, bad ONNX metadata or external data.

Each is refused with one line naming the file, never scored into NaN probabilities or a traceback.
"""

from __future__ import annotations

import csv
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import sertool
from sertool.cli.main import cli
from sertool.errors import CheckpointError, ExportError
from sertool.features import build_extractor
from sertool.inference.export import load_exported
from sertool.models.checkpoint import Checkpoint
from tests.conftest import write_audio

FEATURES = build_extractor("mfcc_stats").config.to_dict()
DIM = 80  # mfcc_stats: mean and std of 40 MFCCs


def tiny_checkpoint(coef_value: float | None = None) -> Checkpoint:
    """A logreg checkpoint over mfcc_stats (random small weights, or every weight ``coef_value``)."""
    coef = torch.full((2, DIM), coef_value) if coef_value is not None else torch.randn(2, DIM) * 0.01
    return Checkpoint(model="logreg", model_config={"C": 1.0}, feature_set="mfcc_stats", feature_config=FEATURES,
                      labels=["angry", "calm"], norm_mean=torch.zeros(DIM), norm_std=torch.ones(DIM), train_config={},
                      state_dict={"temperature": torch.tensor(1.0), "coef": coef, "intercept": torch.zeros(2)})


def overwrite_member(path: Path, suffix: str, value: bytes) -> None:
    """Overwrite the start of the stored (uncompressed) zip member ending in ``suffix`` with ``value`` in place."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(suffix))
    raw = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack("<HH", raw[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    raw[start:start + len(value)] = value
    path.write_bytes(bytes(raw))


def storage_of(path: Path, key: str) -> str:
    """The ``data/<n>`` member holding the storage of state_dict tensor ``key`` (the order torch.save wrote them)."""
    payload = torch.load(path, weights_only=True)
    order = [t.untyped_storage().data_ptr() for t in _tensors(payload)]
    target = payload["state_dict"][key].untyped_storage().data_ptr()
    return f"data/{order.index(target)}"


def _tensors(value):
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _tensors(v)
    elif isinstance(value, list):
        for v in value:
            yield from _tensors(v)


def error_line(result) -> str:
    """The one error line of a failed command (asserts there is exactly one and no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    return write_audio(tmp_path_factory.mktemp("audio") / "x.wav", seconds=1.0)


def test_nan_bytes_inside_a_weight_are_refused_naming_the_checkpoint(tmp_path, wav):
    path = tiny_checkpoint().save(tmp_path / "ckpt.pt")
    overwrite_member(path, storage_of(path, "coef"), b"\xff" * 16)  # four float32 NaNs
    result = CliRunner().invoke(cli, ["predict", str(path), str(wav)])
    line = error_line(result)
    assert str(path) in line and "'coef'" in line and "NaN" in line
    assert "angry" not in result.output.replace(line, "")  # no row was written
    with pytest.raises(CheckpointError, match="member 0"):  # a fused checkpoint holding the damaged one
        Checkpoint.from_payload({**tiny_checkpoint().payload(), "model": "fusion", "model_config": {"weights": [1.0]},
                                 "members": [torch.load(path, weights_only=True)]}, where="fused.pt")


def test_weights_that_overflow_stop_scoring_naming_the_checkpoint(tmp_path, wav):
    path = tiny_checkpoint(3e38).save(tmp_path / "huge.pt")  # finite weights, infinite logits
    result = CliRunner().invoke(cli, ["predict", str(path), str(wav), "-o", str(tmp_path / "p.csv")])
    line = error_line(result)
    assert str(path) in line and "NaN or infinite probabilities" in line
    assert len(list(csv.DictReader(open(tmp_path / "p.csv")))) == 0  # no NaN row written
    with pytest.raises(CheckpointError, match="NaN or infinite probabilities"):
        sertool.predict(path, [wav])


def _payload(**changes) -> dict:
    return {**tiny_checkpoint().payload(), **changes}


@pytest.mark.parametrize("changes, field", [
    ({"format_version": "1"}, "format_version"),
    ({"format_version": True}, "format_version"),
    ({"model": 7}, "model"),
    ({"model_config": [1.0]}, "model_config"),
    ({"feature_config": "mfcc_stats"}, "feature_config"),
    ({"labels": ["angry", 3]}, "labels"),
    ({"labels": ["angry", "angry"]}, "labels"),
    ({"norm": "global"}, "norm"),
    ({"norm": {"mode": "loud"}}, "norm"),
    ({"norm": {"mode": "set", "sets": {"a": "oops"}}}, "norm"),
    ({"norm_mean": [0.0] * DIM}, "norm_mean"),
    ({"norm_std": torch.zeros(DIM, dtype=torch.long)}, "norm_std"),
    ({"calibration": {"temperature": "1"}}, "calibration"),
    ({"calibration": {"temperature": float("nan")}}, "calibration"),
    ({"state_dict": {"coef": [[0.0]]}}, "state_dict"),
    ({"train_config": None}, "train_config"),
    ({"members": {"0": {}}}, "members"),
])
def test_checkpoint_fields_of_the_wrong_type_are_named(tmp_path, changes, field):
    path = tmp_path / "bad.pt"
    torch.save(_payload(**changes), path)
    with pytest.raises(CheckpointError, match=f"{path}: checkpoint field '{field}' must be"):
        Checkpoint.load(path)


@pytest.mark.parametrize("changes, words", [
    ({"norm_std": torch.zeros(DIM)}, "non-positive std"),
    ({"norm_mean": torch.full((DIM,), float("inf"))}, "NaN, infinite"),
    ({"norm_std": torch.ones(DIM - 1)}, "of one size"),
    ({"norm": {"mode": "set", "sets": {"a": [[0.0] * DIM, [0.0] * DIM]}}}, "non-positive std"),
    ({"model": "fusion", "model_config": {"weights": [1.0, 2.0]}, "members": [_payload()]}, "one number per member"),
    ({"model_config": {"C": "strong"}}, "does not build model 'logreg'"),
    ({"model": "logistic"}, "model 'logistic' is not one this sertool has"),
    ({"feature_config": {"type": "mfccs"}}, "feature type 'mfccs' is not one"),
    ({"utterance_feature_config": {"n_mfcc": 13}}, "feature type None is not one"),
])
def test_damaged_values_are_named(tmp_path, changes, words):
    path = tmp_path / "bad.pt"
    torch.save(_payload(**changes), path)
    with pytest.raises(CheckpointError, match=str(path)) as caught:
        Checkpoint.load(path).build_model()
    assert words in str(caught.value)


def test_a_bad_field_is_one_line_from_the_command_line(tmp_path, wav):
    path = tmp_path / "bad.pt"
    torch.save(_payload(model_config=["C", 1.0]), path)
    line = error_line(CliRunner().invoke(cli, ["predict", str(path), str(wav)]))
    assert str(path) in line and "model_config" in line


# --------------------------------------------------------------------------- exports
@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """The tiny checkpoint exported to ONNX and TorchScript."""
    pytest.importorskip("onnxruntime")
    out = tmp_path_factory.mktemp("exports")
    checkpoint = tiny_checkpoint().save(out / "ckpt.pt")
    for name in ("model.onnx", "model.pt"):
        sertool.export(checkpoint, output=out / name)
    return out


def _edit_onnx(source: Path, target: Path, *, metadata=None, nan=False):
    """A copy of ONNX file ``source`` with its sertool metadata replaced (a str as is), or a NaN weight."""
    import onnx

    model = onnx.load(str(source))
    if metadata is not None:
        entry = next(p for p in model.metadata_props if p.key == "sertool")
        entry.value = metadata if isinstance(metadata, str) else json.dumps(metadata)
    if nan:
        tensor = next(t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and t.dims)
        values = onnx.numpy_helper.to_array(tensor).copy()
        values.flat[0] = np.nan
        tensor.CopyFrom(onnx.numpy_helper.from_array(values, tensor.name))
    onnx.save(model, str(target))
    return target


def _metadata(exports: Path) -> dict:
    import onnx

    return json.loads({p.key: p.value for p in onnx.load(str(exports / "model.onnx")).metadata_props}["sertool"])


def test_an_onnx_export_with_a_nan_weight_is_refused(exports, tmp_path, wav):
    bad = _edit_onnx(exports / "model.onnx", tmp_path / "nan.onnx", nan=True)
    line = error_line(CliRunner().invoke(cli, ["predict", str(bad), str(wav)]))
    assert str(bad) in line and "NaN or infinite" in line


def test_a_torchscript_export_with_nan_bytes_is_refused_when_trusted(exports, tmp_path, wav):
    bad = tmp_path / "nan.pt"
    bad.write_bytes((exports / "model.pt").read_bytes())
    with zipfile.ZipFile(bad) as archive:
        sizes = {i.filename: i.file_size for i in archive.infolist() if "/data/" in i.filename}
    overwrite_member(bad, max(sizes, key=sizes.get).split("/", 1)[1], b"\xff" * 16)  # the largest: the weights
    line = error_line(CliRunner().invoke(cli, ["predict", str(bad), str(wav), "--trust-code"]))
    assert str(bad) in line and "NaN or infinite" in line


@pytest.mark.parametrize("edit, words", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "not a sertool export"),
    ({"drop": "labels"}, "lacks labels"),
    ({"labels": "angry,calm"}, "'labels' must be"),
    ({"norm_mean": ["a"] * DIM}, "'norm_mean' must be"),
    ({"norm_std": [0.0] * DIM}, "non-positive std"),
    ({"min_frames": "1"}, "'min_frames' must be"),
    ({"format_version": "one"}, "'format_version' must be"),
    ({"calibration": {"temperature": -1}}, "'calibration' must be"),
])
def test_onnx_metadata_that_is_broken_missing_or_mistyped_is_named(exports, tmp_path, wav, edit, words):
    metadata = edit
    if isinstance(edit, dict):
        metadata = {k: v for k, v in {**_metadata(exports), **edit}.items() if k != edit.get("drop")}
        metadata.pop("drop", None)
    bad = _edit_onnx(exports / "model.onnx", tmp_path / "meta.onnx", metadata=metadata)
    with pytest.raises(ExportError, match=str(bad)) as caught:
        load_exported(bad)
    assert words in str(caught.value)


def test_onnx_external_data_outside_its_folder_is_refused(exports, tmp_path, wav):
    import onnx

    folder = tmp_path / "model"
    folder.mkdir()
    model = onnx.load(str(exports / "model.onnx"))
    onnx.save(model, str(folder / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert sertool.predict(folder / "ext.onnx", [wav]).names  # beside it: fine
    (folder / "weights.bin").rename(tmp_path / "weights.bin")
    model = onnx.load(str(folder / "ext.onnx"), load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "../weights.bin"
    onnx.save(model, str(folder / "ext.onnx"))
    line = error_line(CliRunner().invoke(cli, ["predict", str(folder / "ext.onnx"), str(wav)]))
    assert str(folder / "ext.onnx") in line and "outside the model's folder" in line
