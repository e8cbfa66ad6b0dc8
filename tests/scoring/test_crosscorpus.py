"""scoring/crosscorpus.py: the train x test corpus matrix on three generated corpora (logreg on mfcc_stats)."""

from __future__ import annotations

import csv
from dataclasses import replace

import numpy as np
import pytest

import sertool
from sertool.corpora import folder
from sertool.corpora.combine import combine_manifests
from sertool.errors import ConfigError
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import read_manifest, write_manifest
from sertool.io.report import RunReport
from sertool.scoring.crosscorpus import ALL_OTHERS, COLUMNS, split_corpora
from sertool.scoring.cross_corpus import evaluate_cross_corpus, over_shared_classes
from sertool.scoring.evaluate import evaluate_run
from sertool.training.runs import read_split
from sertool.training.splits import make_folds
from tests.conftest import write_audio, write_pitch_corpus

CORPORA = ("north", "south", "west")


def write_corpus(root, name, shift, *, mid=False):
    """A pitch corpus (4 speakers x low/high x 3 clips; ``mid``: a third class at 230 Hz), ids prefixed, corpus set."""
    write_pitch_corpus(root / name, speakers=4, clips=3, seconds=0.4, speaker_step=12, clip_step=4, shift=shift)
    for s in range(4 if mid else 0):
        for i in range(3):
            write_audio(root / name / "mid" / f"spk{s}_{i}.wav", seconds=0.4, freq=230 + 12 * s + 4 * i + shift,
                        seed=10 * s + i)
    rows = folder.prepare(root / name, report=RunReport(), speaker_regex=r"/(spk\d)_")
    return write_manifest([replace(u, id=f"{name}-{u.id}", corpus=name) for u in rows], root / f"{name}.csv")


@pytest.fixture(scope="module")
def matrix(tmp_path_factory):
    """north, south (low/high) and west (low/mid/high), one merged mfcc_stats store, the matrix built once."""
    root = tmp_path_factory.mktemp("xcorpus")
    manifests = [write_corpus(root, "north", 0.0), write_corpus(root, "south", 40.0),
                 write_corpus(root, "west", 20.0, mid=True)]
    stores = [extract_manifest(m, features="mfcc_stats", output=root / "feats").store_path for m in manifests]
    store = sertool.store_merge(stores, output=root / "all.h5").output
    result = sertool.crosscorpus(manifests, store, output=root / "out", model="logreg", folds=2, valid_speakers=1,
                                 settings={"threads": 1})
    return result, manifests, store


def _split_rows(fold_dir):
    with open(fold_dir / "split.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_every_cell_is_scored_over_the_shared_classes_and_written(matrix):
    result, _, _ = matrix
    assert result.corpora == list(CORPORA) and result.skipped == 0 and result.trained == 3 + 3 * 2 + 3
    assert [(c.train, c.test) for c in result.cells] == [(r, t) for r in (*CORPORA, ALL_OTHERS) for t in CORPORA]
    for cell in result.cells:
        assert 0 <= cell.ci_low <= cell.UA <= cell.ci_high <= 1 and 0 <= cell.ECE <= 1, cell
    assert result.cell("west", "west").classes == 3 and result.cell("west", "west").n == 36
    assert result.cell("west", "north").classes == 2 and result.cell("west", "north").n == 24  # model has mid
    assert result.cell("north", "west").classes == 2 and result.cell("north", "west").n == 24  # mid left out
    assert result.cell("north", "north").n == 24 and result.cell(ALL_OTHERS, "west").classes == 2
    out = result.out_dir
    with open(out / "matrix.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 12
    assert float(rows[0]["UA"]) == pytest.approx(result.cells[0].UA, abs=1e-4) and rows[0]["run"] == "runs/cv-north"
    table = (out / "matrix.md").read_text()
    assert table.startswith("| train \\ test | north | south | west |") and f"**{ALL_OTHERS}**" in table
    assert f"{result.cell('south', 'west').UA:.3f} [" in table
    assert (out / "matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_diagonal_is_cross_validated_by_speaker(matrix):
    result, _, _ = matrix
    for corpus in CORPORA:
        tested = []
        for fold_dir in sorted((result.out_dir / "runs" / f"cv-{corpus}").glob("fold-*")):
            rows = _split_rows(fold_dir)
            test_speakers = {r["speaker"] for r in rows if r["role"] == "test"}
            assert test_speakers and not test_speakers & {r["speaker"] for r in rows if r["role"] != "test"}
            assert {r["speaker"].split(":")[0] for r in rows} == {corpus}
            tested += [r["id"] for r in rows if r["role"] == "test"]
        all_ids = [u.id for u in read_manifest(result.out_dir / "data" / f"{corpus}.csv")]
        assert sorted(tested) == sorted(all_ids)  # every utterance tested once
        pooled = evaluate_run(result.out_dir / "runs" / f"cv-{corpus}", output=result.out_dir / "e").folds["pooled"]
        assert result.cell(corpus, corpus).UA == pytest.approx(pooled["UA"])


def test_no_off_diagonal_model_saw_its_test_corpus(matrix):
    result, _, store = matrix
    runs = result.out_dir / "runs"
    for corpus in CORPORA:
        rows = _split_rows(runs / f"train-{corpus}" / "fold-0")
        assert {r["speaker"].split(":")[0] for r in rows} == {corpus} and {r["role"] for r in rows} == {"train",
                                                                                                         "valid"}
    for fold_dir in sorted((runs / "loco").glob("fold-*")):
        rows = _split_rows(fold_dir)
        [tested] = {r["speaker"].split(":")[0] for r in rows if r["role"] == "test"}
        assert tested not in {r["speaker"].split(":")[0] for r in rows if r["role"] != "test"}
    # an off-diagonal cell is evaluate --on's pooled UA of the same model on the same corpus
    cross = evaluate_cross_corpus(runs / "train-north", result.out_dir / "data" / "south.csv", store,
                                  output=result.out_dir / "e-ns")
    assert result.cell("north", "south").UA == pytest.approx(cross.folds["pooled"]["UA"])


def test_the_all_others_row_is_the_loco_protocol(matrix):
    result, manifests, _ = matrix
    rows = combine_manifests(manifests).rows
    folds = make_folds(rows, "loco", valid_speakers=1, seed=0)
    for fold in folds:
        split = read_split(result.out_dir / "runs" / "loco" / f"fold-{fold.index}" / "split.csv")
        assert (sorted(split["train"]), sorted(split["valid"]), sorted(split["test"])) == \
            (sorted(fold.train), sorted(fold.valid), sorted(fold.test))
        cell = result.cell(ALL_OTHERS, fold.name)
        assert cell.run == "runs/loco" and cell.classes == 2  # west's mid is in no other corpus: left out
        assert cell.n == len(fold.test) - (12 if fold.name == "west" else 0)


def test_cross_corpus_evaluation_scores_over_the_shared_classes_renormalised(matrix, tmp_path):
    result, _, store = matrix
    run = result.out_dir / "runs" / "train-west"  # low, mid, high; north has no mid
    cross = evaluate_cross_corpus(run, result.out_dir / "data" / "north.csv", store, output=tmp_path / "e")
    assert cross.labels == ["high", "low"]
    with open(tmp_path / "e" / "predictions.csv", newline="") as fh:
        predictions = list(csv.DictReader(fh))
    assert len(predictions) == 24 and "p_mid" not in predictions[0] and {p["predicted"] for p in predictions} <= {
        "high", "low"}
    assert all(abs(float(p["p_high"]) + float(p["p_low"]) - 1) < 1e-3 for p in predictions)
    assert cross.folds["pooled"]["UA"] == pytest.approx(result.cell("west", "north").UA)


def test_over_shared_classes_renormalises_the_kept_columns():
    probs = np.array([[0.5, 0.3, 0.2], [0.0, 0.0, 1.0]])
    kept = over_shared_classes(probs, ["a", "b", "c"], ["b", "a"])
    np.testing.assert_allclose(kept, [[0.375, 0.625], [0.5, 0.5]], atol=1e-6)  # no mass left: uniform
    assert kept.dtype == np.float32


def test_a_rerun_retrains_nothing_and_gives_the_same_matrix(matrix):
    result, manifests, store = matrix
    checkpoints = sorted(result.out_dir.glob("runs/*/fold-*/checkpoint.pt"))
    stamps = [p.stat().st_mtime_ns for p in checkpoints]
    again = sertool.crosscorpus(manifests, store, output=result.out_dir, model="logreg", folds=2, valid_speakers=1,
                                settings={"threads": 1})
    assert again.trained == 0 and again.skipped == len(checkpoints) == 12
    assert [p.stat().st_mtime_ns for p in checkpoints] == stamps
    assert again.cells == result.cells


def test_one_corpus_is_refused(tmp_path):
    manifest = write_corpus(tmp_path, "north", 0.0)
    with pytest.raises(ConfigError, match="needs two or more"):
        split_corpora([manifest], tmp_path / "data")



def test_a_network_fills_the_matrix_too(matrix, tmp_path):
    _, manifests, store = matrix
    result = sertool.crosscorpus(manifests[:2], store, output=tmp_path / "mlp", model="mlp", folds=2,
                                 valid_speakers=1, settings={"threads": 1, "epochs": 2, "batch_size": 8})
    assert len(result.cells) == 6 and result.trained == 2 + 2 * 2 + 2
    assert all(0 <= c.UA <= 1 and c.classes == 2 for c in result.cells)
    with open(tmp_path / "mlp" / "runs" / "loco" / "fold-0" / "train_log.csv", newline="") as fh:
        assert [r["epoch"] for r in csv.DictReader(fh)] == ["1", "2"]  # trained by epochs: the network path


def test_a_matrix_of_regression_runs_holds_ccc(matrix, tmp_path):
    """--target: every run learns the level column (low 0, mid 0.5, high 1); cells hold the CCC."""
    _, manifests, store = matrix
    level = {"low": "0", "mid": "0.5", "high": "1"}
    leveled = [write_manifest([replace(u, extra={**u.extra, "level": level[u.label]}) for u in read_manifest(m)],
                              tmp_path / m.name) for m in manifests]
    lines = []
    result = sertool.crosscorpus(leveled, store, output=tmp_path / "out", model="ridge", folds=2, valid_speakers=1,
                                 targets="level", settings={"threads": 1}, log=lines.append)
    assert result.score_name == "CCC"
    with open(tmp_path / "out" / "matrix.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["train", "test", "CCC", "ci_low", "ci_high", "n", "targets", "ECE", "Pearson", "run"]
    assert len(rows) == 12 and all(r["targets"] == "1" for r in rows)
    assert all(result.cell(c, c).UA > 0.5 for c in CORPORA)  # within a corpus the tone gives the level
    cell = result.cell("north", "south")  # the same number as evaluate --on of the run behind it
    evaluated = sertool.evaluate(tmp_path / "out" / "runs" / "train-north", on=(leveled[1], store),
                                 output=tmp_path / "on")
    assert cell.UA == pytest.approx(evaluated.folds["pooled"]["CCC_level"], abs=1e-4)
    assert cell.ci_low <= cell.UA <= cell.ci_high and cell.n == 24
    assert "CCC (the mean over the targets)" in (tmp_path / "out" / "matrix.md").read_text()
    assert any(line.startswith("north -> south: CCC") for line in lines)
