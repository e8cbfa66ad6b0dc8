"""Run folders with missing folds or damaged files: one-line errors naming the file and the fix, never a traceback.

Every case runs the real command line in a subprocess (``python -m sertool``) on a copy of one small
trained run (an mlp, one epoch, three leave-one-speaker-out folds of the pitch corpus), damaged one way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sertool.errors import SertoolError
from sertool.scoring.compare import compare_runs
from sertool.scoring.crosscorpus import complete_folds
from sertool.scoring.evaluate import evaluate_run
from sertool.training.folds import repair_log
from sertool.training.runs import LOG_COLUMNS, read_split
from sertool.training.trainer import build_train_config, train_run

REPO = Path(__file__).resolve().parents[2]
#: one epoch of the mlp, as the options of TRAIN give it (a rerun of TRAIN resumes the fixture's run)
SETTINGS = {"epochs": 1, "batch_size": 8, "lr": 3e-3, "specaugment": False, "norm": "global", "threads": 1}
TRAIN = ("-m", "mlp", "-p", "loso", "--valid-speakers", 1, "--epochs", 1, "--batch-size", 8, "--lr", 0.003,
         "--no-augment", "--norm", "global", "--threads", 1)


def sertool(*args) -> subprocess.CompletedProcess:
    """``python -m sertool ARGS`` from this checkout, one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "sertool", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600)


def assert_one_line_error(done: subprocess.CompletedProcess, *names: str) -> str:
    """Exit code 1, no traceback, and a last stderr line ``Error: ...`` naming each of ``names``."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: "), done.stderr
    for name in names:
        assert name in last, last
    return last


@pytest.fixture(scope="module")
def trained(pitch_corpus, tmp_path_factory) -> Path:
    """An mlp run (1 epoch, loso, 3 folds) of the pitch corpus, evaluated once."""
    run = tmp_path_factory.mktemp("damage") / "run"
    train_run(pitch_corpus.manifest, pitch_corpus.vectors, model="mlp", output=run, protocol="loso",
              valid_speakers=1, train_config=build_train_config(SETTINGS, model="mlp"))
    evaluate_run(run)
    return run


@pytest.fixture
def run(trained, tmp_path) -> Path:
    """A fresh copy of the trained run, to damage."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def _cut(path: Path, keep: float = 0.5) -> None:
    """Truncate ``path`` to ``keep`` of its bytes (a copy interrupted half-way)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _cut_mid_line(path: Path) -> None:
    """Truncate a CSV half-way, inside a row: before the last comma of the row at its middle."""
    lines = path.read_text().splitlines(keepends=True)
    middle = len(lines) // 2
    path.write_text("".join(lines[:middle]) + lines[middle][: lines[middle].rindex(",")])


def _cut_at_line(path: Path) -> None:
    """Keep the first half of a CSV's lines (a cut that leaves every kept row whole)."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))


RUN_JSON_DAMAGE = {
    "truncated": lambda p: _cut(p),
    "empty": lambda p: p.write_text(""),
    "a list": lambda p: p.write_text("[1, 2]"),
    "folds not a number": lambda p: p.write_text(json.dumps({**json.loads(p.read_text()), "folds": "three"})),
    "not utf-8": lambda p: p.write_bytes(b"\xff\xfe\x00garbage"),
}


@pytest.mark.parametrize("damage", list(RUN_JSON_DAMAGE))
def test_evaluate_names_a_damaged_run_json(run, damage):
    RUN_JSON_DAMAGE[damage](run / "run.json")
    last = assert_one_line_error(sertool("evaluate", run), "run.json is damaged", "sertool train")
    assert f"-o {run}" in last


SPLIT_DAMAGE = {
    "cut inside a row": _cut_mid_line,
    "cut at a line end": _cut_at_line,
    "no header": lambda p: p.write_text("\n".join(p.read_text().splitlines()[1:]) + "\n"),
    "an unknown role": lambda p: p.write_text(p.read_text().replace(",test\n", ",tset\n", 1)),
    "binary": lambda p: p.write_bytes(b"\x00\xff" * 40),
}


@pytest.mark.parametrize("damage", list(SPLIT_DAMAGE))
def test_evaluate_names_a_damaged_split_csv(run, damage):
    SPLIT_DAMAGE[damage](run / "fold-1" / "split.csv")
    assert_one_line_error(sertool("evaluate", run), str(run / "fold-1" / "split.csv"), "damaged", "sertool train")


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_evaluate_names_a_damaged_checkpoint_and_train_trains_that_fold_again(run, pitch_corpus, damage):
    checkpoint = run / "fold-2" / "checkpoint.pt"
    checkpoint.write_bytes(b"") if damage == "empty" else _cut(checkpoint)
    assert_one_line_error(sertool("evaluate", run), str(checkpoint), "sertool train")
    others = (run / "fold-0" / "checkpoint.pt").stat().st_mtime_ns
    done = sertool("train", pitch_corpus.manifest, pitch_corpus.vectors, "-o", run, *TRAIN)
    assert done.returncode == 0 and "1 fold(s) trained, 2 finished before" in done.stderr, done.stderr
    assert "training fold-2 again" in done.stderr
    assert (run / "fold-0" / "checkpoint.pt").stat().st_mtime_ns == others  # finished work is kept
    assert sertool("evaluate", run).returncode == 0


def test_train_rewrites_a_damaged_run_json_and_split_csv(run, pitch_corpus):
    before = json.loads((run / "run.json").read_text())
    want = read_split(run / "fold-0" / "split.csv")
    _cut(run / "run.json")
    _cut_mid_line(run / "fold-0" / "split.csv")
    done = sertool("train", pitch_corpus.manifest, pitch_corpus.vectors, "-o", run, *TRAIN)
    assert done.returncode == 0 and "0 fold(s) trained, 3 finished before" in done.stderr, done.stderr
    assert "run.json is damaged" in done.stderr and "split.csv is damaged" in done.stderr
    assert json.loads((run / "run.json").read_text()) == before
    assert read_split(run / "fold-0" / "split.csv") == want


def test_train_names_a_damaged_state_pt(run, pitch_corpus):
    (run / "fold-1" / "state.pt").write_bytes(b"")
    done = sertool("train", pitch_corpus.manifest, pitch_corpus.vectors, "-o", run, *TRAIN)
    assert_one_line_error(done, str(run / "fold-1" / "state.pt"), "damaged", "delete it")
    assert (run / "fold-1" / "checkpoint.pt").stat().st_size > 0  # nothing deleted for the user


def test_evaluate_refuses_a_run_with_a_missing_fold(run):
    shutil.rmtree(run / "fold-1")
    assert_one_line_error(sertool("evaluate", run), "fold-1", "1 of its 3 folds", "sertool train",
                          "--allow-missing-folds")
    (run / "fold-2" / "checkpoint.pt").unlink()
    assert_one_line_error(sertool("evaluate", run), "fold-1, fold-2", "2 of its 3 folds")


def test_allow_missing_folds_scores_the_rest_and_says_so(run):
    shutil.rmtree(run / "fold-1")
    done = sertool("evaluate", run, "--allow-missing-folds")
    assert done.returncode == 0, done.stderr
    assert "PARTIAL: 2 of 3 folds scored" in done.stderr
    assert "2 fold(s) scored, 1 not scored (no checkpoint), 0 failed" in done.stderr
    metrics = (run / "metrics.csv").read_text()
    assert "pooled,folds_scored,2" in metrics and "pooled,folds_total,3" in metrics
    assert compare_runs([run])[0]["folds"] == "2 of 3"


def test_a_run_trained_on_one_fold_is_scored_as_partial(pitch_corpus, tmp_path):
    run = tmp_path / "one"
    train_run(pitch_corpus.manifest, pitch_corpus.vectors, model="mlp", output=run, protocol="loso", fold=1,
              valid_speakers=1, train_config=build_train_config(SETTINGS, model="mlp"))
    done = sertool("evaluate", run)
    assert done.returncode == 0, done.stderr
    assert "fold-0, fold-2 never trained" in done.stderr and "PARTIAL: 1 of 3 folds scored" in done.stderr
    assert "pooled,folds_scored,1" in (run / "metrics.csv").read_text()


def test_cross_corpus_evaluation_and_fuse_refuse_missing_folds(run, pitch_corpus, tmp_path):
    (run / "fold-0" / "checkpoint.pt").unlink()
    on = sertool("evaluate", run, "--on", pitch_corpus.manifest, pitch_corpus.vectors)
    assert_one_line_error(on, "fold-0", "--allow-missing-folds")
    other = Path(shutil.copytree(run, tmp_path / "other"))
    fused = sertool("fuse", run, other, "-o", tmp_path / "fused")
    assert_one_line_error(fused, "fold-0", "--allow-missing-folds")
    with pytest.raises(SertoolError, match="rerun the same `sertool crosscorpus`"):
        complete_folds(run)


def test_a_stray_folder_named_like_a_fold_is_ignored(run):
    shutil.copytree(run / "fold-0", run / "fold-old")  # a backup copy, checkpoint and all
    shutil.copytree(run / "fold-1", run / "fold-1-backup")
    done = sertool("evaluate", run)
    assert done.returncode == 0, done.stderr
    assert "3 fold(s) scored" in done.stderr


def test_a_damaged_train_log_leaves_the_fold_out_of_the_curves(run):
    (run / "fold-0" / "train_log.csv").write_text(",".join(LOG_COLUMNS) + "\n1,0.5\n")  # cut inside its row
    done = sertool("evaluate", run)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"{run / 'fold-0' / 'train_log.csv'} is damaged" in done.stderr
    assert (run / "training_curves.png").stat().st_size > 0


def test_repair_log_keeps_the_complete_rows(tmp_path):
    log = tmp_path / "train_log.csv"
    log.write_text(",".join(LOG_COLUMNS) + "\n1,0.9,0.8,0.5,0.5,0.003,1.2\n2,0.7,0.")
    repair_log(log)
    assert log.read_text().splitlines() == [",".join(LOG_COLUMNS), "1,0.9,0.8,0.5,0.5,0.003,1.2"]
    log.write_text("")
    repair_log(log)
    assert log.read_text().splitlines() == [",".join(LOG_COLUMNS)]


METRICS_DAMAGE = {
    "cut inside a row": ("metrics.csv", _cut_mid_line),
    "a value that is not a number": ("metrics.csv", lambda p: p.write_text(p.read_text().replace(",UA,", ",UA,x", 1))),
    "no pooled rows": ("metrics.csv", lambda p: p.write_text("fold,metric,value\n0,UA,0.5\n")),
    "predictions cut inside a row": ("predictions.csv", _cut_mid_line),
    "predictions without a header": ("predictions.csv", lambda p: p.write_text("a,b\n1,2\n")),
}


@pytest.mark.parametrize("damage", list(METRICS_DAMAGE))
def test_compare_names_a_damaged_results_file(run, damage):
    name, spoil = METRICS_DAMAGE[damage]
    spoil(run / name)
    assert_one_line_error(sertool("compare", run), str(run / name), "damaged", f"sertool evaluate {run}")
