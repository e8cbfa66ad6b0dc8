"""SIGTERM during train and predict: a clean exit (143) that says finished work is saved, no traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sertool.io.manifest import read_manifest

#: A command that shows no progress for this long is stuck: the test fails instead of waiting forever.
STUCK_SECONDS = 600


def _wait_for(ready, proc: subprocess.Popen) -> None:
    """Return once ``ready()`` is true; fail when ``proc`` exits first or nothing happens for STUCK_SECONDS."""
    deadline = time.monotonic() + STUCK_SECONDS
    while not ready():
        assert proc.poll() is None, f"the command ended (exit {proc.returncode}) before it could be stopped"
        assert time.monotonic() < deadline, f"no progress in {STUCK_SECONDS} s"
        time.sleep(0.05)


def _train(pitch_corpus, tmp_path):
    args = ["train", pitch_corpus.manifest, pitch_corpus.frames, "-o", tmp_path / "r", "--protocol", "loso",
            "--valid-speakers", "1", "--epochs", "200", "--batch-size", "4", "--norm", "global"]
    return args, lambda: (tmp_path / "r" / "fold-0" / "state.pt").exists()  # one epoch done


def _predict(pitch_corpus, tmp_path):
    links = tmp_path / "links"  # distinct paths (predict scores each path once), rows written per block
    links.mkdir()
    for k in range(100):  # 8000 paths: far more work than the few rows the signal waits for
        for u in read_manifest(pitch_corpus.manifest):
            (links / f"{k}-{u.id}.wav").symlink_to(Path(u.path).resolve())
    out = tmp_path / "p.csv"
    return ["predict", links, "-o", out], lambda: out.exists() and out.stat().st_size > 2000  # some rows written


@pytest.mark.slow
@pytest.mark.parametrize("command", [_train, _predict], ids=["train", "predict"])
def test_sigterm_on_train_and_predict_is_a_clean_exit(pitch_corpus, tmp_path, command):
    args, ready = command(pitch_corpus, tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "sertool", *map(str, args)], stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(ready, proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=STUCK_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143
    assert "Terminated: finished work is saved" in stderr and "Traceback" not in stderr
