"""scoring/evaluate.py: calibrated probabilities, ECE and Brier per fold and pooled, and the reliability diagram."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from sertool.io.manifest import read_manifest
from sertool.metrics import brier_score, expected_calibration_error
from sertool.models.checkpoint import Checkpoint
from sertool.scoring.evaluate import evaluate_run, score_ids, summary_table
from sertool.training.runs import read_split
from sertool.training.trainer import TrainConfig, train_run
from tests.conftest import FAST_TRAINING


@pytest.fixture(scope="module")
def evaluated(pitch_corpus, tmp_path_factory):
    """An mlp run on the pitch corpus (3 folds, loso), evaluated."""
    _, manifest, _, vectors = pitch_corpus
    run = tmp_path_factory.mktemp("calibrated") / "run"
    config = TrainConfig(**{**FAST_TRAINING, "epochs": 4}, norm="global", threads=1)
    train_run(manifest, vectors, model="mlp", output=run, protocol="loso", valid_speakers=1, train_config=config)
    return run, evaluate_run(run)


def test_metrics_csv_has_ece_brier_and_temperature_per_fold_and_pooled(evaluated):
    run, result = evaluated
    metrics = {(r["fold"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "metrics.csv"))}
    for fold in "012":
        temperature = Checkpoint.load(run / f"fold-{fold}" / "checkpoint.pt").temperature
        assert metrics[fold, "temperature"] == pytest.approx(temperature, abs=1e-6)
        assert (fold, "ECE") in metrics and (fold, "Brier") in metrics
    for key in ("ECE", "Brier"):
        low, high = metrics["pooled", f"{key}_ci95_low"], metrics["pooled", f"{key}_ci95_high"]
        assert low <= metrics["pooled", key] <= high
        assert metrics["mean", key] == pytest.approx(np.mean([metrics[f, key] for f in "012"]), abs=1e-6)
    # pooled ECE and Brier recomputed from predictions.csv (probabilities with 5 decimals)
    rows = list(csv.DictReader(open(run / "predictions.csv")))
    probs = np.array([[float(r[f"p_{c}"]) for c in result.labels] for r in rows])
    truth = np.array([result.labels.index(r["label"]) for r in rows])
    assert metrics["pooled", "ECE"] == pytest.approx(expected_calibration_error(probs, truth), abs=1e-4)
    assert metrics["pooled", "Brier"] == pytest.approx(brier_score(probs, truth), abs=1e-4)
    table = summary_table(result)
    assert "ECE" in table.splitlines()[0] and "Brier" in table and "ECE [" in table


def test_reliability_png_is_written(evaluated):
    run, result = evaluated
    png = run / "reliability.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    bins = result.folds["pooled"]["reliability"]
    assert bins["count"].sum() == 36 and len(bins["edges"]) == 11


def test_evaluate_scores_with_each_fold_temperature(pitch_corpus, evaluated):
    _, manifest, _, vectors = pitch_corpus
    run, _ = evaluated
    checkpoint = dataclasses.replace(Checkpoint.load(run / "fold-1" / "checkpoint.pt"),
                                     calibration={"method": "temperature", "temperature": 2.0})
    ids = read_split(run / "fold-1" / "split.csv")["test"]
    utterances = read_manifest(manifest)
    untempered = dataclasses.replace(checkpoint, calibration={})
    p2 = score_ids(checkpoint, ids, utterances=utterances, stores=[(vectors, None)])
    p1 = score_ids(untempered, ids, utterances=utterances, stores=[(vectors, None)])
    z = np.log(p1.astype(np.float64)) / 2.0  # one vector per utterance: softmax(logits / 2) exactly
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(p2, expected, atol=1e-5)
    assert (p2.argmax(1) == p1.argmax(1)).all()
