"""load_audio: formats, rates, channels, and every kind of bad file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sertool.io.audio import audio_info, load_audio
from sertool.errors import AudioError
from tests.conftest import tone


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_resamples_to_target_rate(make_audio, sr):
    path = make_audio(f"x_{sr}.wav", seconds=1.0, sr=sr)
    y = load_audio(path, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(y.shape[0] - 16000) <= 1
    # a 220 Hz tone stays a 220 Hz tone after resampling
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / y.shape[0] - 220) < 3


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"])
def test_wav_sample_formats_decode_to_the_same_signal(make_audio, subtype):
    path = make_audio(f"x_{subtype}.wav", seconds=0.5, subtype=subtype)
    y = load_audio(path, sr=16000)
    reference = tone(0.5)
    tolerance = 1e-2 if subtype == "PCM_U8" else 1e-4
    assert np.max(np.abs(y - reference)) < tolerance


def test_decoding_equals_libsndfile_float_conversion(make_audio):
    path = make_audio("x.flac", seconds=0.5, subtype="PCM_16")
    expected, _ = sf.read(path, dtype="float32")
    assert np.array_equal(load_audio(path, sr=16000), expected)


def test_stereo_is_mixed_to_mono(make_audio):
    path = make_audio("stereo.wav", seconds=0.5, channels=2)
    stereo, _ = sf.read(path, dtype="float32")
    y = load_audio(path, sr=16000)
    assert y.shape == (stereo.shape[0],)
    np.testing.assert_allclose(y, stereo.mean(axis=1), atol=1e-6)


def test_flac_is_lossless(tmp_path):
    path = tmp_path / "x.flac"
    sf.write(path, tone(0.5), 16000, format="FLAC", subtype="PCM_16")
    np.testing.assert_allclose(load_audio(path, sr=16000), tone(0.5), atol=1e-4)


def test_ogg_vorbis_keeps_length_and_pitch(tmp_path):
    path = tmp_path / "x.ogg"
    sf.write(path, tone(0.5), 16000, format="OGG")
    y = load_audio(path, sr=16000)
    assert abs(y.shape[0] - 8000) < 200
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / y.shape[0] - 220) < 3  # the 220 Hz tone survives the lossy codec


def _libsndfile_mono(path):
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    return data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]


@pytest.mark.parametrize("subtype,channels,sr", [("PCM_16", 1, 16000), ("PCM_24", 1, 16000),
                                                 ("PCM_16", 2, 16000), ("PCM_16", 1, 44100)])
def test_flac_fast_decoder_equals_libsndfile(make_audio, monkeypatch, subtype, channels, sr):
    pytest.importorskip("miniaudio")
    path = make_audio(f"x_{subtype}_{channels}_{sr}.flac", seconds=0.7, subtype=subtype, channels=channels, sr=sr)
    from sertool.io import audio

    mono, _, rate, frames = audio._decode_flac(path, 0)  # dr_flac did decode it (None: it declined)
    assert (rate, frames) == (sr, sf.info(path).frames)
    np.testing.assert_array_equal(mono, _libsndfile_mono(path))
    fast = load_audio(path, sr=16000, pad=64)
    if sr == 16000:
        assert np.array_equal(fast[64:-64], _libsndfile_mono(path))
    monkeypatch.setattr(audio, "_decode_flac", lambda path, pad: None)  # force libsndfile
    assert np.array_equal(fast, load_audio(path, sr=16000, pad=64))


def test_flac_without_miniaudio_uses_libsndfile(make_audio, monkeypatch):
    import sys

    path = make_audio("plain.flac", seconds=0.5, subtype="PCM_16")
    monkeypatch.setitem(sys.modules, "miniaudio", None)  # "not installed"
    assert np.array_equal(load_audio(path, sr=16000), _libsndfile_mono(path))


def test_bad_flac_gets_libsndfiles_error(tmp_path, make_audio):
    fake = tmp_path / "fake.flac"
    fake.write_text("not audio at all\n" * 20)
    with pytest.raises(AudioError, match=r"fake\.flac: cannot decode audio"):
        load_audio(fake)
    cut = make_audio("cut.flac", seconds=2.0, subtype="PCM_16")
    cut.write_bytes(cut.read_bytes()[: cut.stat().st_size // 2])
    y = load_audio(cut, sr=16000)  # the frames before the cut, whichever decoder read them
    assert 0 < y.shape[0] < 32000
    np.testing.assert_allclose(y, tone(2.0)[: y.shape[0]], atol=1e-4)  # 16-bit copies of the first samples


def test_mp3_when_libsndfile_supports_it(tmp_path):
    if "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    path = tmp_path / "x.mp3"
    sf.write(path, tone(1.0), 16000, format="MP3")
    y = load_audio(path, sr=16000)
    assert 0.9 * 16000 < y.shape[0] < 1.2 * 16000


def test_silence_is_valid_audio(tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(8000, np.float32), 16000)
    assert np.all(load_audio(path, sr=16000) == 0)


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.wav: empty file \(0 bytes\)"):
        load_audio(path)


def test_wav_with_no_samples(tmp_path):
    path = tmp_path / "nosamples.wav"
    sf.write(path, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioError, match="no audio samples"):
        load_audio(path)


def test_truncated_header_is_a_clear_error(make_audio):
    path = make_audio("trunc.wav", seconds=0.5)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(AudioError, match=r"trunc\.wav: cannot decode audio"):
        load_audio(path)


def test_truncated_data_keeps_what_is_there(make_audio):
    path = make_audio("cut.wav", seconds=1.0, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: 44 + 2 * 4000])  # header + 4000 samples; the header still claims 16000
    y = load_audio(path, sr=16000)
    assert y.shape[0] == 4000


@pytest.mark.parametrize("name,kw", [
    ("mono.flac", dict(subtype="PCM_16")),             # decoded straight into the padded array
    ("stereo.wav", dict(channels=2)),                  # mixed down, then padded
    ("fast.wav", dict(sr=22050)),                      # resampled, then padded
])
def test_pad_adds_zeros_around_the_same_samples(make_audio, name, kw):
    path = make_audio(name, seconds=0.5, **kw)
    plain = load_audio(path, sr=16000)
    padded = load_audio(path, sr=16000, pad=256)
    assert padded.dtype == np.float32 and padded.shape == (plain.shape[0] + 512,)
    assert not padded[:256].any() and not padded[-256:].any()
    assert np.array_equal(padded[256:-256], plain)


def test_pad_of_a_truncated_file_follows_the_samples_read(make_audio):
    path = make_audio("cut.wav", seconds=1.0, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[: 44 + 2 * 4000])  # the header still claims 16000 samples
    padded = load_audio(path, sr=16000, pad=100)
    assert padded.shape == (4200,)
    assert not padded[4100:].any() and padded[100:4100].any()


def test_pad_keeps_the_checks(make_audio):
    path = make_audio("short.wav", seconds=0.01)
    with pytest.raises(AudioError, match="shorter than"):
        load_audio(path, sr=16000, min_duration=0.025, pad=256)


def test_non_audio_file_is_a_clear_error(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is a text file renamed to .wav\n" * 20)
    with pytest.raises(AudioError, match=r"notes\.wav: cannot decode audio.*remove it"):
        load_audio(path)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "nope.wav")


def test_non_finite_samples_are_rejected(tmp_path):
    y = tone(0.2)
    y[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, y, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_audio(path)


def test_too_short(make_audio):
    path = make_audio("short.wav", seconds=0.01)
    with pytest.raises(AudioError, match=r"short\.wav: 0\.010 s of audio is shorter than the 0\.025 s needed"):
        load_audio(path, sr=16000, min_duration=0.025)


def test_audio_info_reads_the_header(make_audio):
    info = audio_info(make_audio("i.wav", seconds=1.5, sr=22050, channels=2))
    assert info.sample_rate == 22050 and info.channels == 2 and abs(info.duration - 1.5) < 1e-3
