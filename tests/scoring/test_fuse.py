"""scoring/fuse.py: a fused run is the weighted mean of its members, per fold, in evaluate and in predict."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.errors import SertoolError
from sertool.scoring.evaluate import evaluate_run
from sertool.training.trainer import TrainConfig, build_train_config, train_run
from tests.conftest import FAST_TRAINING, assert_evaluation_consistent


def _probabilities(run_dir, labels) -> dict[str, np.ndarray]:
    """id -> class probabilities of an evaluated run's predictions.csv."""
    with open(run_dir / "predictions.csv", newline="") as fh:
        return {r["id"]: np.array([float(r[f"p_{c}"]) for c in labels]) for r in csv.DictReader(fh)}


def _test_ids(run_dir, fold: int) -> list[str]:
    with open(run_dir / f"fold-{fold}" / "split.csv", newline="") as fh:
        return [r["id"] for r in csv.DictReader(fh) if r["role"] == "test"]


def test_fused_runs_evaluate_and_predict(pitch_corpus, tmp_path):
    from sertool.inference.predict import predict_files
    from sertool.scoring.fuse import fuse_runs

    _, manifest, frames, vectors = pitch_corpus
    common = dict(protocol="loso", valid_speakers=1)
    train_run(manifest, vectors, model="logreg", output=tmp_path / "a",
              train_config=build_train_config({"norm": "global"}, model="logreg"), **common)
    train_run(manifest, frames, model="light_sernet", output=tmp_path / "b",
              train_config=TrainConfig(**FAST_TRAINING, norm="global"), **common)
    result = fuse_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "f")
    assert len(result.weights) == 3 and all(math.isclose(sum(w), 1.0) for w in result.weights)
    fused = evaluate_run(tmp_path / "f")
    assert_evaluation_consistent(tmp_path / "f", fused)
    for member in "ab":
        evaluated = evaluate_run(tmp_path / member, output=tmp_path / f"ev-{member}")
        assert_evaluation_consistent(tmp_path / member, evaluated)
    rows = {name: _probabilities(tmp_path / d, fused.labels) for name, d in (("f", "f"), ("a", "ev-a"), ("b", "ev-b"))}
    for k, (wa, wb) in enumerate(result.weights):
        for i in _test_ids(tmp_path / "f", k):
            np.testing.assert_allclose(rows["f"][i], wa * rows["a"][i] + wb * rows["b"][i], atol=2e-5)
    report = predict_files(tmp_path / "f" / "fold-0" / "checkpoint.pt", [manifest], tmp_path / "p.csv")
    assert report.ok == 36 and report.failed == 0
    # runs on other folds cannot be fused
    train_run(manifest, vectors, model="logreg", output=tmp_path / "c", protocol="holdout",
              test_speakers=["spk0"], valid_speakers=1,
              train_config=build_train_config({"norm": "global"}, model="logreg"))
    with pytest.raises(SertoolError, match="differ"):
        fuse_runs([tmp_path / "a", tmp_path / "c"], tmp_path / "g")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "f" / "fold-0" / "checkpoint.pt"), str(manifest),
                                      "--segments", "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 1 and "--segments" in result.output
