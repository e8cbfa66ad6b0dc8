"""kill -9 at seeded random moments, again and again: extract, predict and train through the CLI.

After every kill the output must be usable (the store opens, the CSV is rows
of the uninterrupted run, the run folder resumes); after the last run
completes, the result equals an uninterrupted run's (features and model
weights bit for bit, predict rows exactly once each). ``KILLS`` kills per
command run in the default suite; ``slow`` runs a longer loop.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from sertool.models.checkpoint import Checkpoint
from sertool.corpora import folder
from sertool.io.manifest import write_manifest
from sertool.io.report import RunReport
from sertool.store.reader import FeatureStore
from tests.conftest import write_pitch_corpus

KILLS = 3
LONG_KILLS = 12


def _sertool(*args) -> list[str]:
    return [sys.executable, "-m", "sertool", *map(str, args)]


#: A run that shows no progress for this long is stuck: the test fails instead of waiting forever.
STUCK_SECONDS = 600


def _kill_after_progress(command: list[str], progress, rng) -> bool:
    """Start ``command``; SIGKILL it soon after ``progress()`` first grows; True when killed (False: it finished).

    Kills wait on the work itself (rows written, store bytes, epochs logged),
    never on wall-clock estimates, so a loaded machine only makes them later.
    A random delay of up to 0.2 s after the growth spreads them over the work.
    """
    before = progress()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + STUCK_SECONDS
    while proc.poll() is None and progress() <= before:
        assert time.monotonic() < deadline, f"no progress in {STUCK_SECONDS} s: {command}"
        time.sleep(0.01)
    time.sleep(float(rng.uniform(0.0, 0.2)))
    if proc.poll() is not None:
        return False
    proc.kill()
    proc.wait()
    return True


def _loop(command: list[str], kills: int, seed: int, check, left, progress) -> int:
    """Kill ``command`` up to ``kills`` times after progress; ``check()`` after each; return how many landed.

    ``left()`` is the share of the work still to do (0-1); the loop ends early when none is left.
    """
    rng = np.random.default_rng(seed)
    killed = 0
    for _ in range(kills):
        if left() == 0:
            break
        killed += _kill_after_progress(command, progress, rng)
        check()
    subprocess.run(command, check=True, capture_output=True)  # the final run completes what is left
    return killed


def _lines(path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def _size(path) -> int:
    return path.stat().st_size if path.exists() else 0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 speakers x 2 classes x 10 clips of 1.5 s, and its manifest."""
    root = tmp_path_factory.mktemp("kills")
    write_pitch_corpus(root / "audio", speakers=4, clips=10, seconds=1.5, speaker_step=9, clip_step=2)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    return root, write_manifest(rows, root / "m.csv")


def _extract_loop(corpus, tmp_path, kills, seed):
    root, manifest = corpus
    reference = tmp_path / "ref"
    command = lambda out: _sertool("extract", manifest, "-f", "egemaps_functionals", "-o", out,
                                      "--checkpoint-every", "0.05")  # noqa: E731
    subprocess.run(command(reference), check=True, capture_output=True)
    (ref_store,) = reference.glob("*.h5")
    out = tmp_path / "cut"

    def check():
        for store in out.glob("*.h5"):  # none yet when killed before the first write
            with FeatureStore(store) as s:
                assert len(s) <= 80 and all(np.isfinite(s[k]).all() for k in s.keys())

    def left():
        stores = list(out.glob("*.h5"))
        if not stores:
            return 1.0
        with FeatureStore(stores[0]) as s:
            return 1 - len(s) / 80

    def progress():  # bytes of the store: they grow at every checkpoint (reading HDF5 mid-write is not safe)
        return sum(_size(p) for p in out.glob("*.h5"))

    killed = _loop(command(out), kills, seed, check, left, progress)
    (store,) = out.glob("*.h5")
    with FeatureStore(store) as a, FeatureStore(ref_store) as b:
        assert sorted(a.keys()) == sorted(b.keys()) and len(a) == 80
        for key in b.keys():
            np.testing.assert_array_equal(a[key], b[key])
    assert not list(out.glob("*.tmp"))  # (the .lock files stay: flock locks, taken again by the next run)
    return killed


def _predict_loop(corpus, tmp_path, kills, seed):
    root, _ = corpus
    # blocks of 4 files: rows land in 20 steps, so every kill can fall while work is left
    command = lambda out: _sertool("predict", root / "audio", "-m", "ravdess", "-o", out, "--batch-size", "4")  # noqa: E731
    subprocess.run(command(tmp_path / "ref.csv"), check=True, capture_output=True)
    reference = list(csv.reader(open(tmp_path / "ref.csv")))
    out = tmp_path / "cut.csv"

    def check():
        if out.exists():
            rows = list(csv.reader(open(out)))
            assert rows[0] == reference[0]
            complete = [r for r in rows[1:] if len(r) == len(reference[0])]
            assert all(r in reference for r in complete[:-1])  # the last line may be torn by the kill

    def left():
        return 1 - (len(list(csv.reader(open(out)))) - 1) / 80 if out.exists() else 1.0

    killed = _loop(command(out), kills, seed, check, left, lambda: _lines(out) - 1)  # rows past the header
    rows = list(csv.reader(open(out)))
    assert rows[0] == reference[0] and sorted(rows[1:]) == sorted(reference[1:])  # each file once
    return killed


def _train_loop(corpus, tmp_path, kills, seed):
    root, manifest = corpus
    from sertool.extraction.pipeline import extract_manifest

    store = extract_manifest(manifest, features="lightsernet_mfcc", output=root / "feats").store_path
    command = lambda out: _sertool("train", manifest, store, "-o", out, "--protocol", "loso", "--fold", "0",  # noqa: E731
                                   "--valid-speakers", "1", "--epochs", "8", "--batch-size", "8", "--seed", "3",
                                   "--norm", "global", "--threads", "1")
    subprocess.run(command(tmp_path / "ref"), check=True, capture_output=True)
    out = tmp_path / "cut"

    def check():
        log = out / "fold-0" / "train_log.csv"
        if log.exists():
            epochs = [int(r["epoch"]) for r in csv.DictReader(open(log))]
            assert epochs == list(range(1, len(epochs) + 1))

    def left():
        log = out / "fold-0" / "train_log.csv"
        done = len(list(csv.DictReader(open(log)))) if log.exists() else 0
        return 0.0 if (out / "fold-0" / "checkpoint.pt").exists() else 1 - done / 8

    killed = _loop(command(out), kills, seed, check, left, lambda: _size(out / "fold-0" / "train_log.csv"))
    a = Checkpoint.load(tmp_path / "ref" / "fold-0" / "checkpoint.pt")
    b = Checkpoint.load(out / "fold-0" / "checkpoint.pt")
    assert a.state_dict.keys() == b.state_dict.keys()
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(out / "fold-0" / "train_log.csv"))]
    assert epochs == list(range(1, 9))
    return killed


LOOPS = {"extract": _extract_loop, "predict": _predict_loop, "train": _train_loop}


@pytest.mark.parametrize("command", sorted(LOOPS))
def test_kill_loop(corpus, tmp_path, command):
    LOOPS[command](corpus, tmp_path, KILLS, seed=1)


@pytest.mark.slow
@pytest.mark.parametrize("command", sorted(LOOPS))
def test_long_kill_loop(corpus, tmp_path, command):
    killed = LOOPS[command](corpus, tmp_path, LONG_KILLS, seed=2)
    print(f"{command}: {killed} of {LONG_KILLS} kills landed while it worked")
    assert killed >= 3
