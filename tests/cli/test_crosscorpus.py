"""cli/crosscorpus.py: ``sertool crosscorpus`` on one manifest holding two corpora, label options passed on, rerun."""

from __future__ import annotations

import csv
import json

from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import read_manifest, write_manifest
from tests.scoring.test_crosscorpus import write_corpus


def test_crosscorpus_command_writes_the_matrix_and_a_rerun_trains_nothing(tmp_path):
    rows = [*read_manifest(write_corpus(tmp_path, "north", 0.0)), *read_manifest(write_corpus(tmp_path, "south", 40.0))]
    both = write_manifest(rows, tmp_path / "both.csv")  # speakers spk0-3 in each corpus: not yet named per corpus
    store = extract_manifest(both, features="mfcc_stats", output=tmp_path / "feats").store_path
    out = tmp_path / "out"
    args = ["crosscorpus", str(both), str(store), "-m", "logreg", "-o", str(out), "--folds", "2",
            "--valid-speakers", "1", "--threads", "1", "--map", "low=sad", "--map", "high=angry", "--labels", "big4"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("| train \\ test | north | south |\n")  # the table on stdout, logs on stderr
    assert "crosscorpus logreg: 8 fold(s) trained, 0 finished before" in result.stderr
    with open(out / "matrix.csv", newline="") as fh:
        cells = list(csv.DictReader(fh))
    assert [(c["train"], c["test"]) for c in cells] == [("north", "north"), ("north", "south"), ("south", "north"),
                                                        ("south", "south"), ("all others", "north"),
                                                        ("all others", "south")]
    assert {c["classes"] for c in cells} == {"2"} and {c["n"] for c in cells} == {"24"}
    assert {u.speaker for u in read_manifest(out / "data" / "south.csv")} == {f"south:spk{s}" for s in range(4)}
    info = json.loads((out / "runs" / "loco" / "run.json").read_text())
    assert info["protocol"] == "loco" and info["label_selection"]["map"] == {"low": "sad", "high": "angry"}
    assert {u.label for u in read_manifest(out / "runs" / "cv-north" / "manifest.csv")} == {"angry", "sad"}
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "crosscorpus logreg: 0 fold(s) trained, 8 finished before" in again.stderr
    assert again.stdout == result.stdout


def test_crosscorpus_needs_manifests_a_store_and_an_output(tmp_path):
    result = CliRunner().invoke(cli, ["crosscorpus", str(tmp_path / "m.csv"), "-m", "logreg"])
    assert result.exit_code == 2 and "missing MANIFEST, --output" in result.output  # one path: the STORE
