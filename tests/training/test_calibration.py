"""training/calibration.py: one temperature per fold, fitted on validation speakers, stored in the checkpoint."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from sertool.errors import CheckpointError
from sertool.metrics import expected_calibration_error
from sertool.models.checkpoint import Checkpoint
from sertool.training.calibration import (calibrate, fit_temperature, negative_log_likelihood, softmax)
from sertool.training.trainer import TrainConfig, build_train_config, train_run
from tests.conftest import FAST_TRAINING


def _one_hot_logits(true: np.ndarray, accuracy: float, classes: int, scale: float, seed: int = 0):
    """Logits ``scale`` on a predicted class that is right for a share ``accuracy`` of the items, 0 elsewhere."""
    rng = np.random.default_rng(seed)
    pred = true.copy()
    wrong = rng.permutation(len(true))[:round((1 - accuracy) * len(true))]
    pred[wrong] = (true[wrong] + 1 + rng.integers(0, classes - 1, len(wrong))) % classes
    logits = np.zeros((len(true), classes))
    logits[np.arange(len(true)), pred] = scale
    return logits


@pytest.mark.parametrize("scale, direction", [(12.0, "over"), (0.3, "under")])
def test_temperature_matches_the_closed_form_and_lowers_nll(scale, direction):
    # Logits a * onehot(pred): the NLL is least where the top probability equals the accuracy, i.e. where
    # a / T = log(acc * (C - 1) / (1 - acc)). Over-confident logits (a = 12) need T > 1, timid ones T < 1.
    classes, accuracy = 4, 0.7
    true = np.random.default_rng(1).integers(0, classes, 400)
    logits = _one_hot_logits(true, accuracy, classes, scale)
    temperature = fit_temperature(logits, true)
    expected = scale / math.log(accuracy * (classes - 1) / (1 - accuracy))
    assert temperature == pytest.approx(expected, rel=1e-3)
    assert (temperature > 1) == (direction == "over")
    result = calibrate(logits, true)
    assert result["method"] == "temperature" and result["temperature"] == temperature
    assert result["valid_nll_after"] < result["valid_nll_before"] - 0.05
    assert result["valid_ece_after"] < 0.01 < result["valid_ece_before"]
    assert result["valid_ece_after"] == pytest.approx(expected_calibration_error(softmax(logits, temperature), true))
    assert fit_temperature(logits, true) == temperature  # deterministic


def test_calibrated_logits_keep_t_one_and_argmax_never_changes():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(300, 5)) * 2
    true = np.array([rng.choice(5, p=p) for p in softmax(logits)])  # labels drawn from the model itself
    temperature = fit_temperature(logits, true)
    assert 0.8 < temperature < 1.25
    assert (softmax(logits, temperature).argmax(1) == logits.argmax(1)).all()
    assert negative_log_likelihood(logits, true, temperature) <= negative_log_likelihood(logits, true)
    # perfectly separated, already certain: nothing to gain, T stays 1 (not a rounding-level optimum)
    assert fit_temperature(np.eye(3) * 60, np.arange(3)) == 1.0
    assert calibrate(np.zeros((0, 3)), np.zeros(0, int))["temperature"] == 1.0


def test_each_fold_stores_its_temperature_in_checkpoint_config_and_log(pitch_corpus, tmp_path):
    _, manifest, _, vectors = pitch_corpus
    messages = []
    config = TrainConfig(**{**FAST_TRAINING, "epochs": 4}, norm="global", threads=1)
    train_run(manifest, vectors, model="mlp", output=tmp_path / "r", protocol="loso", valid_speakers=1,
              train_config=config, log=messages.append)
    for fold in range(3):
        folder = tmp_path / "r" / f"fold-{fold}"
        checkpoint = Checkpoint.load(folder / "checkpoint.pt")
        stored = checkpoint.calibration
        assert stored["method"] == "temperature" and stored["valid_utterances"] == 12
        assert checkpoint.temperature == stored["temperature"] > 0
        assert stored["valid_nll_after"] <= stored["valid_nll_before"]
        assert json.loads((folder / "config.json").read_text())["calibration"] == stored
        for name in ("best", "last", "average"):  # each checkpoint file: its own weights' temperature
            assert Checkpoint.load(folder / f"checkpoint-{name}.pt").calibration["method"] == "temperature"
    assert sum("calibration T" in m for m in messages) == 3


def test_over_confident_classic_model_gets_t_above_one(pitch_corpus, tmp_path):
    # Labels of a third of the clips flipped: logreg (C = 1) fits the training noise and is
    # over-confident on the validation speaker; temperature scaling softens it and lowers its NLL there.
    root, manifest, _, vectors = pitch_corpus
    rows = list(csv.DictReader(open(manifest, newline="")))
    for k, row in enumerate(rows):
        if k % 3 == 0:
            row["label"] = "low" if row["label"] == "high" else "high"
    noisy = tmp_path / "noisy.csv"
    with open(noisy, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "audio").symlink_to(root / "audio")  # manifest paths are relative to the manifest's folder
    train_run(noisy, vectors, model="logreg", output=tmp_path / "r", protocol="loso", valid_speakers=1,
              model_settings={"C": 1.0}, train_config=build_train_config({"norm": "global"}, model="logreg"))
    found = [Checkpoint.load(tmp_path / "r" / f"fold-{k}" / "checkpoint.pt").calibration for k in range(3)]
    assert all(c["temperature"] > 2 and c["valid_nll_after"] < c["valid_nll_before"] - 0.3 for c in found)


def test_checkpoints_without_calibration_load_with_t_one_and_bad_ones_are_refused(tmp_path):
    import torch

    base = Checkpoint(model="mlp", model_config={}, feature_set="mfcc_stats", feature_config={}, labels=["a", "b"],
                      norm_mean=torch.zeros(3), norm_std=torch.ones(3), train_config={}, state_dict={})
    payload = base.payload()
    del payload["calibration"]  # what a checkpoint written before calibration holds
    torch.save(payload, tmp_path / "old.pt")
    assert Checkpoint.load(tmp_path / "old.pt").temperature == 1.0
    base.calibration = {"method": "temperature", "temperature": 2.5, "valid_nll_before": 1.0}
    assert Checkpoint.load(base.save(tmp_path / "new.pt")).calibration == base.calibration
    for bad in (0.0, -1.0, float("inf"), "2"):
        torch.save({**payload, "calibration": {"temperature": bad}}, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match="temperature"):
            Checkpoint.load(tmp_path / "bad.pt")
