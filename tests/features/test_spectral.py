"""Gain invariance (``gain = "speech_rms"``): the same clip at any recording gain gives the same features and labels.

Float scaling to 0, -20, -40 and -60 dB and 16-bit files at 0, -20 and -40 dB
(below that the 16-bit floor eats the pauses) of one clip: with the option on
the features agree; with it off (the default) they differ. The same, with a
real model, on RAVDESS clips: identical labels with the option on.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from sertool.errors import ConfigError
from sertool.features import build_config, build_extractor, config_from_dict, dsp
from tests.conftest import RAVDESS, tone
from tests.features.test_dsp import talk

SR = 16000
FLOAT_DB = (0, -20, -40, -60)
PCM16_DB = (0, -20, -40)


def at(y: np.ndarray, db: float, pcm16: bool = False) -> np.ndarray:
    """``y`` (peak 1) scaled by ``db``, as float32 or read back from a 16-bit WAV."""
    scaled = (y * np.float32(10 ** (db / 20) * 0.999)).astype(np.float32)
    if not pcm16:
        return scaled
    buf = io.BytesIO()
    sf.write(buf, scaled, SR, format="WAV", subtype="PCM_16")
    buf.seek(0)
    return sf.read(buf, dtype="float32")[0]


def speech_frames(y: np.ndarray, extractor) -> np.ndarray:
    """Mask of the feature frames whose audio is within 30 dB of the loudest frame's (the pauses left out)."""
    shift, span, _ = extractor.frame_timing
    starts = (np.arange(extractor.extract(y, SR).shape[0]) * shift * SR).astype(int)
    power = np.array([np.mean(y[s:s + int(span * SR)] ** 2) if s < y.size else 0.0 for s in starts])
    return 10 * np.log10(power + 1e-20) > 10 * np.log10(power.max()) - 30


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    y = talk(3.0)
    return y / np.abs(y).max()


@pytest.mark.parametrize("preset", ["lightsernet_mfcc", "transformer_logmel", "mfcc_stats"])
def test_with_speech_rms_the_features_do_not_depend_on_the_gain(clip, preset):
    levelled = build_extractor(preset, {"gain": "speech_rms"})
    raw = build_extractor(preset)
    reference, raw_reference = levelled.extract(at(clip, 0), SR), raw.extract(at(clip, 0), SR)
    for db in FLOAT_DB[1:]:
        np.testing.assert_allclose(levelled.extract(at(clip, db), SR), reference, atol=2e-3, rtol=1e-4)
        assert np.abs(raw.extract(at(clip, db), SR) - raw_reference).max() > 1.0  # off: the features move
    if levelled.level == "utterance":
        return  # its statistics take in the pauses, which the 16-bit floor changes
    keep = speech_frames(at(clip, 0), levelled)  # the speech frames: the 16-bit floor changes the pauses
    relative = lambda got, ref: np.abs(got - ref)[keep].mean() / np.abs(ref[keep]).mean()  # noqa: E731
    for db in PCM16_DB:  # measured at -40 dB: 0.016 (lightsernet_mfcc), 0.012 (transformer_logmel)
        assert relative(levelled.extract(at(clip, db, pcm16=True), SR), reference) < 0.03, db
        if db:  # off: 0.29-1.6
            assert relative(raw.extract(at(clip, db, pcm16=True), SR), raw_reference) > 0.2, db


def test_streamed_and_block_features_equal_whole_file_ones_with_the_level_option():
    y = np.concatenate([talk(4.0), 0.05 * talk(5.0)])
    for preset in ("lightsernet_mfcc_level", "transformer_logmel"):  # ln / no top_db, and dB with top_db 80
        extractor = build_extractor(preset, {"gain": "speech_rms"})
        whole = extractor.extract(y, SR)
        blocks = [y[i:i + 12345] for i in range(0, y.size, 12345)]
        np.testing.assert_allclose(extractor.extract_stream(iter(blocks)), whole, rtol=1e-5, atol=2e-4)
        pieces = list(extractor.feature_blocks(lambda: iter(blocks)))
        np.testing.assert_allclose(np.concatenate([f for f, _ in pieces]), whole, rtol=1e-5, atol=2e-4)
        assert extractor.streams_blocks and not extractor.streams_live  # a live stream cannot see the whole level
    assert build_extractor("lightsernet_mfcc").streams_live


def test_a_file_is_levelled_like_its_samples(clip, tmp_path):
    extractor = build_extractor("lightsernet_mfcc_level")
    for name, center in (("lightsernet", False), ("centred", True)):
        other = build_extractor("mfcc", {"gain": "speech_rms", "center": center})
        sf.write(tmp_path / f"{name}.wav", at(clip, -30), SR, subtype="FLOAT")
        for ex in (extractor, other):
            np.testing.assert_array_equal(ex.extract_file(tmp_path / f"{name}.wav"), ex.extract(at(clip, -30), SR))


def test_the_option_leaves_existing_configs_and_their_hashes_alone():
    config = build_config("mfcc")
    assert "gain" not in config.to_dict() and config.config_hash()[:8] == "57afd75a"  # the name stores have
    levelled = build_config("mfcc", {"gain": "speech_rms"})
    assert levelled.to_dict()["gain"] == "speech_rms" and levelled.config_hash() != config.config_hash()
    assert config_from_dict(levelled.to_dict()) == levelled and config_from_dict(config.to_dict()) == config
    assert build_config("lightsernet_mfcc_level") == build_config("lightsernet_mfcc", {"gain": "speech_rms"})
    with pytest.raises(ConfigError, match="gain 'loud' must be one of none, speech_rms"):
        build_config("mfcc", {"gain": "loud"})


def test_opensmile_is_levelled_too():
    pytest.importorskip("opensmile")
    y = tone(1.5, SR, freq=180.0)
    levelled = build_extractor("egemaps_functionals", {"gain": "speech_rms"})
    raw = build_extractor("egemaps_functionals")
    quiet = y * np.float32(0.01)
    np.testing.assert_allclose(levelled.extract(quiet, SR), levelled.extract(y, SR), rtol=2e-3, atol=2e-3)
    assert not np.allclose(raw.extract(quiet, SR), raw.extract(y, SR), rtol=2e-3, atol=2e-3)
    scaled = y * np.float32(dsp.speech_level_gain(dsp.frame_powers(y, SR)))
    np.testing.assert_array_equal(levelled.extract(y, SR), raw.extract(scaled, SR))


def test_a_model_gives_the_same_labels_at_every_gain_with_the_option(tmp_path):
    if not RAVDESS.is_dir():
        pytest.skip("../shared/data/ravdess not available")
    from sertool.inference.bundled import BUNDLED
    from sertool.inference.memory import predict_audio
    from sertool.models.checkpoint import Checkpoint

    clips = [sf.read(p, dtype="float32")[0] for p in sorted((RAVDESS / "Actor_02").glob("*.flac"))[:12]]
    clips = [c / np.abs(c).max() for c in clips]
    spread = {}
    for gain in ("none", "speech_rms"):  # the bundled network's weights, with features levelled or not
        checkpoint = Checkpoint.load(BUNDLED["ravdess"])
        checkpoint.feature_config = {**checkpoint.feature_config, "gain": gain}
        path = checkpoint.save(tmp_path / f"{gain}.pt")
        runs = [predict_audio(path, [(at(c, db), SR) for c in clips]) for db in FLOAT_DB] + \
               [predict_audio(path, [(at(c, db, pcm16=True), SR) for c in clips]) for db in PCM16_DB]
        if gain == "speech_rms":
            assert all(run.labels == runs[0].labels for run in runs)
        spread[gain] = max(np.abs(run.probabilities - runs[0].probabilities).max() for run in runs)
    assert spread["speech_rms"] < 0.2 and spread["none"] > 0.3  # measured: 0.11 and 0.49
