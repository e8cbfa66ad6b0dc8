"""extract + FeatureStore: layout, caching, invalidation, failures, interruption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import sertool
from sertool.corpora import folder, ravdess
from sertool.errors import StoreError
from sertool.extraction.pipeline import extract_manifest
from sertool.features import build_extractor
from sertool.io.manifest import read_manifest, write_manifest
from sertool.io.report import RunReport
from sertool.io.audio import load_audio
from sertool.store.identity import SourceIdentity
from sertool.store.reader import FeatureStore
from sertool.store.writer import StoreWriter
from tests.conftest import RAVDESS, needs_ravdess

#: A command that shows no progress for this long is stuck: the test fails instead of waiting forever.
STUCK_SECONDS = 600


@pytest.fixture
def manifest(tmp_path, tiny_corpus) -> Path:
    return write_manifest(folder.prepare(tiny_corpus, report=RunReport()), tmp_path / "tiny.csv")


def test_store_layout_is_readable_with_plain_h5py(manifest, tmp_path):
    result = extract_manifest(manifest, features="mfcc", output=tmp_path / "feats")
    assert result.report.ok == 6 and result.report.failed == 0
    assert result.store_path.name.startswith("tiny.mfcc-") and result.store_path.suffix == ".h5"
    extractor = build_extractor("mfcc")
    with h5py.File(result.store_path, "r") as h5:
        assert h5.attrs["format"] == "sertool-features"
        assert h5.attrs["dim"] == 40 and h5.attrs["level"] == "frame" and h5.attrs["sample_rate"] == 16000
        assert json.loads(h5.attrs["config"]) == extractor.config.to_dict()
        assert h5.attrs["config_hash"] == extractor.config.config_hash()
        assert result.store_path.stem.endswith(h5.attrs["config_hash"][:8])
        assert h5.attrs["sertool_version"] == sertool.__version__
        ids = list(h5["index/id"].asstr()[()])
        assert sorted(ids) == sorted(h5["feats"].keys()) and len(ids) == 6
        for utt in read_manifest(manifest):
            feats = h5["feats"][utt.id][()]
            assert feats.dtype == np.float32
            expected = extractor.extract(load_audio(utt.path, sr=16000), 16000)
            np.testing.assert_array_equal(feats, expected)
            row = ids.index(utt.id)
            assert h5["index/source_size"][row] == utt.path.stat().st_size
            assert h5["index/source_mtime_ns"][row] == utt.path.stat().st_mtime_ns
            assert h5["index/source_path"].asstr()[row] == str(utt.path)


def test_rerun_touch_and_config_change(manifest, tmp_path):
    out = tmp_path / "feats"
    first = extract_manifest(manifest, features="mfcc", output=out)
    again = extract_manifest(manifest, features="mfcc", output=out)
    assert (again.report.ok, again.report.skipped) == (0, 6)
    # touch one file: only it is extracted again
    utt = read_manifest(manifest)[2]
    stat = utt.path.stat()
    os.utime(utt.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = extract_manifest(manifest, features="mfcc", output=out)
    assert (touched.report.ok, touched.report.skipped) == (1, 5)
    with FeatureStore(first.store_path) as store:
        assert len(store) == 6 and store.index()[utt.id].mtime_ns == utt.path.stat().st_mtime_ns
    # a changed config writes a new store and leaves the old one alone
    other = extract_manifest(manifest, features="mfcc", output=out, settings={"n_mfcc": 13})
    assert other.store_path != first.store_path and other.report.ok == 6
    with FeatureStore(other.store_path) as store:
        assert store.dim == 13
    # --overwrite recomputes everything
    assert extract_manifest(manifest, features="mfcc", output=out, overwrite=True).report.ok == 6


FAST_RERUN = """
import sys
from sertool.extraction.pipeline import extract_manifest
result = extract_manifest(sys.argv[1], features="mfcc", output=sys.argv[2])
heavy = [m for m in ("numpy", "h5py", "scipy", "sertool.features") if m in sys.modules]
print(result.report.ok, result.report.skipped, *heavy)
"""


def test_a_no_op_rerun_reads_only_paths_and_stats(manifest, tmp_path):
    out = tmp_path / "feats"
    extract_manifest(manifest, features="mfcc", output=out)
    rerun = [sys.executable, "-c", FAST_RERUN, str(manifest), str(out)]
    assert subprocess.run(rerun, capture_output=True, text=True, check=True).stdout.split() == ["0", "6"]
    path = read_manifest(manifest)[0].path
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # now the full path runs
    assert subprocess.run(rerun, capture_output=True, text=True, check=True).stdout.split()[:2] == ["1", "5"]


def test_changed_content_is_replaced_in_the_store(manifest, tmp_path):
    out = tmp_path / "feats"
    result = extract_manifest(manifest, features="logmel", output=out)
    utt = read_manifest(manifest)[0]
    import soundfile as sf

    sf.write(utt.path, np.zeros(16000, np.float32), 16000)  # new content, new size and mtime
    assert extract_manifest(manifest, features="logmel", output=out).report.ok == 1
    with FeatureStore(result.store_path) as store:
        assert store[utt.id].shape[0] == 101 and np.allclose(store[utt.id], np.log(1e-6))
        assert len(store) == 6


def test_broken_files_are_reported_and_the_rest_is_stored(manifest, tmp_path):
    rows = read_manifest(manifest)
    rows[1].path.write_bytes(b"")
    rows[4].path.write_text("not audio at all")
    result = extract_manifest(manifest, features="mfcc", output=tmp_path / "feats", max_failures=1)
    report = result.report
    assert report.ok == 4 and report.failed == 2 and report.exit_code() == 3
    failures = result.failures_path.read_text().splitlines()
    assert failures[0] == "id,path,stage,error" and len(failures) == 3
    assert str(rows[1].path) in failures[1] and "empty file" in failures[1]
    with FeatureStore(result.store_path) as store:
        assert len(store) == 4
    # fixed files are picked up by the next run, and the failures file goes away
    import shutil

    shutil.copy(rows[0].path, rows[1].path)
    shutil.copy(rows[0].path, rows[4].path)
    fixed = extract_manifest(manifest, features="mfcc", output=tmp_path / "feats")
    assert fixed.report.ok == 2 and fixed.report.failed == 0 and not result.failures_path.exists()


def test_a_file_that_breaks_loses_its_stale_entry(manifest, tmp_path):
    out = tmp_path / "feats"
    result = extract_manifest(manifest, features="mfcc", output=out)
    utt = read_manifest(manifest)[3]
    utt.path.write_text("overwritten with text")
    again = extract_manifest(manifest, features="mfcc", output=out)
    assert again.report.failed == 1
    with FeatureStore(result.store_path) as store:
        assert utt.id not in store and utt.id not in store.index() and len(store) == 5


@pytest.mark.parametrize("jobs", [2, 3])
def test_jobs_give_the_same_store(manifest, tmp_path, jobs):
    one = extract_manifest(manifest, features="mscnn_mfcc96", output=tmp_path / "a", jobs=1)
    more = extract_manifest(manifest, features="mscnn_mfcc96", output=tmp_path / "b", jobs=jobs)
    assert more.report.ok == 6
    with FeatureStore(one.store_path) as a, FeatureStore(more.store_path) as b:
        assert sorted(a.keys()) == sorted(b.keys())
        for key in a.keys():
            np.testing.assert_array_equal(a[key], b[key])


def test_jobs_on_a_real_corpus_with_a_broken_file(tmp_path, ravdess_subset):
    manifest = write_manifest(ravdess.prepare(ravdess_subset, report=RunReport()), tmp_path / "r.csv")
    (ravdess_subset / "Actor_01" / "03-01-05-01-01-01-01.flac").write_bytes(b"not flac")  # broken after prepare
    result = extract_manifest(manifest, features="logmel", output=tmp_path / "feats", jobs=2, max_failures=1)
    assert (result.report.ok, result.report.failed) == (119, 1)
    assert "03-01-05-01-01-01-01.flac: cannot decode audio" in result.report.failures[0].error
    with FeatureStore(result.store_path) as store:
        assert len(store) == 119
        clip = next(u for u in read_manifest(manifest) if u.id != "03-01-05-01-01-01-01")
        np.testing.assert_array_equal(store[clip.id], build_extractor("logmel").extract_file(clip.path))


def test_store_errors(tmp_path, manifest):
    with pytest.raises(StoreError, match="feature store not found"):
        FeatureStore(tmp_path / "none.h5")
    result = extract_manifest(manifest, features="mfcc", output=tmp_path / "feats")
    junk = result.store_path
    junk.write_bytes(b"garbage")
    with pytest.raises(StoreError, match="not a readable HDF5 feature store.*--overwrite"):
        extract_manifest(manifest, features="mfcc", output=tmp_path / "feats")
    assert extract_manifest(manifest, features="mfcc", output=tmp_path / "feats", overwrite=True).report.ok == 6
    with FeatureStore(junk) as store, pytest.raises(StoreError, match="no features for utterance 'nope'"):
        store["nope"]


def test_one_writer_at_a_time(tmp_path):
    attrs = {"config": {}, "config_hash": "0" * 64, "dim": 2}
    with StoreWriter(tmp_path / "s.h5", attrs):
        with pytest.raises(StoreError, match="another sertool process is writing this store"):
            with StoreWriter(tmp_path / "s.h5", attrs):
                pass


def test_exception_mid_run_keeps_finished_entries(tmp_path):
    attrs = {"config": {}, "config_hash": "0" * 64, "dim": 2}
    with pytest.raises(KeyboardInterrupt, match="Ctrl-C after one entry"):
        with StoreWriter(tmp_path / "s.h5", attrs) as writer:
            writer.add("a", np.ones((3, 2), np.float32), SourceIdentity(1, 2, "a.wav"))
            raise KeyboardInterrupt("Ctrl-C after one entry")
    with FeatureStore(tmp_path / "s.h5") as store:
        assert store.keys() == ["a"] and store.index()["a"] == SourceIdentity(1, 2)


KILL_SCRIPT = """
import sys
from sertool.extraction.pipeline import extract_manifest
extract_manifest(sys.argv[1], features="logmel", output=sys.argv[2], checkpoint_seconds=0.05)
"""


def _store_with(folder: Path, entries: int) -> Path | None:
    """The store in ``folder`` once it holds ``entries`` entries or more; None before."""
    for path in folder.glob("*.h5") if folder.exists() else ():
        try:
            with FeatureStore(path) as store:
                if len(store) >= entries:
                    return path
        except (StoreError, OSError):
            pass  # between checkpoints the rename may race with our open
    return None


@pytest.mark.slow
def test_kill_9_leaves_a_valid_store_and_a_rerun_completes_it(tmp_path, ravdess_subset):
    manifest = write_manifest(ravdess.prepare(ravdess_subset, report=RunReport()), tmp_path / "r.csv")
    out = tmp_path / "feats"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(manifest), str(out)])
    store_path = None
    deadline = time.monotonic() + STUCK_SECONDS
    while store_path is None:  # kill once some work is durable: 10 entries in the store
        assert proc.poll() is None, "extraction finished before it could be killed"
        assert time.monotonic() < deadline, f"fewer than 10 entries stored in {STUCK_SECONDS} s"
        store_path = _store_with(out, 10)
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with FeatureStore(store_path) as store:
        kept = len(store)
        assert 10 <= kept < 120
    rerun = extract_manifest(manifest, features="logmel", output=out)
    assert (rerun.report.skipped, rerun.report.ok) == (kept, 120 - kept)
    with FeatureStore(store_path) as store:
        assert len(store) == 120


def test_export_csv_of_functionals(manifest, tmp_path):
    from click.testing import CliRunner

    from sertool.cli.main import cli

    out = tmp_path / "egemaps.csv"
    result = CliRunner().invoke(cli, ["extract", str(manifest), "-f", "egemaps_functionals", "-o",
                                      str(tmp_path / "feats"), "--export-csv", str(out), "-j", "2"])
    assert result.exit_code == 0, result.output
    import csv

    rows = list(csv.DictReader(open(out)))
    assert {r["id"]: r["label"] for r in rows} == {u.id: u.label for u in read_manifest(manifest)}
    assert list(rows[0])[:3] == ["id", "label", "speaker"] and len(rows[0]) == 3 + 88
    assert "F0semitoneFrom27.5Hz_sma3nz_amean" in rows[0]
    frame_level = CliRunner().invoke(cli, ["extract", str(manifest), "-f", "mfcc", "-o", str(tmp_path / "feats"),
                                           "--export-csv", str(out)])
    assert frame_level.exit_code == 1 and "needs an utterance-level feature set" in frame_level.output


def test_an_entry_interrupted_before_indexing_is_dropped(tmp_path):
    attrs = {"config": {}, "config_hash": "0" * 64, "dim": 2}
    with StoreWriter(tmp_path / "s.h5", attrs) as writer:
        writer.add("a", np.ones((3, 2), np.float32), SourceIdentity(1, 2, "a.wav"))
        writer._feats.create_dataset("b", data=np.zeros((5, 2), np.float32))  # created, never indexed
    with FeatureStore(tmp_path / "s.h5") as store:
        assert store.keys() == ["a"]
    with StoreWriter(tmp_path / "s.h5", attrs) as writer:  # the rerun can write "b" for real
        writer.add("b", np.full((4, 2), 7, np.float32), SourceIdentity(3, 4, "b.wav"))
    with FeatureStore(tmp_path / "s.h5") as store:
        assert sorted(store.keys()) == ["a", "b"] and store["b"].shape == (4, 2)


@needs_ravdess
def test_a_full_disk_is_a_one_line_error_and_keeps_finished_entries(tmp_path):
    """Extraction into a 2 MB tmpfs: the disk fills; HDF5 used to segfault there."""
    import shutil

    small = tmp_path / "small"
    small.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs permission to mount a small tmpfs")
    try:
        rows = [u for u in ravdess.prepare(RAVDESS, report=RunReport()) if u.speaker == "Actor_01"]
        manifest = write_manifest(rows, tmp_path / "m.csv")
        cmd = [sys.executable, "-m", "sertool", "extract", str(manifest), "-f", "mfcc", "-o", str(small / "x")]
        result = subprocess.run(cmd, capture_output=True, text=True)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and "disk full" in result.stderr and str(small) in result.stderr
        assert not list((small / "x").glob(".*.tmp"))
        with FeatureStore(next((small / "x").glob("m.mfcc-*.h5"))) as store:
            kept = len(store)
        assert 0 < kept < 60  # the entries finished before the disk filled
        moved = tmp_path / "x"
        shutil.copytree(small / "x", moved)
        again = subprocess.run(cmd[:-1] + [str(moved)], capture_output=True, text=True)
        assert again.returncode == 0 and f"{60 - kept} extracted, {kept} up to date" in again.stderr
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_store_to_arrays(tmp_path, tiny_corpus):
    rows = folder.prepare(tiny_corpus, report=RunReport())
    manifest = write_manifest(rows, tmp_path / "m.csv")
    frames = extract_manifest(manifest, features="mfcc", output=tmp_path / "f").store_path
    vectors = extract_manifest(manifest, features="mfcc_stats", output=tmp_path / "f").store_path
    with FeatureStore(vectors) as store:
        x, y, ids, lengths = store.to_arrays()  # the store's own manifest by default
        assert x.shape == (6, 80) and x.dtype == np.float32 and list(lengths) == [1] * 6
        assert ids == [u.id for u in rows] and y == [u.label for u in rows]
        np.testing.assert_array_equal(x[2], store[ids[2]][0])
    with FeatureStore(frames) as store:
        x, y, ids, lengths = store.to_arrays(manifest, ids=[rows[3].id, rows[0].id])
        assert ids == [rows[3].id, rows[0].id] and x.shape == (2, int(lengths.max()), 40)
        np.testing.assert_array_equal(x[1, : lengths[1]], store[rows[0].id])
        assert not x[int(np.argmin(lengths)), int(lengths.min()):].any()  # zero padding
        listed, *_ = store.to_arrays(manifest, pad=False)
        assert [a.shape[0] for a in listed] == [store[u.id].shape[0] for u in rows]
        with pytest.raises(StoreError, match="'nope' is not in the manifest"):
            store.to_arrays(manifest, ids=["nope"])
