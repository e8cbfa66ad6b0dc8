"""scoring/loco.py: a leave-one-corpus-out run is evaluated over the classes each fold shares with its test corpus."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np

from sertool import api
from sertool.corpora import folder
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import write_manifest
from sertool.io.report import RunReport
from tests.conftest import write_pitch_corpus


def _corpus(root, name, shift, extra_label=None):
    write_pitch_corpus(root / name, speakers=3, clips=4, seconds=0.4, speaker_step=15, clip_step=4, shift=shift)
    rows = folder.prepare(root / name, report=RunReport(), speaker_regex=r"/(spk\d)_")
    rows = [replace(u, id=f"{name}-{u.id}", corpus=name) for u in rows]
    if extra_label:  # every third low clip carries a class the other corpus lacks
        rows = [replace(u, label=extra_label) if u.label == "low" and k % 3 == 0 else u for k, u in enumerate(rows)]
    return write_manifest(rows, root / f"{name}.csv")


def test_each_fold_is_scored_over_the_classes_its_model_and_test_corpus_share(tmp_path):
    manifests = [_corpus(tmp_path, "north", 0.0), _corpus(tmp_path, "south", 40.0, extra_label="mid")]
    stores = [extract_manifest(m, features="mfcc_stats", output=tmp_path / "feats").store_path for m in manifests]
    merged = api.store_merge(stores, output=tmp_path / "both.h5").output
    run = tmp_path / "run"
    api.train(manifests, merged, output=run, model="logreg", protocol="loco", valid_speakers=1,
              settings={"norm": "set"})
    lines = []
    result = api.evaluate(run, log=lines.append)
    assert set(result.folds) == {"north", "south", "pooled", "mean", "std"}
    assert result.labels == ["high", "low"]  # the union of the classes each fold shares with its test corpus
    assert result.folds["north"]["classes"] == 2 and result.folds["south"]["classes"] == 2
    assert result.folds["north"]["temperature"] > 0  # each fold's calibrated temperature is reported
    assert any("left out" in line and "mid" in line for line in lines)  # south's mid clips: north's model lacks it
    rows = list(csv.DictReader(open(run / "predictions.csv")))
    assert {r["fold"] for r in rows} == {"north", "south"} and not any(r["label"] == "mid" for r in rows)
    for r in rows:  # probabilities renormalised over the shared classes
        assert abs(float(r["p_high"]) + float(r["p_low"]) - 1) < 1e-3
    south = [r for r in rows if r["fold"] == "south"]
    ua = np.mean([np.mean([r["predicted"] == c for r in south if r["label"] == c]) for c in ("high", "low")])
    assert abs(ua - result.folds["south"]["UA"]) < 1e-6
    assert (run / "metrics.csv").is_file() and (run / "reliability.png").is_file()
