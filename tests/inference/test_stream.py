"""sertool stream: rows written as a live stream's windows complete, equal to predict --segments of the recording."""

from __future__ import annotations

import csv
import io
import struct
import subprocess
import sys
import threading

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.inference.predict import checkpoint_path, predict_files
from sertool.inference.stream import raw_format, read_wav_header, stream_scores
from tests.conftest import HANG_SECONDS, REPO, write_pitch_corpus

CLIPS = sorted((REPO / "examples").rglob("*.flac"))


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """The example clips joined with 0.7 s silences (about 20 s at 16 kHz), as 16-bit PCM WAV."""
    parts = []
    for clip in CLIPS:
        samples, sr = sf.read(clip, dtype="float32")
        parts += [samples if samples.ndim == 1 else samples.mean(axis=1), np.zeros(int(0.7 * sr), np.float32)]
    path = tmp_path_factory.mktemp("stream") / "joined.wav"
    sf.write(path, np.concatenate(parts), sr, subtype="PCM_16")
    return path


def table(text: str) -> list[dict]:
    return list(csv.DictReader(line for line in text.splitlines() if line and not line.startswith("stream:")))


def probs(rows: list[dict]) -> np.ndarray:
    return np.array([[float(v) for k, v in r.items() if k.startswith("p_")] for r in rows])


def segments(recording, tmp_path, **options) -> list[dict]:
    out = tmp_path / f"reference-{len(list(tmp_path.glob('reference-*.csv')))}.csv"  # a new file each call
    predict_files(checkpoint_path(options.pop("model", "ravdess")), [recording], out, segments=True, **options)
    return list(csv.DictReader(open(out)))


def assert_same_windows(got: list[dict], reference: list[dict]) -> None:
    assert len(got) == len(reference) > 3
    assert [(r["start"], r["end"]) for r in got] == [(r["start"], r["end"]) for r in reference]
    assert np.abs(probs(got) - probs(reference)).max() <= 1.5e-4  # the CSV's 4 decimals
    assert all(r["path"] == "-" and not r["error"] for r in got)


#: Audio (s) the writer may send past a window's end before that window's row must have arrived: 1 hop + 1 s.
LATENCY_AUDIO_S = 1.5 + 1.0


def test_rows_arrive_while_a_slow_writer_is_still_writing_and_equal_predict_segments(recording, tmp_path):
    """Latency bounded in audio, not in seconds: the writer sends no more than LATENCY_AUDIO_S of audio past a
    window's end until that window's row has been read. A stream that held rows back would wait for audio that
    never comes: only then does the HANG_SECONDS guard end the test. A loaded machine only makes it slower."""
    reference = segments(recording, tmp_path)
    ends = [float(r["end"]) for r in reference]
    data = recording.read_bytes()
    header, pcm = data[:44], data[44:]
    chunk = 16000 * 2 // 5  # 0.2 s of audio per write
    proc = subprocess.Popen([sys.executable, "-m", "sertool", "stream", "-m", "ravdess"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    lines: list[str] = []
    ended: list[bool] = []  # the stream closed its output: no row will come any more
    arrived = threading.Condition()
    held: list[tuple[int, float]] = []  # (rows due, audio sent) where the stream stopped without the due row

    def reader():
        for line in proc.stdout:
            with arrived:
                lines.append(line.decode())
                arrived.notify_all()
        with arrived:
            ended.append(True)
            arrived.notify_all()

    def writer():
        proc.stdin.write(header)
        proc.stdin.flush()
        for first in range(0, len(pcm), chunk):
            sent = first / 32000
            due = sum(1 for end in ends if end + LATENCY_AUDIO_S < sent + chunk / 32000)  # rows needed first
            with arrived:
                arrived.wait_for(lambda: max(0, len(lines) - 1) >= due or ended, timeout=HANG_SECONDS)
                if max(0, len(lines) - 1) < due:
                    held.append((due, sent))
                    break
            proc.stdin.write(pcm[first:first + chunk])
            proc.stdin.flush()
        proc.stdin.close()

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert proc.wait(timeout=HANG_SECONDS) == 0, proc.stderr.read().decode()
    assert held == [], "a row was held back until more audio than 1 hop + 1 s past its window had arrived"
    assert_same_windows(table("".join(lines)), reference)
    assert "stream: " in proc.stderr.read().decode()


def test_raw_pcm_24_bit_stereo_and_resampled_streams(recording, tmp_path):
    reference = segments(recording, tmp_path)
    samples, sr = sf.read(recording, dtype="int16")
    out = io.StringIO()
    result = stream_scores(checkpoint_path("ravdess"), io.BytesIO(samples.astype("<i2").tobytes()), out,
                           pcm=raw_format(sr, "s16le"))
    assert result.incremental and result.windows == len(reference)
    assert_same_windows(table(out.getvalue()), reference)
    stereo = tmp_path / "stereo24.wav"  # 24-bit stereo at 22.05 kHz: mixed and resampled as it streams
    mono = sf.read(recording, dtype="float32")[0]
    sf.write(stereo, np.stack([mono, 0.5 * mono], axis=1), 22050, subtype="PCM_24")  # channels differ
    sf.write(tmp_path / "same.wav", sf.read(stereo, dtype="float32")[0].mean(axis=1), 22050, subtype="FLOAT")
    reference = segments(tmp_path / "same.wav", tmp_path)
    out = io.StringIO()
    stream_scores(checkpoint_path("ravdess"), open(stereo, "rb"), out)
    got = table(out.getvalue())
    assert len(got) == len(reference) and np.abs(probs(got) - probs(reference)).max() < 1e-3  # streamed soxr


def _wav_header(rate=16000, data_size=0xFFFFFFFF, extra=b"") -> bytes:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return b"RIFF\xff\xff\xff\xffWAVE" + b"fmt " + struct.pack("<I", 16) + fmt + extra + b"data" + \
        struct.pack("<I", data_size)


def test_wav_header_chunks_lengths_and_bad_streams():
    from sertool.io.audio import PCM_FORMATS
    from sertool.cli.main import RAW_PCM_FORMATS

    assert RAW_PCM_FORMATS == tuple(PCM_FORMATS)
    listing = b"LIST" + struct.pack("<I", 5) + b"INFO!\x00"  # odd size: padded to even
    pcm, length = read_wav_header(io.BytesIO(_wav_header(extra=listing) + b"\x00\x00"))
    assert (pcm.rate, pcm.channels, pcm.dtype, length) == (16000, 1, "<i2", None)
    pcm, length = read_wav_header(io.BytesIO(_wav_header(data_size=8)))
    assert length == 8
    for data, message in ((b"", "no audio bytes"), (b"OggS" + b"\x00" * 40, "not a WAV stream"),
                          (_wav_header()[:38], "ended before its data chunk"),
                          (_wav_header()[:30], "fmt chunk is truncated"),
                          (_wav_header() + b"\x00\x01" * 200, "-: 0.013 s of audio is shorter")):
        result = CliRunner().invoke(cli, ["stream"], input=data)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    float16 = _wav_header().replace(struct.pack("<HHIIHH", 1, 1, 16000, 32000, 2, 16),
                                    struct.pack("<HHIIHH", 3, 1, 16000, 32000, 2, 16))
    result = CliRunner().invoke(cli, ["stream"], input=float16)
    assert result.exit_code == 1 and "not supported; convert it with ffmpeg" in result.output


def test_a_sized_data_chunk_stops_at_its_size(recording):
    samples, sr = sf.read(recording, dtype="int16")
    body = samples[:sr * 4].astype("<i2").tobytes()
    trailer = b"LIST" + struct.pack("<I", 4000) + b"\x7f" * 4000  # would be loud noise if read as audio
    result = CliRunner().invoke(cli, ["stream"], input=_wav_header(data_size=len(body)) + body + trailer)
    assert result.exit_code == 0, result.output
    assert "from 4.0 s of audio" in result.output


def test_refusals_keep_existing_output(tmp_path, recording):
    existing = tmp_path / "rows.csv"
    existing.write_text("finished work\n")
    result = CliRunner().invoke(cli, ["stream", "-o", str(existing)], input=recording.read_bytes())
    assert result.exit_code == 2 and "exists" in result.output and existing.read_text() == "finished work\n"
    result = CliRunner().invoke(cli, ["stream", "-m", "speaker"], input=recording.read_bytes())
    assert result.exit_code == 1 and "normalises per speaker" in result.output
    result = CliRunner().invoke(cli, ["stream", "-o", str(tmp_path / "new.csv")], input=recording.read_bytes())
    assert result.exit_code == 0 and len(table((tmp_path / "new.csv").read_text())) > 3


def test_utterance_level_models_score_each_window_as_predict_does(tmp_path, recording):
    import sertool

    root = write_pitch_corpus(tmp_path / "audio", speakers=4, clips=3, seconds=0.8, speaker_step=12, clip_step=3,
                              seed_step=1)
    manifest = sertool.prepare("folder", root, speaker_regex=r"/(spk\d)_", output=tmp_path / "m.csv").manifest
    store = sertool.extract(manifest, features="mfcc_stats", output=tmp_path / "feats").store_path
    sertool.train(manifest, store, model="logreg", output=tmp_path / "run", protocol="loso", valid_speakers=1,
                  settings={"norm": "global"})
    model = tmp_path / "run" / "fold-0" / "checkpoint.pt"
    reference = segments(recording, tmp_path, model=model, window=2.0, hop=1.0)
    out = io.StringIO()
    result = stream_scores(model, open(recording, "rb"), out, window=2.0, hop=1.0)
    assert not result.incremental
    assert_same_windows(table(out.getvalue()), reference)
    from sertool.errors import AudioError

    with pytest.raises(AudioError, match="-: 0.006 s of audio is shorter"):  # not a silent empty result
        stream_scores(model, io.BytesIO(b"\x01\x00" * 100), io.StringIO(), pcm=raw_format(16000))


def test_python_api_streams_a_path_into_a_new_csv(recording, tmp_path):
    import sertool

    result = sertool.stream(recording, output=tmp_path / "rows.csv", checkpoint="ravdess")
    assert result.incremental and result.windows == len(table((tmp_path / "rows.csv").read_text())) > 3
    with pytest.raises(sertool.ConfigError, match="exists"):
        sertool.stream(recording, output=tmp_path / "rows.csv", checkpoint="ravdess")


def _fmt(tag, channels, rate, bits, block_align=None, extensible_tag=None) -> bytes:
    align = channels * bits // 8 if block_align is None else block_align
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if extensible_tag is not None:  # cbSize 22, valid bits, channel mask, then the sub-format GUID
        body += struct.pack("<HHI", 22, bits, 3) + struct.pack("<H", extensible_tag) + b"\x00" * 14
    return b"RIFF\xff\xff\xff\xffWAVE" + b"fmt " + struct.pack("<I", len(body)) + body + b"data\x00\x00\x00\x00"


def test_wav_formats_extensible_float_eight_bit_and_damaged_headers():
    pcm, _ = read_wav_header(io.BytesIO(_fmt(0xFFFE, 2, 48000, 32, extensible_tag=3)))
    assert (pcm.dtype, pcm.channels, pcm.rate) == ("<f4", 2, 48000)
    pcm, _ = read_wav_header(io.BytesIO(_fmt(1, 1, 8000, 8)))
    np.testing.assert_allclose(pcm.to_mono(bytes([0, 128, 255])), [-1.0, 0.0, 127 / 128])
    pcm, _ = read_wav_header(io.BytesIO(_fmt(1, 2, 16000, 24)))
    three = b"\x00\x00\x80" + b"\xff\xff\x7f" + b"\xff\xff\xff" + b"\x01\x00\x00"  # -1, 1-2^-23 | -2^-23, 2^-23
    np.testing.assert_allclose(pcm.to_mono(three), [(-1 + (1 - 2 ** -23)) / 2, 0.0], atol=1e-7)
    for header, message in ((_fmt(1, 2, 16000, 24, block_align=8), "8 bytes per frame) is not supported"),
                            (b"RIFF\x00\x00\x00\x00WAVEfmt \xf0\xff\xff\xff", "header is damaged")):
        result = CliRunner().invoke(cli, ["stream"], input=header)
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output


def test_stream_windows_equal_plan_windows_for_any_block_split():
    from sertool.inference.engine import Scorer
    from sertool.models.checkpoint import Checkpoint

    scorer = Scorer(Checkpoint.load(checkpoint_path("ravdess")), None, None, crop_tolerance=0.0, batch_size=1)
    rng = np.random.default_rng(0)
    dim = len(scorer.checkpoint.norm_mean)
    window = scorer.plan.window
    for total in (1, window - 1, window, window + 1, 3 * window + 7, 1000):
        feats = rng.standard_normal((total, dim)).astype(np.float32)
        cuts = np.sort(rng.choice(np.arange(1, total), size=min(total - 1, 5), replace=False)) if total > 1 else []
        blocks = [(piece, 256 * (end + 3)) for piece, end in zip(np.split(feats, cuts), [*cuts, total])]
        got = list(scorer.stream_windows(iter(blocks)))
        want = scorer.windows(feats, 256 * (total + 3) / 16000)
        assert [span for span, _ in got] == [span for span, _ in want], total
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, want))


def test_a_failed_stream_leaves_no_output_file(tmp_path):
    target = tmp_path / "rows.csv"
    result = CliRunner().invoke(cli, ["stream", "-o", str(target)], input=b"not audio at all" * 4)
    assert result.exit_code == 1 and not target.exists()
    result = CliRunner().invoke(cli, ["stream", "--hop", "0"], input=b"")
    assert result.exit_code == 2 and "--hop" in result.output
