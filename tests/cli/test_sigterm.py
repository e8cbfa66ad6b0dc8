"""SIGTERM during train and predict: a clean exit (143) that says finished work is saved, no traceback."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from sertool.io.manifest import read_manifest
from tests.conftest import HANG_SECONDS, wait_for


def _rows(path: Path) -> int:
    """Complete rows past the header of the CSV ``path`` (0 before it exists)."""
    if not path.exists():
        return 0
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return sum(len(r) == len(rows[0]) for r in rows[1:]) if rows else 0


def _train(pitch_corpus, tmp_path):
    args = ["train", pitch_corpus.manifest, pitch_corpus.frames, "-o", tmp_path / "r", "--protocol", "loso",
            "--valid-speakers", "1", "--epochs", "200", "--batch-size", "4", "--norm", "global"]
    log = tmp_path / "r" / "fold-0" / "train_log.csv"
    return args, lambda: _rows(log)  # epochs logged


def _predict(pitch_corpus, tmp_path):
    links = tmp_path / "links"  # distinct paths (predict scores each path once), rows written per block
    links.mkdir()
    for k in range(100):  # 8000 paths: far more work than the few rows the signal waits for
        for u in read_manifest(pitch_corpus.manifest):
            (links / f"{k}-{u.id}.wav").symlink_to(Path(u.path).resolve())
    out = tmp_path / "p.csv"
    # ravdess: rows from the first block on (the default model's set statistics first read every file)
    return ["predict", links, "-m", "ravdess", "-o", out], lambda: _rows(out)  # rows written


@pytest.mark.slow
@pytest.mark.parametrize("command", [_train, _predict], ids=["train", "predict"])
def test_sigterm_on_train_and_predict_is_a_clean_exit(pitch_corpus, tmp_path, command):
    """The signal comes once finished work is on disk (an epoch logged, rows written), whatever the machine's speed;
    the exit keeps that work."""
    args, done = command(pitch_corpus, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "sertool", *map(str, args)], stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: done() > 0, proc, what="finished work"), proc.communicate()[1]
        before = done()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=HANG_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, stderr
    assert "Terminated: finished work is saved" in stderr and "Traceback" not in stderr
    assert done() >= before  # nothing finished was lost
