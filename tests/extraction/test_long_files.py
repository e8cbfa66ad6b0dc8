"""Long files in ``extract`` (and ``augment``): memory flat in the file's length, features equal to the whole file's.

A file longer than ``sertool.io.audio.STREAM_SECONDS`` is decoded and turned
into features block by block when the extractor streams files (the spectral
ones, ``mfcc_stats`` included); extractors that need all the audio at once
refuse files longer than ``sertool.features.base.WHOLE_FILE_SECONDS`` with a
failure row. The fast tests lower those thresholds; the slow one extracts a
real 4-hour file and measures the peak RSS of ``sertool extract``.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sertool.corpora import augment
from sertool.extraction.pipeline import extract_manifest
from sertool.features import base, build_extractor, spectral
from sertool.io import audio
from sertool.store.reader import FeatureStore

SR = 16000
#: The acceptance bound on ``sertool extract``'s peak RSS for a 4-hour file (it was 1.75 GB).
PEAK_RSS_MB = 600
HEADER = ["id", "path", "label", "speaker", "gender", "session", "duration", "corpus", "source_id"]


def write_long(path: Path, seconds: float, sr: int = SR, block_seconds: float = 60.0, subtype: str = "PCM_16") -> Path:
    """A quiet modulated tone with a little noise, written block by block (never all in memory)."""
    rng = np.random.default_rng(0)
    total, done = int(seconds * sr), 0
    with sf.SoundFile(path, "w", sr, 1, subtype=subtype) as fh:
        while done < total:
            n = min(int(block_seconds * sr), total - done)
            t = (done + np.arange(n)) / sr
            envelope = 1.0 + 0.5 * np.sin(2 * np.pi * 0.3 * t)
            y = 0.05 * envelope * np.sin(2 * np.pi * 220.0 * t) + 0.0005 * rng.standard_normal(n)
            if done < sr * 5 <= done + n:  # one loud second: the whole-file top_db floor and level depend on it
                y[sr * 5 - done:sr * 6 - done] *= 8
            fh.write(y.astype(np.float32))
            done += n
    return path


def write_rows(manifest: Path, paths: list[Path]) -> Path:
    """A manifest of ``paths`` (label ``talk``), as ``sertool prepare folder`` writes it."""
    with open(manifest, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        for path in paths:
            writer.writerow([path.stem, str(path), "talk", "", "", "", f"{sf.info(str(path)).duration:.3f}",
                             "folder", ""])
    return manifest


def whole_file(extractor, path: Path) -> np.ndarray:
    """The features of ``path`` by the whole-file path (all the audio decoded at once)."""
    return extractor.extract(audio.load_audio(path, sr=extractor.sample_rate), extractor.sample_rate)


def assert_close(streamed: np.ndarray, whole: np.ndarray) -> None:
    """Equal shapes and values to float rounding (1e-4 relative to the values' scale)."""
    assert streamed.shape == whole.shape and streamed.dtype == np.float32
    np.testing.assert_allclose(streamed, whole, rtol=1e-4, atol=1e-4 * float(np.abs(whole).max()))


@pytest.fixture
def short_threshold(monkeypatch):
    """Files over 5 s count as long (instead of STREAM_SECONDS)."""
    monkeypatch.setattr(audio, "STREAM_SECONDS", 5.0)


@pytest.mark.parametrize("features", ["mfcc", "logmel", "mscnn_mfcc96", "lightsernet_mfcc_level",
                                      "resnet_transformer_map", "mfcc_stats"])
def test_streamed_features_in_the_store_equal_the_whole_files(features, tmp_path, short_threshold):
    # 48 kHz for the 48 kHz preset; 22.05 kHz elsewhere, so the streaming resampler is part of the path
    rate = 48000 if features == "resnet_transformer_map" else 22050
    clip = write_long(tmp_path / "talk.wav", 23.7, sr=rate)
    result = extract_manifest(write_rows(tmp_path / "m.csv", [clip]), features=features, output=tmp_path / "out")
    assert result.report.ok == 1 and result.report.failed == 0
    extractor = build_extractor(features)
    with FeatureStore(result.store_path) as store:
        assert_close(store["talk"], whole_file(extractor, clip))


def test_a_long_file_is_never_decoded_whole(tmp_path, short_threshold, monkeypatch):
    # numpy reports its buffers to tracemalloc: the whole-file path holds the decoded audio (23 MB here), the
    # streamed one a 20 s block and the feature rows; a small STFT batch keeps the transform's share small
    monkeypatch.setattr(spectral, "LONG_INPUT_FRAMES", 1024)
    clip = write_long(tmp_path / "talk.wav", 360.0)
    audio_bytes = 360 * SR * 4
    extractor = build_extractor("mfcc", {"n_mfcc": 13})
    tracemalloc.start()
    try:
        feats = extractor.extract_file(clip)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert feats.shape == (36001, 13)
    assert peak < audio_bytes / 2, f"peak {peak / 1e6:.1f} MB for {audio_bytes / 1e6:.1f} MB of audio"


def test_a_header_claiming_days_is_believed_only_as_far_as_the_bytes_go(tmp_path):
    # a real 1 s FLAC whose STREAMINFO claims 2^36 samples: neither streamed into a 68 GB array nor refused as long
    path = tmp_path / "huge.flac"
    y = write_long(tmp_path / "honest.wav", 1.0)
    sf.write(path, sf.read(y, dtype="float32")[0], SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    field = int.from_bytes(data[18:26], "big")  # rate (20 bits), channels (3), bits (5), total samples (36)
    data[18:26] = (field | ((1 << 36) - 1)).to_bytes(8, "big")
    path.write_bytes(bytes(data))
    assert audio.audio_info(path).duration > 4e6
    extractor = build_extractor("mfcc")
    with pytest.warns(audio.TruncatedAudioWarning):
        feats = extractor.extract_file(path)
    assert_close(feats, whole_file(extractor, y))


def test_deltas_of_blocks_equal_the_whole_files():
    from sertool.features import dsp

    rng = np.random.default_rng(1)
    for frames in (3, 8, 9, 10, 40, 1000):
        x = rng.standard_normal((frames, 4)).astype(np.float32)
        whole = dsp.with_deltas(x, order=2, width=9)
        for size in (1, 4, 9, 33, 5000):
            blocks = (x[i:i + size] for i in range(0, frames, size))
            joined = np.concatenate(list(dsp.streamed_deltas(blocks, order=2, width=9)))
            np.testing.assert_allclose(joined, whole, rtol=1e-6, atol=1e-6)


def test_running_moments_equal_numpy():
    from sertool.features import dsp

    x = np.random.default_rng(2).standard_normal((2000, 3)) * [1.0, 0.01, 5.0] + [300.0, -2.0, 0.0]
    moments = dsp.RunningMoments(3)
    for i in range(0, 2000, 77):
        moments.push(x[i:i + 77])
    np.testing.assert_allclose(moments.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(moments.std, x.std(axis=0), rtol=1e-9)


def _refused(tmp_path, features: str, settings: dict | None = None) -> list[dict]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    clip = write_long(tmp_path / "talk.wav", 12.0)
    result = extract_manifest(write_rows(tmp_path / "m.csv", [clip]), features=features, output=tmp_path / "out",
                              settings=settings, max_failures=1)
    assert result.report.ok == 0 and result.report.failed == 1
    rows = list(csv.DictReader(open(result.failures_path)))
    assert len(rows) == 1 and rows[0]["id"] == "talk"
    error = rows[0]["error"]
    assert error.startswith(f"{clip}: 0.2 min of audio is too long for") and "--vad-split" in error
    assert "\n" not in error and "Traceback" not in error
    return rows


def test_a_file_too_long_for_a_whole_file_extractor_is_a_failure_row(tmp_path, monkeypatch):
    # reflect padding cannot stream: such a config holds the whole file, so a long one is refused
    monkeypatch.setattr(base, "WHOLE_FILE_SECONDS", 10.0, raising=False)
    _refused(tmp_path, "mfcc", {"pad_mode": "reflect"})


def test_opensmile_refuses_a_file_too_long_for_it(tmp_path, monkeypatch):
    pytest.importorskip("opensmile")
    monkeypatch.setattr(base, "WHOLE_FILE_SECONDS", 10.0, raising=False)
    _refused(tmp_path / "functionals", "egemaps_functionals")
    _refused(tmp_path / "stack", "egemaps_mfcc_stats")


def test_augment_refuses_a_recording_too_long_to_hold(tmp_path, monkeypatch, tiny_corpus):
    monkeypatch.setattr(augment, "MAX_SECONDS", 10.0, raising=False)
    clip = write_long(tmp_path / "talk.wav", 12.0)
    short = tiny_corpus / "angry" / "clip0.wav"
    manifest = write_rows(tmp_path / "m.csv", [clip, short])
    report = augment.augment_manifest(manifest, tmp_path / "aug.csv", tmp_path / "aug",
                                      [(augment.Gain(-6.0), 1)], max_failures=1)
    assert report.ok == 1 and report.failed == 1
    failure = report.failures[0]
    assert failure.id == "talk+gain-6"
    assert failure.error.startswith(f"{clip}: 0.2 min of audio is too long to augment") and "\n" not in failure.error
    assert not (tmp_path / "aug" / "talk+gain-6.flac").exists() and (tmp_path / "aug" / "clip0+gain-6.flac").exists()


@pytest.fixture(scope="module")
def four_hours(tmp_path_factory) -> Path:
    """A 4-hour 16 kHz mono FLAC, written once in one-minute blocks (about 150 MB)."""
    return write_long(tmp_path_factory.mktemp("long") / "talk.flac", 4 * 3600.0)


#: Runs ``sertool extract`` as its only child and prints that child's peak RSS in kB (ru_maxrss of the children).
MEASURE = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           "print(rc, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


@pytest.mark.slow
def test_extract_of_a_4_hour_file_stays_under_600_mb(four_hours, tmp_path):
    manifest = write_rows(tmp_path / "m.csv", [four_hours])
    sertool = str(Path(sys.executable).with_name("sertool"))
    done = subprocess.run([sys.executable, "-c", MEASURE, sertool, "extract", str(manifest), "-f", "mfcc",
                           "-o", str(tmp_path / "out")], capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    rc, peak_kb = (int(v) for v in done.stdout.split()[-2:])
    assert rc == 0, done.stderr
    assert peak_kb / 1024 < PEAK_RSS_MB, f"peak RSS {peak_kb / 1024:.0f} MB"
    store_path = Path(done.stdout.split()[-3])  # the store's path, printed by sertool before the measurement
    with FeatureStore(store_path) as store:
        feats = store["talk"]
    assert feats.shape == (4 * 3600 * 100 + 1, 40) and feats.dtype == np.float32 and np.isfinite(feats).all()
