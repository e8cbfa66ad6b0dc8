"""predict, stream and export of regression checkpoints (``train --target``): one ``pred_<target>`` column each."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.errors import CheckpointError
from sertool.inference.rows import error_row, header, score_row
from sertool.models.checkpoint import Checkpoint
from sertool.models.targets import Targets
from sertool.training.trainer import build_train_config, train_run
from tests.training.test_regression import pitch_of, with_targets


@pytest.fixture(scope="module")
def regression_runs(pitch_corpus, tmp_path_factory):
    """Fold 0 of a ridge run (utterance level, two targets) and of a light_sernet run (frame level, one target)."""
    root = tmp_path_factory.mktemp("regpred")
    manifest = with_targets(pitch_corpus.manifest, root / "m.csv", pitch=lambda u: f"{pitch_of(u.path):.1f}",
                            minus=lambda u: f"{1000 - 2 * pitch_of(u.path):.1f}")
    common = dict(protocol="loso", valid_speakers=1, fold=0)
    train_run(manifest, pitch_corpus.vectors, model="ridge", output=root / "ridge", targets="pitch,minus",
              train_config=build_train_config({"norm": "global", "loss": "ccc"}, model="ridge"), **common)
    train_run(manifest, pitch_corpus.frames, model="light_sernet", output=root / "net", targets=["pitch"],
              train_config=build_train_config({"norm": "global", "loss": "mse", "epochs": 2}, model="light_sernet"),
              **common)
    return manifest, root / "ridge" / "fold-0" / "checkpoint.pt", root / "net" / "fold-0" / "checkpoint.pt"


def _predict(*args):
    out = CliRunner().invoke(cli, ["predict", *map(str, args)])
    assert out.exit_code == 0, out.output
    return out


def test_predict_writes_one_value_column_per_target(regression_runs, tmp_path):
    manifest, ridge, _ = regression_runs
    _predict(ridge, manifest, "-o", tmp_path / "p.csv")
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert list(rows[0]) == ["path", "id", "speaker", "label", "pred_pitch", "pred_minus", "duration", "flags",
                             "error"]
    assert len(rows) == 36 and all(not r["error"] for r in rows)
    pitch = np.array([float(r["pred_pitch"]) for r in rows])
    truth = np.array([pitch_of(r["path"]) for r in rows])
    assert np.corrcoef(pitch, truth)[0, 1] > 0.8  # values on the target's scale (Hz), not standardised
    assert abs(pitch.mean() - truth.mean()) < 40


def test_predict_matches_evaluate(regression_runs, tmp_path):
    from sertool.scoring.regression import evaluate_regression_run

    manifest, ridge, _ = regression_runs
    evaluate_regression_run(ridge.parent.parent, output=tmp_path / "eval")
    evaluated = {r["id"]: r for r in csv.DictReader(open(tmp_path / "eval" / "predictions.csv"))}
    _predict(ridge, manifest, "-o", tmp_path / "p.csv")
    predicted = {r["id"]: r for r in csv.DictReader(open(tmp_path / "p.csv"))}
    for i, r in evaluated.items():
        assert float(predicted[i]["pred_pitch"]) == pytest.approx(float(r["pred_pitch"]), abs=2e-3)
        assert float(predicted[i]["pred_minus"]) == pytest.approx(float(r["pred_minus"]), abs=2e-3)


def test_segments_of_a_frame_level_model_get_value_columns(regression_runs, tmp_path):
    manifest, _, net = regression_runs
    _predict(net, manifest, "--segments", "-o", tmp_path / "s.csv")
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert list(rows[0])[4:7] == ["start", "end", "pred_pitch"]
    assert all(np.isfinite(float(r["pred_pitch"])) for r in rows)


@pytest.mark.parametrize("suffix", [".onnx", ".pt"])
def test_an_exported_regression_model_scores_identically(regression_runs, tmp_path, suffix):
    pytest.importorskip("onnxruntime")
    manifest, ridge, net = regression_runs
    for checkpoint in (ridge, net):
        exported = tmp_path / f"{checkpoint.parent.parent.name}{suffix}"
        out = CliRunner().invoke(cli, ["export", str(checkpoint), "-o", str(exported)])
        assert out.exit_code == 0, out.output
        trust = ["--trust-code"] if suffix == ".pt" else []
        first, second = tmp_path / f"{exported.stem}-a.csv", tmp_path / f"{exported.stem}-b.csv"
        _predict(checkpoint, manifest, "-o", first)
        _predict(exported, manifest, *trust, "-o", second)
        a, b = list(csv.DictReader(open(first))), list(csv.DictReader(open(second)))
        assert list(a[0]) == list(b[0])
        for x, y in zip(a, b):
            for column in (c for c in x if c.startswith("pred_")):
                assert float(x[column]) == pytest.approx(float(y[column]), abs=1e-3)


def test_an_exported_logreg_mean_model_scores_identically(pitch_corpus, tmp_path):
    pytest.importorskip("onnxruntime")
    import re

    def levels(u):  # a 3-level target and a 2-level one: the second pads its classifier
        index = int(re.search(r"spk\d_(\d)", str(u.path)).group(1))
        return "0" if "/low/" in str(u.path) else str(1 + index % 2)

    manifest = with_targets(pitch_corpus.manifest, tmp_path / "m.csv", level=levels,
                            high=lambda u: "0" if "/low/" in str(u.path) else "1")
    train_run(manifest, pitch_corpus.vectors, model="logreg_mean", output=tmp_path / "run", targets="level,high",
              protocol="loso", valid_speakers=1, fold=0,
              train_config=build_train_config({"norm": "global", "loss": "ccc"}, model="logreg_mean"))
    checkpoint = tmp_path / "run" / "fold-0" / "checkpoint.pt"
    assert Checkpoint.load(checkpoint).model_config["levels"] == 3
    out = CliRunner().invoke(cli, ["export", str(checkpoint), "-o", str(tmp_path / "m.onnx")])
    assert out.exit_code == 0, out.output
    _predict(checkpoint, manifest, "-o", tmp_path / "a.csv")
    _predict(tmp_path / "m.onnx", manifest, "-o", tmp_path / "b.csv")
    a, b = list(csv.DictReader(open(tmp_path / "a.csv"))), list(csv.DictReader(open(tmp_path / "b.csv")))
    for x, y in zip(a, b, strict=True):
        assert float(x["pred_level"]) == pytest.approx(float(y["pred_level"]), abs=1e-3)
        assert float(x["pred_high"]) == pytest.approx(float(y["pred_high"]), abs=1e-3)


def test_rows_of_a_regression_model():
    targets = Targets(["arousal", "valence"])
    assert header(targets, False) == ["path", "pred_arousal", "pred_valence", "duration", "flags", "error"]
    assert header(targets, True, manifest=True)[:6] == ["path", "id", "speaker", "label", "start", "end"]
    assert score_row("a.wav", np.array([0.25, -1.5]), 2.0, targets) == ["a.wav", "0.2500", "-1.5000", "2.000", "",
                                                                       ""]
    assert len(error_row("a.wav", "bad", targets, True)) == len(header(targets, True))
    assert len(error_row("a.wav", "bad", ["x", "y"], False)) == len(header(["x", "y"], False))


def test_old_checkpoints_without_a_task_are_classifiers(regression_runs, tmp_path):
    _, ridge, _ = regression_runs
    payload = torch.load(ridge, weights_only=True)
    old = {k: v for k, v in payload.items() if k not in ("task", "targets", "target_mean", "target_std")}
    old["labels"] = ["high", "low"]
    torch.save(old, tmp_path / "old.pt")
    loaded = Checkpoint.load(tmp_path / "old.pt")
    assert not loaded.is_regression and loaded.outputs == ["high", "low"]


@pytest.mark.parametrize("change,message", [
    ({"target_std": [0.0, 1.0]}, "target_mean and target_std"),
    ({"targets": []}, "needs 'targets'"),
    ({"labels": ["a", "b"]}, "labels"),
    ({"task": "ranking"}, "task 'ranking'"),
])
def test_damaged_task_fields_are_refused(regression_runs, tmp_path, change, message):
    _, ridge, _ = regression_runs
    payload = {**torch.load(ridge, weights_only=True), **change}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=message):
        Checkpoint.load(tmp_path / "bad.pt")


def test_in_memory_prediction_of_a_regression_model(regression_runs):
    from sertool.api import predict

    manifest, ridge, _ = regression_runs
    result = predict(ridge, manifest)
    assert result.classes == ("pitch", "minus") and result.labels == []
    assert result.probabilities.shape == (36, 2)
    assert np.corrcoef(result.probabilities[:, 0], [pitch_of(n) for n in result.names])[0, 1] > 0.8
