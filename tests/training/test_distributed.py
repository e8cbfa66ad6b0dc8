"""DDP training with torchrun: 2 CPU processes (gloo), one writer, exact resume, scores close to one process."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sertool.models.checkpoint import Checkpoint
from sertool.corpora import folder
from sertool.scoring.evaluate import evaluate_run
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import write_manifest
from sertool.io.report import RunReport
from tests.conftest import HANG_SECONDS, wait_for, write_pitch_corpus

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch without torch.distributed")
TORCHRUN = Path(sys.executable).with_name("torchrun")
ARGS = ["--protocol", "loso", "--valid-speakers", "1", "--batch-size", "8", "--lr", "3e-3", "--norm", "global",
        "--fold", "0", "--threads", "1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    write_pitch_corpus(root / "audio", speakers=4, clips=4, seconds=1.0, speaker_step=12, clip_step=3)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    manifest = write_manifest(rows, root / "m.csv")
    return manifest, extract_manifest(manifest, features="lightsernet_mfcc", output=root / "feats").store_path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(corpus, out: Path, epochs: int, *, background: bool = False):
    manifest, store = corpus
    command = [str(TORCHRUN), "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port",
               str(_free_port()), "-m", "sertool", "train", str(manifest), str(store), "-o", str(out),
               "--epochs", str(epochs), *ARGS]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if background:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=HANG_SECONDS)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _log_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with open(path, newline="") as fh:
        return max(0, sum(1 for _ in csv.reader(fh)) - 1)


def kill_after_epochs(corpus, out: Path, epochs: int, finished: int) -> Path:
    """Start a 2-process run, SIGKILL the whole job once ``finished`` epochs are logged; returns the log's path."""
    job = torchrun(corpus, out, epochs, background=True)
    log = out / "fold-0" / "train_log.csv"
    wait_for(lambda: _log_rows(log) >= finished, job, what=f"{finished} epochs logged")  # (a hang guard only)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    return log


def test_two_processes_train_one_valid_run_close_to_one_process(corpus, tmp_path):
    from sertool.training.trainer import TrainConfig, train_run

    done = torchrun(corpus, tmp_path / "ddp", 6)
    output = done.stdout + done.stderr
    assert output.count("1 fold(s) trained") == 1  # rank 0 alone reports
    fold = tmp_path / "ddp" / "fold-0"
    assert {"checkpoint.pt", "state.pt", "train_log.csv", "split.csv", "config.json"} <= {p.name for p in fold.iterdir()}
    assert _log_rows(fold / "train_log.csv") == 6  # one writer: no duplicated rows
    assert not list(fold.glob("*.tmp*"))
    ddp = Checkpoint.load(fold / "checkpoint.pt")  # weights_only load: a valid sertool checkpoint
    manifest, store = corpus
    train_run(manifest, store, model="light_sernet", output=tmp_path / "one", protocol="loso", fold=0,
              valid_speakers=1, train_config=TrainConfig(epochs=6, batch_size=8, lr=3e-3, norm="global", threads=1))
    one = Checkpoint.load(tmp_path / "one" / "fold-0" / "checkpoint.pt")
    assert ddp.state_dict.keys() == one.state_dict.keys()
    ddp_result, one_result = evaluate_run(tmp_path / "ddp"), evaluate_run(tmp_path / "one")
    # same global batch and schedule; batch-norm statistics per half batch make the runs differ slightly
    assert ddp_result.folds["pooled"]["UA"] >= 0.75 and one_result.folds["pooled"]["UA"] >= 0.75
    assert abs(ddp_result.folds["pooled"]["UA"] - one_result.folds["pooled"]["UA"]) <= 0.25


def test_a_killed_ddp_run_resumes_to_the_same_weights(corpus, tmp_path):
    epochs = 8
    torchrun(corpus, tmp_path / "whole", epochs)
    log = kill_after_epochs(corpus, tmp_path / "cut", epochs, 2)
    assert 2 <= _log_rows(log) < epochs, "the run was not cut in the middle"
    assert not (tmp_path / "cut" / "fold-0" / "checkpoint.pt").exists()
    torchrun(corpus, tmp_path / "cut", epochs)
    whole = Checkpoint.load(tmp_path / "whole" / "fold-0" / "checkpoint.pt").state_dict
    resumed = Checkpoint.load(tmp_path / "cut" / "fold-0" / "checkpoint.pt").state_dict
    for key in whole:
        assert torch.equal(whole[key], resumed[key]), key
    assert _log_rows(log) == epochs


def test_a_ddp_run_does_not_resume_in_one_process(corpus, tmp_path):
    from click.testing import CliRunner

    from sertool.cli.main import cli

    kill_after_epochs(corpus, tmp_path / "ddp", 40, 1)
    manifest, store = corpus
    result = CliRunner().invoke(cli, ["train", str(manifest), str(store), "-o", str(tmp_path / "ddp"),
                                      "--epochs", "40", *ARGS])
    assert result.exit_code == 1 and "number of DDP processes" in result.output
