"""Hostile audio headers: memory follows the bytes present, and a rate that is not audio is a failure row.

A FLAC whose STREAMINFO claims 2^36 - 1 samples made ``extract`` allocate 256 GiB (a MemoryError
traceback, on every rerun); a WAV whose header says 1 Hz was resampled to 16 kHz, 16000 times its samples
(4 GB of RSS for 32 KB of audio).
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import sertool
import sertool.io.audio as audio
from sertool.cli.main import cli
from sertool.errors import AudioError
from sertool.io.audio import TruncatedAudioWarning, audio_info, decode_bytes, load_audio, stream_audio
from sertool.io.pcm import raw_format, read_wav_header
from sertool.store.reader import FeatureStore
from tests.conftest import tone, write_audio

#: Peak RSS a CLI run on these few tiny files stays under (the 1 Hz WAV alone took 4 GB before).
MAX_RSS_BYTES = 1_500_000_000


def flac_claiming(path: Path, total: int = (1 << 36) - 1) -> Path:
    """A real one-second FLAC whose STREAMINFO total-samples field (36 bits) is patched to ``total``."""
    sf.write(path, tone(1.0), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO is the first metadata block
    field = int.from_bytes(data[18:26], "big")  # rate (20 bits), channels (3), bits (5), total samples (36)
    data[18:26] = ((field & ~((1 << 36) - 1)) | total).to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


def wav_bytes(rate: int, seconds: float = 1.0) -> bytes:
    """A 16-bit mono WAV whose header says ``rate`` Hz (the data: ``seconds`` of a tone at 16 kHz)."""
    data = (tone(seconds) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, rate, min(2 * rate, 0xFFFFFFFF), 2, 16)
    return b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + fmt + b"data" + struct.pack(
        "<I", len(data)) + data


@pytest.fixture
def hostile(tmp_path) -> dict[str, Path]:
    (tmp_path / "onehz.wav").write_bytes(wav_bytes(1, seconds=2.0))  # resampled to 16 kHz: 2 GB of float32
    return {"flac": flac_claiming(tmp_path / "huge.flac"), "wav": tmp_path / "onehz.wav",
            "good": write_audio(tmp_path / "good.wav", seconds=1.0)}


def test_a_flac_claiming_2_36_samples_decodes_what_is_there_as_a_truncated_file(hostile, tmp_path):
    reference = flac_claiming(tmp_path / "honest.flac", total=16000)
    with pytest.warns(TruncatedAudioWarning, match="header says 4294967.296 s"):
        samples = load_audio(hostile["flac"], sr=16000, pad=100)
    np.testing.assert_array_equal(samples, load_audio(reference, sr=16000, pad=100))
    with pytest.warns(TruncatedAudioWarning):
        streamed = np.concatenate(list(stream_audio(hostile["flac"], sr=16000)))
    np.testing.assert_array_equal(streamed, load_audio(reference, sr=16000))


def test_without_dr_flac_libsndfile_refuses_it_in_one_line(hostile, monkeypatch):
    monkeypatch.setattr(audio, "_drflac", lambda: None)  # as without the optional miniaudio package
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedAudioWarning)
        try:
            samples = load_audio(hostile["flac"], sr=16000)
        except AudioError as exc:  # libsndfile gives up at the end of the real frames
            assert str(exc).startswith(str(hostile["flac"])) and "\n" not in str(exc)
        else:
            assert samples.shape == (16000,)
        with pytest.raises(AudioError, match="cannot decode the stream"):
            decode_bytes(hostile["flac"].read_bytes(), name="-")


def test_a_header_longer_than_the_bytes_is_fine_when_the_audio_is_really_there(tmp_path):
    path = tmp_path / "silence.flac"
    sf.write(path, np.zeros(16000 * 120, np.float32), 16000, subtype="PCM_16")  # 120 s in a few KB: decoded in blocks
    assert path.stat().st_size * audio.MAX_SAMPLES_PER_BYTE < 16000 * 120
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncatedAudioWarning)
        samples = load_audio(path, sr=16000)
    assert samples.shape == (16000 * 120,) and not samples.any()


@pytest.mark.parametrize("rate", [1, 999, 768001, 2_000_000_000])
def test_a_rate_that_is_not_audio_is_refused_everywhere(tmp_path, rate):
    path = tmp_path / f"r{rate}.wav"
    path.write_bytes(wav_bytes(rate, seconds=0.1))
    message = f"sample rate {rate} Hz is not audio"
    for read in (lambda: load_audio(path), lambda: list(stream_audio(path)), lambda: audio_info(path),
                 lambda: decode_bytes(path.read_bytes()), lambda: read_wav_header(io.BytesIO(path.read_bytes()))):
        with pytest.raises(AudioError, match=message):
            read()
    with pytest.raises(AudioError, match=message):
        raw_format(rate)


def test_rates_of_real_audio_still_decode(tmp_path):
    for rate in (8000, 44100, 384000):
        path = write_audio(tmp_path / f"r{rate}.wav", seconds=0.2, sr=rate)
        assert abs(load_audio(path, sr=16000).shape[0] - 3200) <= 1
    assert raw_format(1000).rate == 1000 and raw_format(768000).rate == 768000


def _run_measured(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, int]:
    """``sertool ARGS`` in a fresh process; its result and its peak RSS in bytes (ru_maxrss of the only child)."""
    probe = ("import json, resource, subprocess, sys; "
             "r = subprocess.run([sys.executable, '-m', 'sertool', *sys.argv[1:]], capture_output=True, text=True); "
             "print(json.dumps([r.returncode, r.stdout, r.stderr, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024]))")
    done = subprocess.run([sys.executable, "-c", probe, *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    code, stdout, stderr, rss = json.loads(done.stdout)
    return subprocess.CompletedProcess(args, code, stdout, stderr), rss


def test_extract_makes_failure_rows_with_bounded_memory_and_reruns_go_on(hostile, tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,path,label\nflac,huge.flac,x\nwav,onehz.wav,x\ngood,good.wav,x\n")
    for _ in range(2):  # a rerun does not stop at these rows either
        result, rss = _run_measured(["extract", str(manifest), "-f", "mfcc", "-o", str(tmp_path / "feats")], tmp_path)
        assert result.returncode == 3, result.stderr
        assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
        assert rss < MAX_RSS_BYTES, f"peak RSS {rss / 1e9:.2f} GB"
    assert "sample rate 1 Hz is not audio" in result.stderr or "1 failed" in result.stderr
    store = Path(result.stdout.strip().splitlines()[-1])
    failures = store.with_suffix(".failures.csv").read_text()
    assert "onehz.wav" in failures and "sample rate 1 Hz is not audio" in failures and "huge.flac" not in failures
    with FeatureStore(store) as opened:
        assert sorted(opened.keys()) == ["flac", "good"]


def test_predict_scores_the_flac_and_fails_the_wav_with_bounded_memory(hostile, tmp_path):
    result, rss = _run_measured(["predict", str(hostile["flac"]), str(hostile["wav"]), str(hostile["good"]),
                                 "-o", str(tmp_path / "p.csv")], tmp_path)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    assert rss < MAX_RSS_BYTES, f"peak RSS {rss / 1e9:.2f} GB"
    rows = {Path(r.split(",")[0]).name: r for r in (tmp_path / "p.csv").read_text().splitlines()[1:]}
    assert "sample rate 1 Hz is not audio" in rows["onehz.wav"]
    assert rows["huge.flac"].split(",")[1] and rows["good.wav"].split(",")[1]  # scored


def test_predict_and_stream_on_stdin_refuse_a_rate_that_is_not_audio():
    for args in (["predict", "-", "-o", "-"], ["stream"]):
        result = CliRunner().invoke(cli, args, input=wav_bytes(1, seconds=0.5))
        assert result.exit_code == 1 and "sample rate 1 Hz is not audio" in result.output
        assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["predict", "-", "--rate", "1", "-o", "-"], input=b"\x00\x01" * 1000)
    assert result.exit_code == 1 and "sample rate 1 Hz is not audio" in result.output


def test_samples_in_memory_at_a_rate_that_is_not_audio_are_refused():
    with pytest.raises(AudioError, match="<array 0>: sample rate 1 Hz is not audio.*real rate"):
        sertool.predict("default", (np.zeros(2000, np.float32), 1))
