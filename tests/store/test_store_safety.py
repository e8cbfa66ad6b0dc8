"""Store safety: an entry HDF5 refuses is a failure row, never the loss of the other entries; two manifests
of one file name extracted into one folder keep two stores."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.extraction.pipeline import extract_manifest
from sertool.features import build_extractor
from sertool.io.audio import load_audio
from sertool.io.manifest import Utterance, write_manifest
from sertool.store.identity import SourceIdentity
from sertool.store.reader import FeatureStore
from sertool.store.writer import EntryError, StoreWriter
from tests.conftest import write_audio

ATTRS = {"config": {"type": "test"}, "config_hash": "ab" * 32, "dim": 3, "level": "frame"}
#: Ids HDF5 cannot use as names: cut at the NUL (``u1\x00`` would overwrite ``u1``), read as paths, empty, not UTF-8.
BAD_IDS = ["bad\x00id", "u1\x00", "a/b", "/abs", "", ".", "x\udcff"]


def _identity(i: int) -> SourceIdentity:
    return SourceIdentity(100 + i, 10**18 + i, f"/audio/u{i}.wav")


def _feats(i: int) -> np.ndarray:
    return np.full((2, 3), i, np.float32)


def _check_200(path: Path) -> None:
    with FeatureStore(path) as store:
        assert sorted(store.keys()) == sorted(f"u{i}" for i in range(200))
        for i in range(200):
            np.testing.assert_array_equal(store[f"u{i}"], _feats(i))


def test_ids_hdf5_cannot_name_are_refused_and_every_other_entry_is_kept(tmp_path):
    path = tmp_path / "s.h5"
    with StoreWriter(path, ATTRS, checkpoint_seconds=3600) as writer:  # one checkpoint: at the end
        for i in range(200):
            writer.add(f"u{i}", _feats(i), _identity(i))
        for bad in BAD_IDS:
            with pytest.raises(EntryError, match="cannot name a store entry.*rename it in the manifest"):
                writer.add(bad, _feats(999), _identity(999))
            assert bad not in writer.index
    _check_200(path)
    with StoreWriter(path, ATTRS) as writer:  # the rerun: the good entries are up to date, the bad ids refused again
        assert not any(writer.needs(f"u{i}", _identity(i)) for i in range(200))
        with pytest.raises(EntryError):
            writer.add("bad\x00id", _feats(999), _identity(999))
    _check_200(path)


def test_a_file_name_that_is_not_utf8_does_not_stop_the_checkpoint(tmp_path):
    path = tmp_path / "s.h5"
    with StoreWriter(path, ATTRS) as writer:
        writer.add("u0", _feats(0), SourceIdentity(1, 2, "/audio/\udcff.wav"))  # os.fsdecode of a latin-1 name
    with FeatureStore(path) as store:
        assert store.keys() == ["u0"] and store.index()["u0"] == SourceIdentity(1, 2)


def test_an_array_that_does_not_fit_is_refused_alone(tmp_path):
    path = tmp_path / "s.h5"
    with StoreWriter(path, ATTRS) as writer:
        writer.add("u0", _feats(0), _identity(0))
        for wrong in (np.zeros((2, 4), np.float32), np.zeros((2, 3), np.int64), np.zeros(3, np.float32)):
            with pytest.raises(EntryError, match="do not fit a store of dim 3"):
                writer.add("u1", wrong, _identity(1))
    with FeatureStore(path) as store:
        assert store.keys() == ["u0"]


@pytest.fixture
def corpus_200(tmp_path) -> Path:
    rows = [Utterance(f"u{i}", write_audio(tmp_path / "wav" / f"u{i}.wav", seconds=0.3, freq=150.0 + i, seed=i),
                      label="x") for i in range(200)]
    return write_manifest(rows, tmp_path / "m.csv")


def test_an_entry_hdf5_refuses_is_a_failure_row_and_the_rerun_stores_it(corpus_200, tmp_path):
    out = tmp_path / "feats"
    first = extract_manifest(corpus_200, features="mfcc", output=out)
    assert first.report.ok == 200
    with h5py.File(first.store_path, "r+") as h5:  # damage: u7 dropped from the index, its array left at its name
        ids = list(h5["index/id"].asstr()[()])
        rows = [n for n, i in enumerate(ids) if i != "u7"]
        columns = {k: h5["index"][k][()][rows] for k in ("source_path", "source_size", "source_mtime_ns")}
        del h5["index"]
        g = h5.create_group("index")
        g.create_dataset("id", data=np.array([ids[n] for n in rows], dtype=object), dtype=h5py.string_dtype())
        for name, column in columns.items():
            g.create_dataset(name, data=column)
    (first.store_path.parent / f".{first.store_path.name}.stamp").unlink()
    # HDF5 refuses to create u7 where a dataset already is: before, a ValueError traceback
    second = extract_manifest(corpus_200, features="mfcc", output=out, checkpoint_seconds=3600)
    assert second.report.ok == 0 and second.report.skipped == 199 and second.report.failed == 1
    failure = second.report.failures[0]
    assert failure.id == "u7" and "HDF5 cannot store this entry (" in failure.error
    assert "name already exists" in failure.error
    assert "u7" in second.failures_path.read_text()
    with FeatureStore(second.store_path) as store:
        assert len(store) == 199 and "u7" not in store
    third = extract_manifest(corpus_200, features="mfcc", output=out)  # the rerun is fine
    assert third.report.ok == 1 and third.report.skipped == 199 and third.report.failed == 0
    extractor = build_extractor("mfcc")
    with FeatureStore(third.store_path) as store:
        assert len(store) == 200
        expected = extractor.extract(load_audio(tmp_path / "wav" / "u7.wav", sr=16000), 16000)
        np.testing.assert_array_equal(store["u7"], expected)


def _two_manifests(tmp_path: Path) -> tuple[Path, Path]:
    """``a/m.csv`` and ``b/m.csv``: the same ids, different audio."""
    manifests = []
    for folder, freq in (("a", 140.0), ("b", 330.0)):
        rows = [Utterance(f"u{i}", write_audio(tmp_path / folder / f"u{i}.wav", seconds=0.4, freq=freq + 10 * i),
                          label=folder) for i in range(3)]
        manifests.append(write_manifest(rows, tmp_path / folder / "m.csv"))
    return manifests[0], manifests[1]


def _extract(manifest: Path, out: Path) -> tuple[Path, str]:
    result = CliRunner().invoke(cli, ["extract", str(manifest), "-f", "mfcc", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return Path(result.stdout.strip().splitlines()[-1]), result.stderr


def _assert_features_of(store_path: Path, manifest: Path) -> None:
    extractor = build_extractor("mfcc")
    with FeatureStore(store_path) as store:
        x, labels, ids, _ = store.to_arrays(pad=False)  # the store's own manifest, as `train` reads it
        assert ids == ["u0", "u1", "u2"] and set(labels) == {manifest.parent.name}
        for i in range(3):
            expected = extractor.extract(load_audio(manifest.parent / f"u{i}.wav", sr=16000), 16000)
            np.testing.assert_array_equal(store[f"u{i}"], expected)


def test_manifests_of_one_name_in_different_folders_get_a_store_each(tmp_path):
    a, b = _two_manifests(tmp_path)
    out = tmp_path / "feats"
    store_a, log_a = _extract(a, out)
    store_b, log_b = _extract(b, out)
    assert store_a != store_b and store_a.name.startswith("m.mfcc-") and store_b.name.startswith("m-")
    assert "belongs to another manifest named m.csv" in log_b and store_b.name in log_b and str(a.resolve()) in log_b
    assert "belongs to" not in log_a
    _assert_features_of(store_a, a)
    _assert_features_of(store_b, b)
    for manifest, store in ((a, store_a), (b, store_b), (a, store_a)):  # reruns: each finds its own store
        again, log = _extract(manifest, out)
        assert again == store and "0 extracted, 3 up to date" in log
    _assert_features_of(store_a, a)
    _assert_features_of(store_b, b)


def test_a_moved_manifest_keeps_its_store(tmp_path):
    a, _ = _two_manifests(tmp_path)
    out = tmp_path / "feats"
    store_a, _ = _extract(a, out)
    shutil.move(tmp_path / "a", tmp_path / "moved")  # the manifest and its audio, as a project folder moves
    moved = tmp_path / "moved" / "m.csv"
    store, log = _extract(moved, out)
    assert store == store_a and "0 extracted, 3 up to date" in log and "belongs to" not in log


def test_merging_the_stores_of_two_manifests_of_one_name_is_refused(tmp_path):
    a, b = _two_manifests(tmp_path)
    out = tmp_path / "feats"
    store_a, _ = _extract(a, out)
    store_b, _ = _extract(b, out)
    merged = tmp_path / "merged.h5"
    result = CliRunner().invoke(cli, ["store", "merge", str(store_a), str(store_b), "-o", str(merged)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "both hold id 'u0', for different audio" in result.output and not merged.exists()
    result = CliRunner().invoke(cli, ["store", "merge", str(store_a), str(store_a), "-o", str(merged)])
    assert result.exit_code == 0, result.output  # the same audio twice (as overlapping shards) is fine
    with FeatureStore(merged) as store:
        assert sorted(store.keys()) == ["u0", "u1", "u2"]
