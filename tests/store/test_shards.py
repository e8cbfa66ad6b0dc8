"""extract --shard K/N and store merge: partial stores that combine into the store one run writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.corpora import folder
from sertool.errors import ConfigError, StoreError
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import write_manifest
from sertool.io.report import RunReport
from sertool.store.reader import FeatureStore
from sertool.store.shards import merge_files, parse_shard, shard_paths
from tests.conftest import write_audio, write_pitch_corpus


@pytest.fixture()
def manifest(tmp_path):
    write_pitch_corpus(tmp_path / "audio", speakers=3, clips=3, seconds=0.6, speaker_step=12, clip_step=3)
    rows = folder.prepare(tmp_path / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    return write_manifest(rows, tmp_path / "m.csv")


def assert_same_store(a, b):
    with FeatureStore(a) as x, FeatureStore(b) as y:
        assert sorted(x.keys()) == sorted(y.keys()) and len(x) == 18
        assert x.index() == y.index()
        assert {k: v for k, v in x.attrs.items() if k != "manifest"} == \
            {k: v for k, v in y.attrs.items() if k != "manifest"}
        for key in x.keys():
            assert np.array_equal(x[key], y[key]), key


def test_shards_merge_into_the_store_of_one_run(manifest, tmp_path):
    whole = extract_manifest(manifest, features="mfcc", output=tmp_path / "one").store_path
    parts = [extract_manifest(manifest, features="mfcc", output=tmp_path / "parts", shard=(k, 4)) for k in range(4)]
    assert [p.report.ok for p in parts] == [5, 5, 4, 4]  # 18 utterances over 4 shards
    assert [p.store_path for p in parts] == shard_paths(whole.parent.parent / "parts" / whole.name)
    assert merge_files([p.store_path for p in parts], tmp_path / "merged.h5") == 18
    assert_same_store(whole, tmp_path / "merged.h5")
    # extract without --shard copies the shards it finds instead of computing them
    combined = extract_manifest(manifest, features="mfcc", output=tmp_path / "parts")
    assert combined.merged == 18 and combined.report.ok == 0
    assert_same_store(whole, combined.store_path)


def test_a_shard_of_changed_audio_is_recomputed_not_copied(manifest, tmp_path):
    parts = [extract_manifest(manifest, features="mfcc", output=tmp_path, shard=(k, 2)).store_path
             for k in range(2)]
    changed = sorted((tmp_path / "audio").rglob("*.wav"))[0]
    write_audio(changed, seconds=0.9, freq=500.0)
    os.utime(changed, ns=(1, 1))
    result = extract_manifest(manifest, features="mfcc", output=tmp_path)
    assert result.merged == 17 and result.report.ok == 1
    with FeatureStore(result.store_path) as store, FeatureStore(parts[0]) as old:
        key = next(k for k in store.keys() if store.index()[k].path == str(changed))
        assert store[key].shape[0] > 80  # the 0.9 s version, not the shard's 0.6 s one
        assert key not in old or old[key].shape != store[key].shape


def test_stores_of_another_config_do_not_merge(manifest, tmp_path):
    a = extract_manifest(manifest, features="mfcc", output=tmp_path, shard=(0, 2)).store_path
    b = extract_manifest(manifest, features="logmel", output=tmp_path, shard=(1, 2)).store_path
    with pytest.raises(StoreError, match="one config"):
        merge_files([a, b], tmp_path / "x.h5")


def test_bad_shard_options_are_one_line_errors(manifest, tmp_path):
    for text in ("1", "a/b"):
        with pytest.raises(ConfigError, match=f"--shard '{text}' must be K/N"):
            parse_shard(text)
    for text in ("4/4", "-1/3"):
        with pytest.raises(ConfigError, match=f"--shard '{text}': K must be 0 ... N-1"):
            parse_shard(text)
    result = CliRunner().invoke(cli, ["extract", str(manifest), "--features", "mfcc", "-o", str(tmp_path),
                                      "--shard", "2/2"])
    assert result.exit_code == 1 and "numbered from 0" in result.output and "Traceback" not in result.output


def test_store_merge_command(manifest, tmp_path):
    runner = CliRunner()
    for k in range(2):
        result = runner.invoke(cli, ["extract", str(manifest), "--features", "mfcc", "-o", str(tmp_path / "p"),
                                     "--shard", f"{k}/2"])
        assert result.exit_code == 0, result.output
    shards = [str(p) for p in sorted((tmp_path / "p").glob("*.shard-*.h5"))]
    result = runner.invoke(cli, ["store", "merge", *shards, "-o", str(tmp_path / "all.h5")])
    assert result.exit_code == 0 and "18 entries from 2 store(s)" in result.output
    result = runner.invoke(cli, ["store", "describe", str(tmp_path / "all.h5")])
    assert result.exit_code == 0 and "18 entries" in result.output
