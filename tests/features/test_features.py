"""Spectral features against librosa and scipy, config hashing, openSMILE specifics.

The contract every preset keeps (shapes, round trips, streaming) is in ``test_feature_contract.py``.
"""

from __future__ import annotations

import dataclasses

import librosa
import numpy as np
import pytest
import scipy.fft
import scipy.signal
import soundfile as sf

from sertool.errors import ConfigError
from sertool.features import build_config, build_extractor, dsp
from tests.conftest import tone


def rel_err(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def speech_like(seconds=2.0, sr=16000):
    return tone(seconds, sr, freq=180.0) * np.hanning(int(seconds * sr)).astype(np.float32)


# ---------------------------------------------------------------- config hashing (the per-preset contract: test_feature_contract.py)
#: Another valid value for the fields whose neighbour (+1, +0.5, not) is invalid or not a number.
OTHER_VALUES = {"window": "hann", "pad_mode": "reflect", "mel_norm": "none", "log": "ln", "power": 1.0,
                "delta_order": 1, "delta_width": 11, "gain": "speech_rms"}


def test_hash_tracks_every_field():
    base = build_config("mfcc")
    for field in dataclasses.fields(base):
        value = getattr(base, field.name)
        changed = OTHER_VALUES.get(field.name) if field.name in OTHER_VALUES else {
            bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v + 0.5}[type(value)](value)
        assert changed != value, field.name
        other = dataclasses.replace(base, **{field.name: changed})  # a ConfigError here: fix OTHER_VALUES
        assert other.config_hash() != base.config_hash(), field.name


# ---------------------------------------------------------------- agreement with librosa
STFT = dict(n_fft=512, win_length=400, hop_length=160, window="hamming", n_mels=64)


@pytest.mark.parametrize("sr_seconds", [(16000, 2.0), (16000, 0.05)])
def test_mfcc_matches_librosa(sr_seconds):
    sr, seconds = sr_seconds
    y = speech_like(seconds, sr)
    ours = build_extractor("mfcc").extract(y, sr)
    ref = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=40, **STFT).T
    assert ours.shape == ref.shape
    assert rel_err(ours, ref) < 1e-4


def test_mfcc_with_lifter_deltas_and_window_variants():
    y = speech_like()
    for window in ("hann", "blackman", "boxcar"):
        cfg = {"window": window, "lifter": 22, "delta_order": 2, "n_fft": 1024, "win_ms": 40.0}
        ours = build_extractor("mfcc", cfg).extract(y, 16000)
        kw = dict(STFT, window=window, n_fft=1024, win_length=640)
        m = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=40, lifter=22, **kw)
        ref = np.concatenate([m, librosa.feature.delta(m), librosa.feature.delta(m, order=2)]).T
        assert rel_err(ours, ref) < 1e-4, window


def test_logmel_matches_librosa_ln_and_db():
    y = speech_like()
    mel = librosa.feature.melspectrogram(y=y, sr=16000, **STFT)
    assert rel_err(build_extractor("logmel").extract(y, 16000), np.log(mel + 1e-6).T) < 1e-4
    ours_db = build_extractor("logmel", {"log": "db", "fmin": 50, "fmax": 7000}).extract(y, 16000)
    mel2 = librosa.feature.melspectrogram(y=y, sr=16000, fmin=50, fmax=7000, **STFT)
    assert rel_err(ours_db, librosa.power_to_db(mel2).T) < 1e-4


@pytest.mark.parametrize("overrides", [{}, {"pad_mode": "reflect"}, {"center": False}, {"delta_order": 1}])
def test_extract_file_matches_librosa_on_a_flac_file(tmp_path, overrides):
    y = speech_like(1.7)
    path = tmp_path / "clip.flac"
    sf.write(path, y, 16000, subtype="PCM_16")
    extractor = build_extractor("mfcc", overrides)
    audio, _ = librosa.load(path, sr=16000)
    kw = dict(STFT, center=overrides.get("center", True), pad_mode=overrides.get("pad_mode", "constant"))
    ref = librosa.feature.mfcc(y=audio, sr=16000, n_mfcc=40, **kw)
    if overrides.get("delta_order"):
        ref = np.concatenate([ref, librosa.feature.delta(ref)])
    assert rel_err(extractor.extract_file(path), ref.T) < 1e-4


def test_stack_is_mfcc_next_to_logmel():
    y = speech_like()
    stack = build_extractor("mfcc_logmel", {"log": "ln"}).extract(y, 16000)
    mfcc = build_extractor("mfcc", {"log": "ln"}).extract(y, 16000)
    logmel = build_extractor("logmel").extract(y, 16000)
    assert np.array_equal(stack[:, :40], mfcc) and np.array_equal(stack[:, 40:], logmel)


def test_paper_presets():
    y = speech_like(3.0)
    light = build_extractor("lightsernet_mfcc")
    assert light.extract(y, 16000).shape == (184, 40)  # the paper's 3 s -> 184 frames
    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=256, window="hamming", center=False))
    bank = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=128, fmin=80, fmax=7600, htk=True, norm=None)
    ref = np.clip(scipy.fft.dct(np.log(bank @ spec + 1e-6), axis=0, norm="ortho")[:40].T, -10, 10)
    assert rel_err(light.extract(y, 16000), ref) < 1e-4
    assert build_extractor("mscnn_mfcc96").dim == 96
    assert build_extractor("transformer_logmel").extract(speech_like(7.5), 16000).shape == (751, 40)
    res = build_extractor("resnet_transformer_map")
    assert res.extract(speech_like(3.0, 48000), 48000).shape == (282, 80)  # the paper's 40 x 282 maps


def test_filterbank_and_windows_match_librosa_and_scipy():
    for kw in (dict(sr=16000, n_fft=512, n_mels=40, fmin=0.0, fmax=8000.0),
               dict(sr=22050, n_fft=2048, n_mels=128, fmin=30.0, fmax=8000.0)):
        for htk, norm in ((False, "slaney"), (True, "none")):
            ours = dsp.mel_filterbank(**kw, htk=htk, norm=norm)
            ref = librosa.filters.mel(**kw, htk=htk, norm="slaney" if norm == "slaney" else None)
            np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-7)
    for name in ("hann", "hamming", "blackman", "boxcar", "bartlett"):
        for n in (400, 401):
            np.testing.assert_allclose(dsp.periodic_window(name, n), scipy.signal.get_window(name, n), atol=1e-12)


# ---------------------------------------------------------------- configuration
def test_config_errors_name_the_problem():
    with pytest.raises(ConfigError, match="unknown feature set 'mfccs'"):
        build_config("mfccs")
    with pytest.raises(ConfigError, match="unknown option\\(s\\) n_mfc for feature type 'mfcc'; valid: "):
        build_config("mfcc", {"n_mfc": 13})
    with pytest.raises(ConfigError, match="must fit in n_fft"):
        build_config("mfcc", {"win_ms": 64})
    with pytest.raises(ConfigError, match="n_mfcc = 80 must be between 1 and n_mels = 64"):
        build_config("mfcc", {"n_mfcc": 80})
    with pytest.raises(ConfigError, match="is not an int"):
        build_config("mfcc", {"n_mfcc": "many"})
    with pytest.raises(ConfigError, match="window 'kaiser' is not one of"):
        build_config("logmel", {"window": "kaiser"})


def test_cli_style_string_values_are_coerced():
    config = build_config("mfcc", {"n_mfcc": "13", "center": "false", "hop_ms": "12.5"})
    assert (config.n_mfcc, config.center, config.hop_ms) == (13, False, 12.5)


def test_opensmile_sets_have_named_columns():
    y = speech_like(1.2)
    for name, dim in (("egemaps_functionals", 88), ("gemaps_functionals", 62), ("egemaps_lld", 25),
                      ("emobase_functionals", 988)):
        extractor = build_extractor(name)
        feats = extractor.extract(y, 16000)
        assert feats.shape[1] == dim == len(extractor.feature_names)
    assert "HNRdBACF_sma3nz" in build_extractor("egemaps_lld").feature_names
    drn = build_extractor("drn_lld17")
    assert drn.extract(y, 16000).shape[1] == 17 and drn.feature_names[12] == "log_energy"


def test_opensmile_clips_its_input():
    extractor = build_extractor("egemaps_functionals")
    y = speech_like(1.0)
    np.testing.assert_array_equal(extractor.extract(y * 10, 16000), extractor.extract(np.clip(y * 10, -1, 1), 16000))


@pytest.mark.parametrize("name", ["lightsernet_mfcc", "mfcc", "mscnn_mfcc96"])
def test_long_inputs_are_transformed_in_blocks_with_the_same_result(name, monkeypatch):
    import sertool.features.spectral as spectral

    y = speech_like(20.0, 16000)
    extractor = build_extractor(name)
    whole = extractor.extract(y, 16000)
    monkeypatch.setattr(spectral, "LONG_INPUT_FRAMES", 300)  # 20 s = 1250-2000 frames: several blocks
    blocks = extractor.extract(y, 16000)
    assert blocks.shape == whole.shape
    np.testing.assert_allclose(blocks, whole, rtol=1e-5, atol=1e-4)


def test_stream_audio_joins_to_load_audio(tmp_path):
    from sertool.io.audio import load_audio, stream_audio

    path = tmp_path / "a.flac"
    sf.write(path, speech_like(5.0, 16000), 16000, subtype="PCM_16")
    blocks = list(stream_audio(path, sr=16000, block_seconds=0.7))
    assert len(blocks) == 8 and all(b.shape == (11200,) for b in blocks[:-1])  # 7 x 0.7 s, then 0.1 s
    np.testing.assert_array_equal(np.concatenate(blocks), load_audio(path, sr=16000))
    resampled = np.concatenate(list(stream_audio(path, sr=8000, block_seconds=0.7)))
    one_shot = load_audio(path, sr=8000)
    assert abs(resampled.shape[0] - one_shot.shape[0]) <= 1
    n = min(resampled.shape[0], one_shot.shape[0])
    assert np.abs(resampled[:n] - one_shot[:n]).max() < 1e-3
