"""scoring/compare.py: one table of evaluated runs with a paired bootstrap of each against the first."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.errors import SertoolError
from sertool.scoring.compare import compare_runs
from sertool.scoring.evaluate import evaluate_run
from sertool.training.trainer import build_train_config, train_run


def test_compare_runs_with_a_paired_bootstrap(pitch_corpus, tmp_path):
    g, s = tmp_path / "g", tmp_path / "s"
    for run, norm in ((g, "global"), (s, "speaker")):
        train_run(pitch_corpus.manifest, pitch_corpus.vectors, model="logreg", output=run, protocol="loso",
                  valid_speakers=1, train_config=build_train_config({"norm": norm}, model="logreg"))
    with pytest.raises(SertoolError, match="run `sertool evaluate .*` first"):
        compare_runs([g])
    results = [evaluate_run(run) for run in (g, s)]
    rows = compare_runs([g, s])
    assert [r["UA"] for r in rows] == pytest.approx([r.folds["pooled"]["UA"] for r in results])
    assert rows[0]["UA_diff"] is None and rows[0]["p_not_better"] is None
    assert rows[1]["UA_diff"] == pytest.approx(rows[1]["UA"] - rows[0]["UA"])
    low, high = rows[1]["UA_diff_ci95"]
    assert low <= rows[1]["UA_diff"] <= high
    # the same resamples score both runs: swapped, every difference changes sign
    swapped = compare_runs([s, g])[1]
    assert swapped["UA_diff"] == pytest.approx(-rows[1]["UA_diff"])
    assert swapped["UA_diff_ci95"] == pytest.approx((-high, -low))
    # a run against itself: no difference in any resample, so never better
    itself = compare_runs([g, g])[1]
    assert (itself["UA_diff"], itself["UA_diff_ci95"], itself["p_not_better"]) == (0.0, (0.0, 0.0), 1.0)
    result = CliRunner().invoke(cli, ["compare", str(g), str(s), "-o", str(tmp_path / "c.csv")])
    assert result.exit_code == 0 and result.output.startswith("| run |")
    assert [r["run"] for r in csv.DictReader(open(tmp_path / "c.csv"))] == [str(g), str(s)]
