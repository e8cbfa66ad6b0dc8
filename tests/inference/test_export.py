"""sertool export: ONNX and TorchScript files that score like their checkpoint (every family: test_train_eval_predict)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import sertool
from sertool.cli.main import cli
from sertool.errors import SertoolError
from sertool.inference.predict import default_checkpoint
from sertool.models import MODELS
from sertool.inference.export import TOLERANCE, ExportError, export_checkpoint, load_exported
from tests.conftest import REPO, write_audio

pytest.importorskip("onnxruntime")
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The bundled model exported to ONNX and TorchScript by the command line."""
    out = tmp_path_factory.mktemp("export")
    for name in ("model.onnx", "model.pt"):
        result = CliRunner().invoke(cli, ["export", "ravdess", "-o", str(out / name)])
        assert result.exit_code == 0, result.output
        assert "written to" in result.output
    return out


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """The example clips plus a 9 s file (several windows) and a 0.3 s one (padded inside the model)."""
    out = tmp_path_factory.mktemp("audio")
    return sorted(EXAMPLES.rglob("*.flac")) + [write_audio(out / "long.wav", seconds=9.0, freq=180.0),
                                                write_audio(out / "short.wav", seconds=0.3, freq=300.0)]


def assert_same_scores(reference, other):
    assert other.names == reference.names and other.classes == reference.classes
    assert np.abs(other.probabilities - reference.probabilities).max() <= TOLERANCE
    for ref_windows, windows in zip(reference.windows, other.windows):
        assert [w[:2] for w in windows] == [w[:2] for w in ref_windows]
        assert max(np.abs(a[2] - b[2]).max() for a, b in zip(windows, ref_windows)) <= TOLERANCE


def test_onnx_and_torchscript_score_like_the_checkpoint(exported, audio):
    reference = sertool.predict("ravdess", audio)
    assert len(reference.windows[-2]) > 3  # the long file is windowed
    assert_same_scores(reference, sertool.predict(exported / "model.onnx", audio))
    assert_same_scores(reference, sertool.predict(exported / "model.pt", audio, trust_code=True))


def test_the_metadata_inside_describes_features_labels_and_normalisation(exported):
    import onnx

    checkpoint = sertool.Checkpoint.load(default_checkpoint("ravdess"))
    props = {p.key: p.value for p in onnx.load(str(exported / "model.onnx")).metadata_props}
    with zipfile.ZipFile(exported / "model.pt") as archive:
        inside = [n for n in archive.namelist() if n.endswith("extra/sertool.json")]
        torchscript_meta = json.loads(archive.read(inside[0]))
    for meta in (json.loads(props["sertool"]), torchscript_meta):
        assert meta["labels"] == checkpoint.labels
        assert meta["feature_config"] == checkpoint.feature_config
        assert meta["norm"]["mode"] == checkpoint.norm_mode
        np.testing.assert_allclose(meta["norm_mean"], checkpoint.norm_mean.numpy(), rtol=1e-6)
        assert len(meta["checkpoint_sha256"]) == 64
    loaded = load_exported(exported / "model.onnx")
    assert loaded.labels == checkpoint.labels and loaded.export_format == "onnx"


def test_the_onnx_graph_runs_with_onnxruntime_alone(exported):
    """What a user outside sertool does: onnxruntime, normalised features in, probabilities out."""
    import onnxruntime as ort

    from sertool.features import build_extractor

    session = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = json.loads(session.get_modelmeta().custom_metadata_map["sertool"])
    sr = 16000
    samples = sertool.load_audio(sorted(EXAMPLES.rglob("*.flac"))[0], sr=sr)[: int(2.5 * sr)]  # one window
    feats = build_extractor(meta["feature_config"]).extract(samples, sr)
    feats = ((feats - np.array(meta["norm_mean"])) / np.array(meta["norm_std"])).astype(np.float32)
    logits, probabilities = session.run(None, {"feats": feats[None]})
    assert probabilities.shape == (1, len(meta["labels"]))
    expected = sertool.predict("ravdess", (samples, sr)).probabilities
    assert np.abs(probabilities - expected).max() <= TOLERANCE


def test_torchscript_needs_trust_code(exported, audio):
    result = CliRunner().invoke(cli, ["predict", str(exported / "model.pt"), str(audio[0]), "-o", "-"])
    assert result.exit_code != 0 and "--trust-code" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["predict", str(exported / "model.onnx"), str(audio[0]), "-o", "-"])
    assert result.exit_code == 0 and "1 scored" in result.output and result.output.startswith("path,predicted")


def test_bad_exports_are_one_line_errors(tmp_path, exported):
    runner = CliRunner()
    result = runner.invoke(cli, ["export", "ravdess", "-o", str(tmp_path / "m.tflite")])
    assert result.exit_code != 0 and ".onnx" in result.output and "Traceback" not in result.output
    result = runner.invoke(cli, ["predict", str(tmp_path / "missing.onnx"), str(EXAMPLES), "-o", "-"])
    assert result.exit_code != 0 and "not found" in result.output
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    result = runner.invoke(cli, ["predict", str(broken), str(EXAMPLES), "-o", "-"])
    assert result.exit_code != 0 and "broken.onnx" in result.output and "Traceback" not in result.output


def test_onnx_with_a_foreign_operator_domain_is_refused(exported, tmp_path):
    import onnx

    model = onnx.load(str(exported / "model.onnx"))
    model.opset_import.add(domain="com.example.custom", version=1)
    onnx.save_model(model, str(tmp_path / "custom.onnx"))
    with pytest.raises(ExportError, match="com.example.custom"):
        load_exported(tmp_path / "custom.onnx")


def test_fused_and_onnx_unsupported_models_are_refused(tmp_path):
    from sertool.models.checkpoint import Checkpoint
    from sertool.models import build_model

    bundled = Checkpoint.load(default_checkpoint("ravdess"))
    fused = Checkpoint(model="fusion", model_config={"weights": [1.0]}, feature_set="fusion", feature_config={},
                       labels=bundled.labels, norm_mean=bundled.norm_mean, norm_std=bundled.norm_std,
                       train_config={}, state_dict={}, members=[bundled.payload()])
    with pytest.raises(ExportError, match="fused"):
        export_checkpoint(fused, tmp_path / "f.onnx")
    name = sorted(n for n, spec in MODELS.items() if spec.onnx_unsupported)[0]
    model = build_model(name, {}, input_dim=40, num_classes=len(bundled.labels))
    other = Checkpoint(model=name, model_config={}, feature_set=bundled.feature_set,
                       feature_config=bundled.feature_config, labels=bundled.labels, norm_mean=bundled.norm_mean,
                       norm_std=bundled.norm_std, train_config={}, state_dict=model.state_dict())
    with pytest.raises(ExportError, match="TorchScript"):
        export_checkpoint(other, tmp_path / "c.onnx")
    assert not (tmp_path / "c.onnx").exists()
    assert isinstance(ExportError("x"), SertoolError)


def check_exports(checkpoint_path: Path, audio: list, out: Path) -> list[str]:
    """Export ``checkpoint_path`` to every format its model supports; each scores ``audio`` like it (<= 1e-4)."""
    checkpoint = sertool.Checkpoint.load(checkpoint_path)
    reference = sertool.predict(checkpoint_path, audio, trust_code=True)  # ssl checkpoints name an encoder folder
    formats = ["model.pt"] + ([] if MODELS[checkpoint.model].onnx_unsupported else ["model.onnx"])
    for name in formats:
        summary = export_checkpoint(checkpoint_path, out / name)
        assert summary["max_difference"] <= TOLERANCE
        assert_same_scores(reference, sertool.predict(out / name, audio, trust_code=True))
    return formats


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_the_calibrated_temperature_is_baked_into_the_export(tmp_path, suffix):
    """A checkpoint with T = 2.5: the exported graph's probabilities are softmax(logits / 2.5), as the checkpoint's."""
    import dataclasses

    from sertool.inference.runner import build_runner

    plain = sertool.Checkpoint.load(default_checkpoint("ravdess"))
    calibration = {"method": "temperature", "temperature": 2.5, "valid_nll_before": 1.2, "valid_nll_after": 1.0}
    checkpoint = dataclasses.replace(plain, calibration=calibration)
    summary = export_checkpoint(checkpoint.save(tmp_path / "calibrated.pt"), tmp_path / f"model{suffix}")
    assert summary["max_difference"] <= TOLERANCE  # the parity check inside export passed
    exported = load_exported(tmp_path / f"model{suffix}")
    assert exported.calibration == calibration and exported.temperature == 1.0  # applied inside the graph
    windows = [np.random.default_rng(k).standard_normal((n, len(plain.norm_mean))).astype(np.float32)
               for k, n in enumerate((300, 300, 120))]
    expected = build_runner(checkpoint).probabilities(windows)
    got = exported.build_model().probabilities(windows)
    assert np.abs(got - expected).max() <= TOLERANCE
    assert np.abs(build_runner(plain).probabilities(windows) - expected).max() > 10 * TOLERANCE
