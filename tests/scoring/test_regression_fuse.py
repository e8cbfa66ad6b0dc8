"""``fuse`` and ``evaluate --on`` of regression runs (``train --target``): fused values, cross-corpus CCC."""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sertool import api
from sertool.cli.main import cli
from sertool.errors import ConfigError, ManifestError, SertoolError
from sertool.io.manifest import read_manifest, write_manifest
from sertool.metrics import regression_scores
from sertool.models.checkpoint import Checkpoint
from sertool.scoring.fuse import fit_regression_weights
from sertool.training.trainer import build_train_config, train_run
from tests.conftest import write_pitch_corpus
from tests.training.test_regression import pitch_of, with_targets

TARGETS = ["pitch", "minus"]


def _columns(u) -> dict[str, str]:
    return {"pitch": f"{pitch_of(u.path):.1f}", "minus": f"{1000 - 2 * pitch_of(u.path):.1f}"}


def _train(manifest, store, model, out, targets=TARGETS, **kw):
    train_run(manifest, store, model=model, output=out, protocol="loso", valid_speakers=1, targets=list(targets),
              train_config=build_train_config({"norm": "global", "loss": "ccc"}, model=model), **kw)
    return out


@pytest.fixture(scope="module")
def members(pitch_corpus, tmp_path_factory):
    """Two regression runs of the same folds and targets (ridge, linear svr) and their manifest."""
    root = tmp_path_factory.mktemp("regfuse")
    manifest = with_targets(pitch_corpus.manifest, root / "m.csv", pitch=lambda u: _columns(u)["pitch"],
                            minus=lambda u: _columns(u)["minus"])
    ridge = _train(manifest, pitch_corpus.vectors, "ridge", root / "ridge")
    svr = _train(manifest, pitch_corpus.vectors, "svr", root / "svr", model_settings={"kernel": "linear"})
    return ridge, svr, manifest


@pytest.fixture(scope="module")
def other_corpus(tmp_path_factory):
    """A second pitch corpus (2 speakers, tones shifted 7 Hz) with the target columns; one row's pitch is empty."""
    from sertool.corpora import folder
    from sertool.extraction.pipeline import extract_manifest
    from sertool.io.report import RunReport

    root = tmp_path_factory.mktemp("other")
    write_pitch_corpus(root / "audio", speakers=2, clips=3, seconds=0.5, speaker_step=15, clip_step=4, shift=7)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    rows = [replace(u, extra={**u.extra, "pitch": f"{pitch_of(u.path) + 7:.1f}",
                              "minus": f"{1000 - 2 * (pitch_of(u.path) + 7):.1f}"}) for u in rows]
    rows[0] = replace(rows[0], extra={**rows[0].extra, "pitch": ""})
    manifest = write_manifest(rows, root / "other.csv")
    store = extract_manifest(manifest, features="mfcc_stats", output=root / "feats").store_path
    return manifest, store


def _predictions(path: Path) -> dict[str, dict[str, str]]:
    return {r["id"]: r for r in csv.DictReader(open(path))}


def _metrics(path: Path) -> dict[tuple[str, str], float]:
    return {(r["fold"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(path))}


def test_the_weight_grid_keeps_the_best_mean_ccc():
    rng = np.random.default_rng(0)
    true = rng.normal(size=(40, 2))
    good, bad = true + 0.1 * rng.normal(size=true.shape), rng.normal(size=true.shape)
    weights, ccc = fit_regression_weights([bad, good], true, step=0.25)
    assert weights == [0.0, 1.0]
    assert ccc == pytest.approx(np.mean([regression_scores(true[:, k], good[:, k])["CCC"] for k in range(2)]))


def test_a_fused_regression_run_evaluates_at_least_as_well_as_the_worse_member(members, tmp_path):
    ridge, svr, _ = members
    result = api.fuse([ridge, svr], output=tmp_path / "fused")
    assert result.score_name == "CCC" and len(result.weights) == 3
    info = json.loads((tmp_path / "fused" / "run.json").read_text())
    assert info["task"] == "regression" and info["targets"] == TARGETS and info["labels"] == []
    ckpt = Checkpoint.load(tmp_path / "fused" / "fold-0" / "checkpoint.pt")
    assert ckpt.is_fusion and ckpt.is_regression and list(ckpt.targets) == TARGETS
    scores = {}
    for run in (ridge, svr, tmp_path / "fused"):
        evaluated = api.evaluate(run, output=tmp_path / f"eval-{run.name}")
        assert evaluated.task == "regression"
        scores[run.name] = evaluated.folds["pooled"]["CCC"]
    assert scores["fused"] >= min(scores["ridge"], scores["svr"]) - 1e-9
    fused = _predictions(tmp_path / "eval-fused" / "predictions.csv")
    parts = [_predictions(tmp_path / f"eval-{run.name}" / "predictions.csv") for run in (ridge, svr)]
    assert set(fused) == set(parts[0]) and len(fused) == 36
    for i, row in fused.items():  # each test utterance: its fold's weighted mean of the members' values
        w = result.weights[int(row["fold"])]
        for t in TARGETS:
            expected = w[0] * float(parts[0][i][f"pred_{t}"]) + w[1] * float(parts[1][i][f"pred_{t}"])
            assert float(row[f"pred_{t}"]) == pytest.approx(expected, abs=2e-4)
            assert row[f"true_{t}"] == parts[0][i][f"true_{t}"]
    assert (tmp_path / "eval-fused" / "scatter_pitch.png").stat().st_size > 1000
    given = api.fuse([ridge, svr], output=tmp_path / "given", weights=[1, 3])  # weights that mix both members
    assert given.weights == [[0.25, 0.75]] * 3
    api.evaluate(tmp_path / "given", output=tmp_path / "eval-given")
    for i, row in _predictions(tmp_path / "eval-given" / "predictions.csv").items():
        expected = 0.25 * float(parts[0][i]["pred_minus"]) + 0.75 * float(parts[1][i]["pred_minus"])
        assert float(row["pred_minus"]) == pytest.approx(expected, abs=2e-4)


def test_predict_of_a_fused_checkpoint_gives_the_weighted_mean_of_the_members(members, tmp_path):
    ridge, svr, manifest = members
    out = CliRunner().invoke(cli, ["fuse", str(ridge), str(svr), "-o", str(tmp_path / "fused"), "--weights", "1,3"])
    assert out.exit_code == 0, out.output
    assert "valid CCC" in out.output
    rows = {}
    for name, ckpt in (("fused", tmp_path / "fused"), ("ridge", ridge), ("svr", svr)):
        api.predict_files(ckpt / "fold-1" / "checkpoint.pt", manifest, output=tmp_path / f"{name}.csv")
        rows[name] = _predictions(tmp_path / f"{name}.csv")
    assert len(rows["fused"]) == 36
    for i, row in rows["fused"].items():
        for t in TARGETS:
            assert f"pred_{t}" in row and f"prob_{t}" not in row
            expected = 0.25 * float(rows["ridge"][i][f"pred_{t}"]) + 0.75 * float(rows["svr"][i][f"pred_{t}"])
            assert float(row[f"pred_{t}"]) == pytest.approx(expected, rel=1e-4, abs=1e-3)


def test_refit_members_fuse_only_with_given_weights(members, pitch_corpus, tmp_path):
    ridge, _, manifest = members
    refit = _train(manifest, pitch_corpus.vectors, "ridge", tmp_path / "refit", model_settings={"refit": True})
    out = CliRunner().invoke(cli, ["fuse", str(ridge), str(refit), "-o", str(tmp_path / "fitted")])
    assert out.exit_code == 1 and "refit on the validation speakers" in out.output and "--weights" in out.output
    fused = api.fuse([ridge, refit], output=tmp_path / "given", weights=[1, 1])
    assert fused.weights == [[0.5, 0.5]] * 3 and all(np.isnan(fused.valid_ua))  # no unseen validation rows to score on


def test_fuse_refuses_mixed_runs_and_other_targets_in_one_line(members, pitch_corpus, tmp_path):
    ridge, _, manifest = members
    classes = tmp_path / "cls"
    train_run(pitch_corpus.manifest, pitch_corpus.vectors, model="logreg", output=classes, protocol="loso",
              valid_speakers=1, train_config=build_train_config({"norm": "global"}, model="logreg"))
    with pytest.raises(SertoolError, match="a classification run, but .* is a regression run"):
        api.fuse([ridge, classes], output=tmp_path / "mixed")
    with pytest.raises(SertoolError, match="a regression run, but .* is a classification run"):
        api.fuse([classes, ridge], output=tmp_path / "mixed2")
    pitch_only = _train(manifest, pitch_corpus.vectors, "ridge", tmp_path / "pitch", targets=["pitch"])
    out = CliRunner().invoke(cli, ["fuse", str(ridge), str(pitch_only), "-o", str(tmp_path / "other")])
    assert out.exit_code == 1 and "Traceback" not in out.output
    assert "targets ['pitch'] differ" in out.output and len(out.output.strip().splitlines()) == 1


def test_evaluate_on_another_corpus_scores_every_fold_model_and_their_ensemble(members, other_corpus, tmp_path):
    ridge, _, _ = members
    manifest, store = other_corpus
    lines = []
    result = api.evaluate(ridge, on=(manifest, store), output=tmp_path / "cross", log=lines.append)
    assert result.task == "regression" and result.labels == TARGETS
    assert set(result.folds) == {"0", "1", "2", "pooled", "mean", "std"}
    assert any("left out 1 row" in line for line in lines)
    rows = _predictions(tmp_path / "cross" / "predictions.csv")
    assert len(rows) == 11 and {r["fold"] for r in rows.values()} == {"ensemble"}
    by_id = {u.id: u for u in read_manifest(manifest)}
    assert all(float(r["true_minus"]) == float(by_id[i].extra["minus"]) for i, r in rows.items())
    per_fold = []
    for fold in range(3):  # the ensemble is the mean of the fold models' values
        api.predict_files(ridge / f"fold-{fold}" / "checkpoint.pt", manifest, output=tmp_path / f"p{fold}.csv")
        per_fold.append(_predictions(tmp_path / f"p{fold}.csv"))
    for i, r in rows.items():
        assert float(r["pred_pitch"]) == pytest.approx(np.mean([float(p[i]["pred_pitch"]) for p in per_fold]),
                                                       abs=1e-3)
    metrics = _metrics(tmp_path / "cross" / "metrics.csv")
    true = np.array([float(r["true_pitch"]) for r in rows.values()])
    pred = np.array([float(r["pred_pitch"]) for r in rows.values()])
    assert metrics["pooled", "CCC_pitch"] == pytest.approx(regression_scores(true, pred)["CCC"], abs=1e-4)
    assert metrics["pooled", "CCC_pitch_ci95_low"] <= metrics["pooled", "CCC_pitch"]
    assert metrics["pooled", "CCC_pitch"] > 0.5 and metrics["pooled", "folds_scored"] == 3
    assert (tmp_path / "cross" / "scatter_minus.png").stat().st_size > 1000


def test_evaluate_on_through_the_cli_writes_the_default_folder(members, other_corpus, tmp_path):
    ridge, _, _ = members
    manifest, store = other_corpus
    out = CliRunner().invoke(cli, ["evaluate", str(ridge), "--on", str(manifest), str(store)])
    assert out.exit_code == 0, out.output
    assert "CCC pitch" in out.output and "left out 1 row(s) of other.csv" in out.output
    assert (ridge / "cross-other" / "metrics.csv").is_file() and (ridge / "cross-other" / "scatter_pitch.png").is_file()


def test_evaluate_on_names_a_missing_target_column(members, other_corpus, tmp_path):
    ridge, svr, _ = members
    manifest, store = other_corpus
    rows = [replace(u, extra={k: v for k, v in u.extra.items() if k != "minus"}) for u in read_manifest(manifest)]
    lacking = write_manifest(rows, tmp_path / "lacking.csv")
    with pytest.raises(ManifestError, match="no column 'minus'"):
        api.evaluate(ridge, on=(lacking, store))
    out = CliRunner().invoke(cli, ["evaluate", str(ridge), "--on", str(lacking), str(store)])
    assert out.exit_code == 1 and out.output.startswith("Error: ") and "'minus'" in out.output
    assert len(out.output.strip().splitlines()) == 1
    with pytest.raises(ConfigError, match="label"):
        api.evaluate(ridge, on=(manifest, store), label_map={"a": "b"})
    api.fuse([ridge, svr], output=tmp_path / "fused", weights=[1, 1])
    with pytest.raises(SertoolError, match="fused run"):
        api.evaluate(tmp_path / "fused", on=(manifest, store))


def test_the_report_shows_evaluate_on_of_a_regression_run_as_ccc(members, other_corpus, tmp_path):
    from sertool.scoring.html_report import write_report

    ridge, _, _ = members
    run = tmp_path / "ridge"
    shutil.copytree(ridge, run)
    manifest, store = other_corpus
    api.evaluate(run, output=run)
    result = api.evaluate(run, on=(manifest, store), output=run / "cross-other")
    pooled = result.folds["pooled"]
    page = write_report([run], tmp_path / "r.html").output.read_text()  # a regression run's report: no KeyError
    assert "UA or CCC [95 % CI]" in page and "cross-other" in page and f"{pooled['CCC']:.3f}" in page
    chosen = Checkpoint.load(run / "fold-0" / "checkpoint.pt").model_config["alpha"]
    assert re.search(rf"alpha = {chosen:g} \(validation CCC \d\.\d{{3}}\) of ", page)  # what validation chose


def test_the_report_of_regression_runs_compares_ccc_and_describes_a_fusion(members, tmp_path):
    from sertool.scoring.html_report import write_report

    ridge, svr, _ = members
    fused = api.fuse([ridge, svr], output=tmp_path / "fused", weights=[1, 1]).out_dir
    api.evaluate(fused, output=fused)
    copies = []
    for run in (ridge, svr):
        copies.append(tmp_path / run.name)
        shutil.copytree(run, copies[-1])
        api.evaluate(copies[-1], output=copies[-1])
    page = write_report([fused, *copies], tmp_path / "r.html").output.read_text()
    assert "CCC_fold_mean" in page and "UA_fold_mean" not in page  # the regression compare table's columns
    assert "one row per run and target" in page
    assert "fusion of ridge, svr (each member chose its own)" in page
    assert "? / ? / ?" not in page  # the fused folds' sizes come from the members' folds
