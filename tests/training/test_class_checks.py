"""Class checks: a manifest of one class, a validation split of one class, and a test set of one class."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sertool.corpora import folder
from sertool.errors import ConfigError, SertoolError
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import read_manifest, write_manifest
from sertool.io.report import RunReport
from sertool.scoring.cross_corpus import evaluate_cross_corpus
from sertool.scoring.evaluate import evaluate_run, summary_table
from sertool.training.trainer import build_train_config, train_run
from tests.conftest import write_pitch_corpus

REPO = Path(__file__).resolve().parents[2]
MODELS = (("logreg", "vectors"), ("svm", "vectors"), ("mlp", "vectors"), ("light_sernet", "frames"))
PROTOCOLS = (("loso", {}), ("speaker-kfold", {"folds": 2}), ("random", {}), ("all", {}),
             ("holdout", {"test_speakers": ["spk0"]}), ("column", {}))


def _subset(manifest: Path, out: Path, keep, **extra) -> Path:
    """The rows of ``manifest`` that ``keep(utterance)`` accepts, each with the extra columns of ``extra(u)``."""
    rows = [u for u in read_manifest(manifest) if keep(u)]
    for u in rows:
        u.extra.update({k: f(u) for k, f in extra.items()})
    return write_manifest(rows, out)


def _split(u) -> str:
    return {"spk0": "train", "spk1": "valid", "spk2": "test"}[u.speaker]


@pytest.fixture(scope="module")
def one_class(pitch_corpus, tmp_path_factory) -> Path:
    """The pitch corpus's ``high`` rows only, with a ``split`` column for ``--protocol column``."""
    return _subset(pitch_corpus.manifest, tmp_path_factory.mktemp("one") / "high.csv", lambda u: u.label == "high",
                   split=_split)


@pytest.mark.parametrize("model,store", MODELS)
@pytest.mark.parametrize("protocol,options", PROTOCOLS)
def test_a_manifest_of_one_class_is_an_error_before_training(pitch_corpus, one_class, tmp_path, model, store,
                                                             protocol, options):
    with pytest.raises(ConfigError, match=r"high\.csv: every row is of class high; a classifier needs two"):
        train_run(one_class, getattr(pitch_corpus, store), model=model, output=tmp_path / "run", protocol=protocol,
                  valid_speakers=1, train_config=build_train_config({"epochs": 1}, model=model), **options)
    assert not (tmp_path / "run").exists()  # nothing written, nothing trained


def test_a_label_selection_leaving_one_class_names_it(pitch_corpus, tmp_path):
    with pytest.raises(ConfigError, match="--labels / --label-map selection keeps is of class low"):
        train_run(pitch_corpus.manifest, pitch_corpus.vectors, model="logreg", output=tmp_path / "run",
                  protocol="loso", valid_speakers=1, label_set=["low"])
    assert not (tmp_path / "run").exists()


def test_the_cli_says_it_in_one_line(pitch_corpus, one_class, tmp_path):
    done = subprocess.run([sys.executable, "-m", "sertool", "train", str(one_class), str(pitch_corpus.vectors),
                           "-m", "mlp", "-o", str(tmp_path / "run"), "-p", "loso", "--valid-speakers", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"Error: {one_class}: every row is of class high")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("model,store", MODELS)
def test_a_validation_split_of_one_class_is_an_error_before_training(pitch_corpus, tmp_path, model, store):
    manifest = _subset(pitch_corpus.manifest, tmp_path / "m.csv", lambda u: u.speaker != "spk1" or u.label == "low",
                       split=_split)
    with pytest.raises(ConfigError, match="every validation utterance is of class low"):
        train_run(manifest, getattr(pitch_corpus, store), model=model, output=tmp_path / "run", protocol="column",
                  train_config=build_train_config({"epochs": 1}, model=model))
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def lopsided(tmp_path_factory):
    """4 speakers x low/high, but spk3 only ``high``; a logreg run testing spk3 alone (holdout)."""
    root = tmp_path_factory.mktemp("lopsided")
    write_pitch_corpus(root / "audio", speakers=4, clips=4, seconds=0.5, speaker_step=15, clip_step=4)
    rows = [u for u in folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
            if u.speaker != "spk3" or u.label == "high"]
    manifest = write_manifest(rows, root / "m.csv")
    store = extract_manifest(manifest, features="mfcc_stats", output=root / "feats").store_path
    run = root / "run"
    train_run(manifest, store, model="logreg", output=run, protocol="holdout", test_speakers=["spk3"],
              valid_speakers=1, train_config=build_train_config({"norm": "global", "threads": 1}, model="logreg"))
    return manifest, store, run


def test_evaluate_of_a_one_class_test_set_gives_no_ua_interval(lopsided, tmp_path):
    _, _, run = lopsided
    notes = []
    result = evaluate_run(run, output=tmp_path / "eval", log=notes.append)
    pooled = result.folds["pooled"]
    assert pooled["test_classes"] == 1 and "UA" not in pooled["ci"] and "macro_F1" not in pooled["ci"]
    assert any(n.startswith("note: fold 0: every test utterance is of class high") for n in notes), notes
    table = summary_table(result)
    assert "UA [" not in table and "none for UA and F1 (one class)" in table
    assert table.splitlines()[1].endswith(" *") and "n/a" in table
    assert "* test utterances of one class" in table
    with open(tmp_path / "eval" / "metrics.csv", newline="") as fh:
        metrics = {(r["fold"], r["metric"]): r["value"] for r in csv.DictReader(fh)}
    assert metrics["pooled", "test_classes"] == "1" and metrics["0", "test_classes"] == "1"
    assert ("pooled", "UA_ci95_low") not in metrics and ("pooled", "WA_ci95_low") in metrics


def test_cross_corpus_evaluation_over_one_shared_class_is_an_error(lopsided, tmp_path):
    manifest, store, run = lopsided
    high = _subset(manifest, tmp_path / "high.csv", lambda u: u.label == "high")
    with pytest.raises(SertoolError, match="shares only class high with the model"):
        evaluate_cross_corpus(run, high, store, output=tmp_path / "cross")
