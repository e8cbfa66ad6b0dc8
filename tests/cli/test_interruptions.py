"""kill -9 at seeded random points of the work, again and again: extract, predict and train through the CLI.

After every kill the output must be usable (the store opens, the CSV is rows
of the uninterrupted run, the run folder resumes); after the last run
completes, the result equals an uninterrupted run's (features and model
weights bit for bit, predict rows exactly once each). ``KILLS`` kills per
command run in the default suite; ``slow`` runs a longer loop.

A kill point is a count of finished work (store entries, CSV rows, logged
epochs) drawn from a seeded generator, never a delay: the test polls the
output and kills once the count is reached, so a loaded or a fast machine
changes how long the loop takes, not where the kills land.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from typing import Callable, NamedTuple

import numpy as np
import pytest
import torch

from sertool.models.checkpoint import Checkpoint
from sertool.corpora import folder
from sertool.io.manifest import write_manifest
from sertool.io.report import RunReport
from sertool.store.reader import FeatureStore
from tests.conftest import HANG_SECONDS, stored_entries, wait_for, write_pitch_corpus

KILLS = 3
LONG_KILLS = 12


def _sertool(*args) -> list[str]:
    return [sys.executable, "-m", "sertool", *map(str, args)]


class Work(NamedTuple):
    """How a loop sees one command's work."""

    done: Callable[[], int]  # units finished and durable now (entries, rows, epochs)
    total: int  # units of the whole run
    step: int  # units that appear together (a block of rows): kill points fall on these
    check: Callable[[], None]  # asserts the output is usable after a kill


def _kill_point(rng: np.random.Generator, done: int, work: Work) -> int | None:
    """A seeded count to kill at: 1 to a third of the steps left past ``done``; None when under 2 steps are left.

    The kill comes while at least two thirds of the remaining work (one step at
    least) is still to do, so it lands while the command works, however fast.
    """
    steps_left = -(-(work.total - done) // work.step)
    if steps_left < 2:
        return None
    return done + work.step * int(rng.integers(1, max(1, steps_left // 3) + 1))


def _kill_at(command: list[str], work: Work, target: int) -> bool:
    """Start ``command``; SIGKILL it once ``work.done()`` reaches ``target``; True when killed (False: it finished).

    A command that fails before the kill point fails the test with its stderr.
    """
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            wait_for(lambda: work.done() >= target, proc, what=f"progress to {target} of {work.total}: {command}")
        finally:
            landed = proc.poll() is None
            proc.kill()
            proc.wait()
        stderr.seek(0)
        assert landed or proc.returncode == 0, stderr.read().decode(errors="replace")
    return landed


def _loop(command: list[str], kills: int, seed: int, work: Work) -> int:
    """Kill ``command`` up to ``kills`` times at seeded points of its work, ``work.check()`` after each; then let
    a last run finish. Returns how many kills landed while the command worked."""
    rng = np.random.default_rng(seed)
    killed = 0
    for _ in range(kills):
        target = _kill_point(rng, work.done(), work)
        if target is None:
            break
        if _kill_at(command, work, target):
            killed += 1
            assert work.done() >= target, "a kill -9 lost work that was already saved"
        work.check()
    subprocess.run(command, check=True, capture_output=True, timeout=HANG_SECONDS)  # completes what is left
    return killed


def _complete_rows(path) -> int:
    """Rows past the header of the CSV ``path`` with every column (a torn last line does not count)."""
    if not path.exists():
        return 0
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    return sum(len(r) == len(rows[0]) for r in rows[1:]) if rows else 0


class _StoreEntries:
    """``done()`` of extract: entries in the store of ``folder`` as of its last checkpoint (atomic renames)."""

    def __init__(self, folder):
        self.folder = folder
        self.seen: tuple = ()
        self.count = 0

    def __call__(self) -> int:
        for path in self.folder.glob("*.h5"):
            stat = path.stat()
            if (stat.st_ino, stat.st_mtime_ns, stat.st_size) != self.seen:  # a new checkpoint: open it
                count = stored_entries(self.folder)
                if count is not None:  # None: renamed over while we opened it; look again at the next poll
                    self.count, self.seen = count, (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        return self.count


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 speakers x 2 classes x 10 clips of 1.5 s, and its manifest."""
    root = tmp_path_factory.mktemp("kills")
    write_pitch_corpus(root / "audio", speakers=4, clips=10, seconds=1.5, speaker_step=9, clip_step=2)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    return root, write_manifest(rows, root / "m.csv")


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=HANG_SECONDS)


def _extract_loop(corpus, tmp_path, kills, seed):
    root, manifest = corpus
    reference = tmp_path / "ref"
    command = lambda out: _sertool("extract", manifest, "-f", "egemaps_functionals", "-o", out,  # noqa: E731
                                   "--checkpoint-every", "0.05")  # many checkpoints: many points to kill at
    _run(command(reference))
    (ref_store,) = reference.glob("*.h5")
    out = tmp_path / "cut"

    def check():
        for store in out.glob("*.h5"):
            with FeatureStore(store) as s:
                assert len(s) <= 80 and all(np.isfinite(s[k]).all() for k in s.keys())

    killed = _loop(command(out), kills, seed, Work(_StoreEntries(out), 80, 1, check))
    (store,) = out.glob("*.h5")
    with FeatureStore(store) as a, FeatureStore(ref_store) as b:
        assert sorted(a.keys()) == sorted(b.keys()) and len(a) == 80
        for key in b.keys():
            np.testing.assert_array_equal(a[key], b[key])
    assert not list(out.glob("*.tmp"))  # (the .lock files stay: flock locks, taken again by the next run)
    return killed


def _predict_loop(corpus, tmp_path, kills, seed):
    root, _ = corpus
    # blocks of 4 files: rows land in 20 steps of 4, the kill points
    command = lambda out: _sertool("predict", root / "audio", "-m", "ravdess", "-o", out, "--batch-size", "4")  # noqa: E731
    _run(command(tmp_path / "ref.csv"))
    reference = list(csv.reader(open(tmp_path / "ref.csv")))
    out = tmp_path / "cut.csv"

    def check():
        rows = list(csv.reader(open(out)))  # killed after rows were written: the file is there
        assert rows[0] == reference[0]
        complete = [r for r in rows[1:] if len(r) == len(reference[0])]
        assert all(r in reference for r in complete[:-1])  # the last line may be torn by the kill

    killed = _loop(command(out), kills, seed, Work(lambda: _complete_rows(out), 80, 4, check))
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
    _run(command(tmp_path / "ref"))
    out = tmp_path / "cut"
    log = out / "fold-0" / "train_log.csv"

    def check():
        if log.exists():
            epochs = [int(r["epoch"]) for r in csv.DictReader(open(log))]
            assert epochs == list(range(1, len(epochs) + 1))

    killed = _loop(command(out), kills, seed, Work(lambda: _complete_rows(log), 8, 1, check))  # epochs logged
    a = Checkpoint.load(tmp_path / "ref" / "fold-0" / "checkpoint.pt")
    b = Checkpoint.load(out / "fold-0" / "checkpoint.pt")
    assert a.state_dict.keys() == b.state_dict.keys()
    for key in a.state_dict:
        assert torch.equal(a.state_dict[key], b.state_dict[key]), key
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(log))]
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
    print(f"{command}: {killed} kills landed while it worked")
    assert killed >= 3  # a third of the steps left at most per kill: 8 epochs give 5 kill points at least
