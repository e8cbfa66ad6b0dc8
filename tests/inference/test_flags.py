"""Input checks (the ``flags`` column): each flag fires on its generated case and stays quiet on clean speech."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
import soundfile as sf
import soxr
from click.testing import CliRunner
from scipy.signal import ellip, sosfilt

from sertool.cli.main import cli
from sertool.errors import SertoolError
from sertool.features import dsp
from sertool.inference import flags as F
from sertool.inference.bundled import BUNDLED
from sertool.inference.rows import header, resume
from sertool.inference.stream import stream_scores
from tests.conftest import SHARED_DATA, write_audio

SR = 16000


def speech_like(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Syllables of a 150 Hz voice (harmonics to 7.5 kHz, -6 dB/octave) with pauses, at -26 dBFS active level."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(0.25 * SR)) / SR
    voice = sum(np.sin(2 * np.pi * 150 * k * t + rng.uniform(0, 6)) / k for k in range(1, 51)) * np.hanning(t.size)
    pause = np.zeros(int(0.15 * SR))
    one = np.concatenate([pause, voice, pause])
    y = np.tile(one, int(np.ceil(seconds * SR / one.size)))[:int(seconds * SR)]
    y = y + 1e-3 * rng.standard_normal(y.size)  # a noise floor 50-60 dB under the voice
    y *= 10 ** ((dsp.TARGET_SPEECH_DBFS - dsp.active_level_db(dsp.frame_powers(y, SR))) / 20)
    return y.astype(np.float32)


def flags_of(samples, **facts) -> list[str]:
    return F.check_audio(samples, SR, **facts).flags()


# ---------------------------------------------------------------- one case per flag
def test_clean_speech_raises_no_flag_at_any_reasonable_gain():
    y = speech_like()
    assert flags_of(y) == []
    for db in (-10, -20):
        assert flags_of(y * np.float32(10 ** (db / 20))) == []


def test_silence_is_quiet_and_without_speech():
    assert flags_of(np.zeros(3 * SR, np.float32)) == ["quiet", "no_speech"]


def test_speech_at_minus_70_dbfs_is_quiet_and_only_quiet():
    y = speech_like()
    quiet = y * np.float32(10 ** ((-70 - dsp.TARGET_SPEECH_DBFS) / 20))
    assert dsp.active_level_db(dsp.frame_powers(quiet, SR)) == pytest.approx(-70, abs=0.01)
    assert flags_of(quiet) == ["quiet"]


def test_clipped_speech_is_clipped():
    y = np.clip(speech_like() * 20, -1, 1)  # +26 dB into a hard limit
    assert flags_of(y) == ["clipped"]
    assert flags_of(np.clip(speech_like(), -1, 1)) == []  # a full-scale peak alone is not clipping


def test_band_limited_speech_is_narrowband():
    y = speech_like()
    telephone = sosfilt(ellip(8, 0.5, 80, 3400, fs=SR, output="sos"), y).astype(np.float32)  # 80 dB stop band
    from_4k = soxr.resample(soxr.resample(y, SR, 4000), 4000, SR)
    assert flags_of(telephone) == ["narrowband"]
    assert flags_of(from_4k) == ["narrowband"]
    assert flags_of(y, native_rate=8000) == ["narrowband"]  # the original file was at 8 kHz
    assert flags_of(y, native_rate=44100) == []


def test_white_noise_has_no_speech():
    noise = np.random.default_rng(1).normal(0, 0.05, 3 * SR).astype(np.float32)
    assert "no_speech" in flags_of(noise)


def test_durations_outside_the_training_range_are_short_or_long():
    y = speech_like(6.0)
    train_range = (2.0, 4.0)
    assert flags_of(y[:SR], train_range=train_range) == ["short"]
    assert flags_of(y, train_range=train_range) == ["long"]
    assert flags_of(y[:3 * SR], train_range=train_range) == []
    assert flags_of(y[:int(1.85 * SR)], train_range=train_range) == []  # within DURATION_TOLERANCE of the range
    assert flags_of(y[:SR]) == []  # no range recorded: no duration flags


def test_channels_that_cancel_are_cancelling():
    y = speech_like()
    assert F.mix_db(np.stack([y, y], axis=1)) == pytest.approx(0.0, abs=1e-6)
    independent = np.stack([y, np.random.default_rng(2).normal(0, np.sqrt(np.mean(y ** 2)), y.size)], axis=1)
    assert -4 < F.mix_db(independent) < -2  # independent channels of equal energy: -3 dB
    opposite = np.stack([y, -y], axis=1)
    assert flags_of(opposite.mean(axis=1), channels=opposite) == ["quiet", "no_speech", "cancelling"]
    nearly = np.stack([y, -0.8 * y], axis=1)  # mix 19 dB down, but still speech
    assert flags_of(nearly.mean(axis=1), channels=nearly) == ["cancelling"]
    assert F.mix_db(y[:, None]) is None


def test_file_channel_mix_equals_the_in_memory_one(tmp_path):
    y = speech_like()
    stereo = np.stack([y, -0.9 * y + 0.01], axis=1)
    sf.write(tmp_path / "s.wav", stereo, SR, subtype="FLOAT")
    sf.write(tmp_path / "m.wav", y, SR, subtype="FLOAT")
    assert F.file_mix_db(tmp_path / "s.wav", block_frames=1000) == pytest.approx(F.mix_db(stereo), abs=1e-4)
    assert F.file_mix_db(tmp_path / "m.wav") is None


# ---------------------------------------------------------------- blocks, spans, gain
def test_flags_of_blocks_and_spans_equal_those_of_the_joined_audio():
    y = np.concatenate([speech_like(3.0), np.zeros(3 * SR, np.float32), speech_like(3.0, seed=2)])
    whole = F.check_audio(y, SR)
    pushed = F.InputChecks(SR)
    for start in range(0, y.size, 4321):
        pushed.push(y[start:start + 4321])
    assert pushed.samples == y.size and np.array_equal(pushed._stats(), whole._stats())
    assert whole.flags() == []
    assert whole.flags((3.0, 6.0)) == ["quiet", "no_speech"]  # the silent window alone
    assert whole.flags((0.0, 3.0)) == whole.flags((6.0, 9.0)) == []
    pushed.forget_before(6.0)  # a stream forgets what its rows are done with: later spans are unchanged
    assert pushed.flags((6.0, 9.0)) == [] and pushed.flags((5.0, 7.0)) == whole.flags((6.0, 7.0))


def test_flags_other_than_quiet_do_not_depend_on_the_gain():
    cases = [speech_like(), np.clip(speech_like() * 20, -1, 1),
             soxr.resample(soxr.resample(speech_like(), SR, 4000), 4000, SR)]
    for y in cases:
        reference = flags_of(y)
        for db in (-20, -40):
            assert [f for f in flags_of(y * np.float32(10 ** (db / 20))) if f not in ("quiet", "clipped")] == \
                [f for f in reference if f != "clipped"]


def test_duration_range_of_training_clips():
    assert F.duration_range([0.0, 0.0]) is None  # a manifest without durations
    got = F.duration_range(list(np.linspace(1.0, 5.0, 101)) + [0.0])
    assert got == pytest.approx([1.04, 4.96], abs=1e-3)

    class Old:
        metrics = {"valid_UA": 0.5}

    class New:
        metrics = {"train_duration_s": [1.0, 4.0]}

    assert F.checkpoint_range(Old()) is None and F.checkpoint_range(New()) == (1.0, 4.0)


# ---------------------------------------------------------------- the flags column
def _cases(folder):
    folder.mkdir()
    y = speech_like(3.0)
    sf.write(folder / "clean.wav", y, SR)
    sf.write(folder / "quiet.wav", y * 10 ** (-50 / 20), SR, subtype="FLOAT")
    sf.write(folder / "phone8k.wav", soxr.resample(y, SR, 8000), 8000)
    sf.write(folder / "inverted.wav", np.stack([y, -y], axis=1), SR)
    sf.write(folder / "pause.wav", np.concatenate([y, np.zeros(9 * SR, np.float32)]), SR)


def _rows(text: str) -> dict[str, dict]:
    return {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(io.StringIO(text))}


def test_predict_writes_the_flags_column_and_says_how_many_files_got_flags(tmp_path):
    _cases(tmp_path / "in")
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "in"), "-m", "ravdess", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out.read_text())
    assert {name: r["flags"] for name, r in rows.items()} == {
        "clean.wav": "", "quiet.wav": "quiet", "phone8k.wav": "narrowband",
        "inverted.wav": "quiet;no_speech;cancelling", "pause.wav": ""}
    assert all(r["predicted"] and not r["error"] for r in rows.values())  # flags never stop scoring
    assert "predict: 3 of 5 files flagged (" in result.output and "see the flags column" in result.output
    labels = [k[2:] for k in rows["clean.wav"] if k.startswith("p_")]
    assert list(csv.reader(out.open()))[0] == header(labels, False)  # flags sits before error, which stays last
    again = CliRunner().invoke(cli, ["predict", str(tmp_path / "in"), "-m", "ravdess", "-o", str(out)])
    assert "0 scored, 5 already" in again.output and _rows(out.read_text()) == rows  # resume keeps the flags


def test_segment_rows_carry_the_flags_of_their_own_window(tmp_path):
    _cases(tmp_path / "in")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "in" / "pause.wav"), "-m", "ravdess", "--segments",
                                      "-o", "-"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) >= 5
    first, last = rows[0], rows[-1]
    assert float(first["start"]) == 0.0 and first["flags"] == ""
    assert float(last["start"]) > 3.5 and last["flags"] == "quiet;no_speech"


def test_resume_refuses_a_file_without_the_flags_column(tmp_path):
    out = tmp_path / "old.csv"
    old = [c for c in header(["a", "b"], False) if c != "flags"]
    out.write_text(",".join(old) + "\nx.wav,a,0.6,0.6,0.4,1.000,\n")
    with pytest.raises(SertoolError, match="without the flags column; use another -o, or --no-resume"):
        resume(out, header(["a", "b"], False))


def test_stream_rows_carry_flags(tmp_path):
    y = np.concatenate([speech_like(3.0), np.zeros(6 * SR, np.float32)])
    buf = io.BytesIO()
    sf.write(buf, y, SR, format="WAV", subtype="PCM_16")
    out = io.StringIO()
    result = stream_scores(BUNDLED["ravdess"], io.BytesIO(buf.getvalue()), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert result.windows == len(rows) >= 4 and result.flagged >= 1
    assert rows[0]["flags"] == "" and rows[-1]["flags"] == "quiet;no_speech"


@pytest.mark.parametrize("corpus", ["ravdess", "emodb-2s", "ased", "baved"])
def test_clean_corpus_files_are_rarely_flagged(corpus):
    root = SHARED_DATA / corpus
    if not root.is_dir():
        pytest.skip(f"../shared/data/{corpus} not available")
    from sertool.io.audio import find_audio, load_audio

    files = sorted(find_audio(root))[::40]  # every 40th file
    flagged = [f for f in files if F.check_audio(load_audio(f, sr=SR), SR).flags()]
    assert len(flagged) <= 0.03 * len(files) + 1, flagged


def test_training_records_the_clip_durations_and_predict_flags_short_and_long(pitch_corpus, tmp_path):
    from sertool.models.checkpoint import Checkpoint
    from sertool.training.trainer import build_train_config, train_run

    _, manifest, _, vectors = pitch_corpus  # 0.5 s clips
    train_run(manifest, vectors, model="logreg", output=tmp_path / "run", protocol="loso", fold=0, valid_speakers=1,
              train_config=build_train_config({"norm": "global"}, model="logreg"))
    checkpoint = tmp_path / "run" / "fold-0" / "checkpoint.pt"
    assert Checkpoint.load(checkpoint).metrics["train_duration_s"] == pytest.approx([0.5, 0.5], abs=1e-3)
    y = speech_like(2.0)
    sf.write(tmp_path / "a_short.wav", y[int(0.15 * SR):int(0.45 * SR)], SR)  # 0.3 s: a syllable and a pause
    sf.write(tmp_path / "b_fits.wav", y[:int(0.5 * SR)], SR)
    sf.write(tmp_path / "c_long.wav", y, SR)
    result = CliRunner().invoke(cli, ["predict", str(checkpoint), *(str(tmp_path / n) for n in
                                                                    ("a_short.wav", "b_fits.wav", "c_long.wav"))])
    rows = _rows(result.stdout)
    assert len(rows) == 3, result.output
    assert [rows[n]["flags"] for n in ("a_short.wav", "b_fits.wav", "c_long.wav")] == ["short", "", "long"]


def test_a_short_file_header_is_read_once_for_the_long_file_decision_and_the_checks(tmp_path, monkeypatch):
    from sertool.inference.engine import Scorer
    from sertool.io import audio
    from sertool.models.checkpoint import Checkpoint

    path = write_audio(tmp_path / "clip.wav", seconds=1.0)
    scorer = Scorer(Checkpoint.load(BUNDLED["ravdess"]))
    reads = []
    real = audio.audio_info
    monkeypatch.setattr(audio, "audio_info", lambda p: reads.append(p) or real(p))
    assert not scorer.is_long(path)  # what predict asks first
    scorer.features(path)
    assert len(reads) == 1 and scorer.checks.pop(str(path)).native_rate == 16000
    scorer.features(path)  # the next scoring of the file reads its header again (nothing stale is kept)
    assert len(reads) == 2
