"""evaluate / compare / fuse of regression runs (``train --target``): CCC, Pearson, MAE, RMSE per target."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sertool import api
from sertool.cli.main import cli
from sertool.errors import ConfigError, SertoolError
from sertool.metrics import regression_scores
from sertool.scoring.evaluate import evaluate_run
from sertool.scoring.regression import evaluate_regression_run, summary_table
from sertool.training.trainer import build_train_config, train_run
from tests.training.test_regression import pitch_of, with_targets


@pytest.fixture(scope="module")
def two_targets(pitch_corpus, tmp_path_factory):
    """A ridge run (loso, 3 folds) of two targets, ``pitch`` and ``minus``, and its manifest."""
    root = tmp_path_factory.mktemp("regeval")
    manifest = with_targets(pitch_corpus.manifest, root / "m.csv", pitch=lambda u: f"{pitch_of(u.path):.1f}",
                            minus=lambda u: f"{1000 - 2 * pitch_of(u.path):.1f}")
    train_run(manifest, pitch_corpus.vectors, model="ridge", output=root / "run", protocol="loso", valid_speakers=1,
              targets=["pitch", "minus"], train_config=build_train_config({"norm": "global", "loss": "ccc"},
                                                                          model="ridge"))
    return root / "run", manifest


def _metrics(path: Path) -> dict[tuple[str, str], float]:
    return {(r["fold"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(path))}


def test_each_target_is_evaluated_per_fold_and_pooled(two_targets, tmp_path):
    run, _ = two_targets
    result = evaluate_regression_run(run, output=tmp_path)
    assert result.task == "regression" and result.labels == ["pitch", "minus"]
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    assert list(rows[0]) == ["id", "speaker", "fold", "true_pitch", "pred_pitch", "true_minus", "pred_minus"]
    assert len(rows) == 36 and {r["fold"] for r in rows} == {"0", "1", "2"}
    metrics = _metrics(tmp_path / "metrics.csv")
    for target in ("pitch", "minus"):
        true = np.array([float(r[f"true_{target}"]) for r in rows])
        pred = np.array([float(r[f"pred_{target}"]) for r in rows])
        for name, value in regression_scores(true, pred).items():  # pooled = the scores of predictions.csv
            assert metrics["pooled", f"{name}_{target}"] == pytest.approx(value, abs=1e-4)
            low, high = metrics["pooled", f"{name}_{target}_ci95_low"], metrics["pooled", f"{name}_{target}_ci95_high"]
            assert low <= value + 1e-6 and value - 1e-6 <= high
        fold0 = [r for r in rows if r["fold"] == "0"]
        ccc0 = regression_scores([float(r[f"true_{target}"]) for r in fold0],
                                 [float(r[f"pred_{target}"]) for r in fold0])["CCC"]
        assert metrics["0", f"CCC_{target}"] == pytest.approx(ccc0, abs=1e-4)
        assert metrics["pooled", f"CCC_{target}"] > 0.8
        assert (tmp_path / f"scatter_{target}.png").stat().st_size > 1000
    assert metrics["pooled", "folds_scored"] == metrics["pooled", "folds_total"] == 3
    table = summary_table(result)
    assert "CCC pitch" in table and "CCC minus" in table and "pooled minus" in table


def test_true_values_are_the_manifest_columns(two_targets, tmp_path):
    run, manifest = two_targets
    evaluate_regression_run(run, output=tmp_path)
    rows = list(csv.DictReader(open(tmp_path / "predictions.csv")))
    by_id = {r["id"]: r for r in csv.DictReader(open(manifest))}
    assert all(float(r["true_pitch"]) == float(by_id[r["id"]]["pitch"]) for r in rows)
    assert all(r["speaker"] == by_id[r["id"]]["speaker"] for r in rows)


def test_the_cli_and_api_evaluate_a_regression_run(two_targets, tmp_path):
    run, _ = two_targets
    out = CliRunner().invoke(cli, ["evaluate", str(run), "-o", str(tmp_path / "cli")])
    assert out.exit_code == 0, out.output
    assert "CCC pitch" in out.output and "scatter_<target>.png" in out.output
    assert api.evaluate(run, output=tmp_path / "api").folds["pooled"]["CCC_pitch"] > 0.8
    with pytest.raises(ConfigError, match="a regression run .*--label-map"):
        api.evaluate(run, on=(str(run / "x.csv"), str(run / "x.h5")), label_map={"a": "b"})
    with pytest.raises(SertoolError, match="a regression model .*evaluate_regression_run"):
        evaluate_run(run, output=tmp_path / "classic")


def test_compare_bootstraps_the_ccc_difference(two_targets, tmp_path):
    run, _ = two_targets
    a, b = tmp_path / "a", tmp_path / "b"
    for copy in (a, b):
        shutil.copytree(run, copy)
        evaluate_regression_run(copy)
    rows = list(csv.DictReader(open(b / "predictions.csv")))
    for r in rows:  # b: the same predictions moved 30 Hz up, a worse CCC
        r["pred_pitch"] = f"{float(r['pred_pitch']) + 30:.5f}"
    with open(b / "predictions.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = api.compare([a, b], output=tmp_path / "table.csv")
    by = {(Path(r["run"]).name, r["target"]): r for r in result.rows}
    assert set(by) == {("a", "pitch"), ("a", "minus"), ("b", "pitch"), ("b", "minus")}
    assert by["b", "pitch"]["CCC_diff"] < 0 and by["b", "pitch"]["p_not_better"] == 1.0
    assert by["b", "minus"]["CCC_diff"] == pytest.approx(0.0)
    assert "CCC_diff" in result.table and "target" in open(tmp_path / "table.csv").readline()


def test_regression_and_classification_runs_do_not_mix_in_compare(two_targets, pitch_corpus, tmp_path):
    run, _ = two_targets
    shutil.copytree(run, tmp_path / "reg")
    evaluate_regression_run(tmp_path / "reg")
    train_run(pitch_corpus.manifest, pitch_corpus.vectors, model="logreg", output=tmp_path / "cls", protocol="loso",
              valid_speakers=1, train_config=build_train_config({"norm": "global"}, model="logreg"))
    evaluate_run(tmp_path / "cls")
    with pytest.raises(SertoolError, match="not an evaluated regression run"):
        api.compare([tmp_path / "reg", tmp_path / "cls"])


def test_fuse_refuses_a_regression_run_with_a_classifier_in_one_line(two_targets, pitch_corpus, tmp_path):
    run, _ = two_targets  # fusing regression runs: tests/scoring/test_regression_fuse.py
    train_run(pitch_corpus.manifest, pitch_corpus.vectors, model="logreg", output=tmp_path / "cls", protocol="loso",
              valid_speakers=1, train_config=build_train_config({"norm": "global"}, model="logreg"))
    with pytest.raises(SertoolError, match="a classification run, but .* is a regression run"):
        api.fuse([run, tmp_path / "cls"], output=tmp_path / "fused")
