"""evaluate --on: a trained run scored on another corpus, its labels mapped, unknown labels left out."""

from __future__ import annotations

import csv

from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.io.manifest import Utterance, read_manifest, write_manifest
from sertool.training.trainer import build_train_config, train_run


def test_cross_corpus_evaluation_with_a_label_map(pitch_corpus, tmp_path):
    _, manifest, _, vectors = pitch_corpus
    train_run(manifest, vectors, model="logreg", output=tmp_path / "r", protocol="loso", valid_speakers=1,
              train_config=build_train_config({"norm": "global"}, model="logreg"))
    rows = read_manifest(manifest)
    renamed = [Utterance(**{**u.__dict__, "label": {"low": "grave", "high": "high"}[u.label]}) for u in rows]
    renamed[0] = Utterance(**{**renamed[0].__dict__, "label": "whisper"})  # a label the model does not know
    other = write_manifest(renamed, tmp_path / "other.csv")
    (tmp_path / "map.csv").write_text("from,to\ngrave,low\n")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "r"), "--on", str(other), str(vectors),
                                      "--label-map", str(tmp_path / "map.csv")])
    assert result.exit_code == 0, result.output
    assert "left out" in result.output and "whisper (1)" in result.output
    predictions = list(csv.DictReader(open(tmp_path / "r" / "cross-other" / "predictions.csv")))
    assert sorted(p["id"] for p in predictions) == sorted(u.id for u in rows[1:])
    assert {p["id"]: p["label"] for p in predictions} == {u.id: u.label for u in rows[1:]}  # grave mapped to low
    metrics = {(m["fold"], m["metric"]) for m in csv.DictReader(open(tmp_path / "r" / "cross-other" / "metrics.csv"))}
    assert {("0", "UA"), ("2", "UA"), ("pooled", "UA"), ("pooled", "UA_ci95_low"), ("std", "UA")} <= metrics
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "r"), "--label-map", str(tmp_path / "map.csv")])
    assert result.exit_code == 2 and "--on" in result.output
