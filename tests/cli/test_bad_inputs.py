"""A bad-input corpus generated on the fly, through the real CLI: prepare, extract (spectral and openSMILE), predict.

Every command must finish without a traceback; every good file is scored;
every bad file gets one one-line error naming it (a failures row, or a
predict row with an error); files that decode short get a warning.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sertool.io.audio import TruncatedAudioWarning, load_audio
from sertool.io.manifest import Utterance, write_manifest
from tests.conftest import tone, write_audio

#: Sample formats of WAV files the corpus holds (every one libsndfile writes for WAV).
WAV_SUBTYPES = ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW", "IMA_ADPCM", "MS_ADPCM",
                "GSM610")


#: Bad files whose headers are fine: only decoding finds the problem.
DECODE_TIME_BAD = {"nan.wav", "inf.wav"}

#: A command still running after this long is stuck (a hang guard, not a speed limit).
STUCK_SECONDS = 600


def _bad_corpus(root: Path) -> tuple[set[str], set[str], set[str]]:
    """Write the corpus under ``root/neutral``; return (good, bad, short-decoding) file names."""
    d = root / "neutral"
    d.mkdir(parents=True)
    good, bad = set(), set()

    def ok(name, seconds=1.0, sr=16000, **kw):
        write_audio(d / name, seconds=seconds, sr=sr, **kw)
        good.add(name)

    for subtype in WAV_SUBTYPES:
        ok(f"fmt_{subtype.lower()}.wav", subtype=subtype)
    for sr in (8000, 11025, 22050, 44100, 48000):
        ok(f"rate_{sr}.wav", sr=sr)
    ok("stereo.wav", channels=2)
    ok("six_channels.wav", channels=6)
    ok("long_40s.flac", seconds=40.0)
    ok("vorbis.ogg")
    ok("mpeg.mp3", sr=44100)
    ok("née_ünïcødé 名前.wav")
    sf.write(d / "silence.wav", np.zeros(16000, np.float32), 16000)
    good.add("silence.wav")
    (d / "empty.wav").write_bytes(b"")
    sf.write(d / "header_only.wav", np.zeros(0, np.float32), 16000)
    (d / "random_bytes.wav").write_bytes(np.random.default_rng(0).bytes(4000))
    (d / "text.wav").write_text("this is not audio\n")
    nan = tone(1.0)
    nan[100:200] = np.nan
    sf.write(d / "nan.wav", nan, 16000, subtype="FLOAT")
    inf = tone(1.0)
    inf[5] = np.inf
    sf.write(d / "inf.wav", inf, 16000, subtype="FLOAT")
    bad |= {"empty.wav", "header_only.wav", "random_bytes.wav", "text.wav", "nan.wav", "inf.wav"}
    sf.write(d / "short_50ms.wav", tone(0.05), 16000)  # too short for some analysis windows, fine for others
    flac = d / "cut.flac"
    write_audio(flac, seconds=3.0)
    flac.write_bytes(flac.read_bytes()[: flac.stat().st_size // 3])
    wav = d / "cut.wav"
    write_audio(wav, seconds=3.0)
    wav.write_bytes(wav.read_bytes()[: wav.stat().st_size // 2])
    good |= {"cut.flac", "cut.wav"}
    os.symlink(d / "stereo.wav", d / "link_to_stereo.wav")
    os.symlink(d / "no_such_target.wav", d / "dangling_link.wav")
    os.symlink(d / "loop_b.wav", d / "loop_a.wav")
    os.symlink(d / "loop_a.wav", d / "loop_b.wav")
    good.add("link_to_stereo.wav")
    bad |= {"dangling_link.wav", "loop_a.wav", "loop_b.wav"}
    return good, bad, {"cut.flac"}


def _sertool(*args, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "sertool", *map(str, args)], cwd=cwd, capture_output=True,
                            text=True, timeout=STUCK_SECONDS)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 3), result.stderr  # 3: more failures than --max-failures
    return result


def _one_line_errors(rows: list[dict], key: str) -> None:
    for row in rows:
        message = row[key]
        assert message and "\n" not in message and Path(row["path"]).name in message, row


@pytest.fixture(scope="module")
def bad_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    return root, *_bad_corpus(root / "audio")


def test_prepare_lists_good_files_and_names_each_bad_one(bad_corpus):
    root, good, bad, _ = bad_corpus
    _sertool("prepare", "folder", root / "audio", "-o", root / "m.csv", "--max-failures", "100", cwd=root)
    listed = {Path(r["path"]).name for r in csv.DictReader(open(root / "m.csv", encoding="utf-8"))}
    failures = list(csv.DictReader(open(root / "m.failures.csv", encoding="utf-8")))
    failed = {Path(r["path"]).name for r in failures}
    unreadable = bad - DECODE_TIME_BAD  # prepare reads headers only: NaN samples are found when decoding
    assert good <= listed and not listed & unreadable and DECODE_TIME_BAD <= listed
    assert unreadable <= failed and not failed & good
    _one_line_errors(failures, "error")


@pytest.mark.parametrize("features", ["mfcc", "lightsernet_mfcc", "egemaps_functionals"])
def test_extract_scores_every_good_file_and_records_every_bad_one(bad_corpus, features):
    root, good, bad, short = bad_corpus
    files = sorted((root / "audio" / "neutral").iterdir())
    manifest = root / f"all-{features}.csv"  # every file, the bad ones included
    write_manifest([Utterance(id=f"u{k:02d}", path=f, label="neutral", speaker="s") for k, f in enumerate(files)],
                   manifest)
    result = _sertool("extract", manifest, "-f", features, "-o", root / "feats", "--max-failures", "100", cwd=root)
    store = Path(root / result.stdout.strip().splitlines()[-1])
    from sertool.store.reader import FeatureStore

    by_id = {f"u{k:02d}": f.name for k, f in enumerate(files)}
    with FeatureStore(store) as s:
        stored = {by_id[i] for i in s.keys()}
        assert all(np.isfinite(s[i]).all() for i in s.keys())
    failures = list(csv.DictReader(open(store.with_suffix(".failures.csv"), encoding="utf-8")))
    failed = {Path(r["path"]).name for r in failures}
    assert good <= stored and bad <= failed and not stored & failed
    assert stored | failed == {f.name for f in files}  # every file has exactly one outcome
    _one_line_errors(failures, "error")
    warnings = list(csv.DictReader(open(store.with_name(store.stem + ".warnings.csv"), encoding="utf-8")))
    assert {Path(r["path"]).name for r in warnings} == short
    assert "decoded 0." in warnings[0]["warning"] and "header says 3.000 s" in warnings[0]["warning"]
    assert "warning:" in result.stderr


def test_predict_scores_every_good_file_and_gives_each_bad_one_an_error_row(bad_corpus):
    root, good, bad, short = bad_corpus
    _sertool("predict", root / "audio", "-o", root / "p.csv", "--max-failures", "100", cwd=root)
    rows = list(csv.DictReader(open(root / "p.csv", encoding="utf-8")))
    names = [Path(r["path"]).name for r in rows]
    assert len(names) == len(set(names)) == len(list((root / "audio" / "neutral").iterdir()))
    scored = {Path(r["path"]).name for r in rows if not r["error"]}
    assert good <= scored and not scored & bad
    _one_line_errors([r for r in rows if r["error"]], "error")
    by_name = {Path(r["path"]).name: r for r in rows}
    assert float(by_name["cut.flac"]["duration"]) == pytest.approx(0.77, abs=0.1)  # decoded length, not the header's
    assert float(by_name["long_40s.flac"]["duration"]) == pytest.approx(40.0, abs=1e-3)
    warned = {Path(r["path"]).name for r in csv.DictReader(open(root / "p.warnings.csv", encoding="utf-8"))}
    assert warned == short


def test_file_size_limit_during_extract_is_one_line_and_the_rerun_completes(tmp_path):
    import resource

    for i in range(30):
        write_audio(tmp_path / "audio" / "calm" / f"c{i:02d}.wav", seconds=3.0, freq=150 + 5 * i, seed=i)
    _sertool("prepare", "folder", tmp_path / "audio", "-o", tmp_path / "m.csv", cwd=tmp_path)

    def limit():  # 1 MiB files at most: the store's writes fail with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    command = [sys.executable, "-m", "sertool", "extract", str(tmp_path / "m.csv"), "-f", "logmel", "-o",
               str(tmp_path / "feats"), "--checkpoint-every", "0"]
    failed = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit,
                            timeout=STUCK_SECONDS)
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    lines = [line for line in failed.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "file size limit" in lines[0] and len(failed.stderr.strip().splitlines()) == 1
    assert not list((tmp_path / "feats").glob("*.tmp"))
    from sertool.store.reader import FeatureStore

    kept = 0  # the entries finished before the limit hit, if a store was written at all
    for path in (tmp_path / "feats").glob("m.logmel-*.h5"):
        with FeatureStore(path) as store:
            kept = len(store)
    done = _sertool("extract", tmp_path / "m.csv", "-f", "logmel", "-o", tmp_path / "feats", cwd=tmp_path)
    assert f"{30 - kept} extracted, {kept} up to date, 0 failed" in done.stderr
    with FeatureStore(done.stdout.strip().splitlines()[-1]) as store:
        assert len(store) == 30


def test_a_long_file_cut_short_streams_and_scores_like_a_short_clip(tmp_path):
    """A FLAC whose header says 200 s but which decodes to about 2 s takes the streaming path and still scores."""
    import sertool

    long = write_audio(tmp_path / "long.flac", seconds=200.0)
    long.write_bytes(long.read_bytes()[: long.stat().st_size // 100])
    with pytest.warns(TruncatedAudioWarning, match="header says 200.000 s"):
        result = sertool.predict("ravdess", long)
    with pytest.warns(TruncatedAudioWarning, match="header says 200.000 s"):
        decoded = load_audio(long, sr=16000)
    assert 0.5 < decoded.shape[0] / 16000 < 5.0  # cut to about 2 s: short enough for one window
    assert result.durations[0] == pytest.approx(decoded.shape[0] / 16000, abs=1e-3)
    assert len(result.windows[0]) == 1


def test_warnings_of_files_done_earlier_survive_a_resumed_run(bad_corpus, tmp_path):
    root, _, _, short = bad_corpus
    out = tmp_path / "p.csv"
    _sertool("predict", root / "audio", "-o", out, "--max-failures", "100", cwd=root)
    _sertool("predict", root / "audio", "-o", out, "--max-failures", "100", cwd=root)  # everything resumed
    warned = {Path(r["path"]).name for r in csv.DictReader(open(tmp_path / "p.warnings.csv", encoding="utf-8"))}
    assert warned == short


def test_in_memory_samples_of_any_dtype_and_bad_settings():
    import sertool

    x = tone(2.0)
    as_float = sertool.predict("ravdess", (x, 16000))
    as_int16 = sertool.predict("ravdess", ((x * 32767).astype(np.int16), 16000))
    np.testing.assert_allclose(as_int16.probabilities, as_float.probabilities, atol=1e-3)
    with pytest.raises(sertool.AudioError, match="sample rate"):
        sertool.predict("ravdess", (x, 0))
    with pytest.raises(sertool.ConfigError, match="crop_tolerance"):
        sertool.predict("ravdess", (x, 16000), crop_tolerance=-0.5)
