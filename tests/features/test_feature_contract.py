"""The extractor contract, checked for every registered preset (``sertool.features.PRESETS``).

A newly registered extractor or preset is tested here without a line of new
test code. What an extractor can do is declared on its class (``level``,
``streams``, ``streams_blocks``, ``streams_live``): the declarations are
checked against what it does.
"""

from __future__ import annotations

import re
import tomllib

import numpy as np
import pytest
import soundfile as sf

from sertool.errors import FeatureError
from sertool.features import EXTRACTORS, PRESETS, FeatureExtractor, build_extractor, config_from_dict
from tests.conftest import preset_overrides, tone

#: extractor type -> the optional module it needs (the preset is skipped without it)
OPTIONAL = {"embedding": "resemblyzer", "opensmile": "opensmile", "drn_lld17": "opensmile", "ssl": "transformers"}
SECONDS = 1.5


def speech_like(seconds: float, sr: int) -> np.ndarray:
    """A voiced tone under a Hann envelope, float32 ``(seconds * sr,)``."""
    return tone(seconds, sr, freq=180.0) * np.hanning(int(seconds * sr)).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(PRESETS))
def extractor(request) -> FeatureExtractor:
    """The extractor of each preset; skipped when its optional dependency (or model folder) is missing."""
    name = request.param
    module = OPTIONAL.get(PRESETS[name].type)
    if module:
        pytest.importorskip(module, reason=f"preset {name} needs the optional module {module}")
    return build_extractor(name, preset_overrides(name))  # ssl: a tiny generated model folder


@pytest.fixture(scope="module")
def output(extractor) -> tuple[np.ndarray, np.ndarray]:
    """``(samples, features)`` of 1.5 s of generated audio."""
    y = speech_like(SECONDS, extractor.sample_rate)
    return y, extractor.extract(y, extractor.sample_rate)


def test_every_extractor_type_is_a_preset():
    assert set(EXTRACTORS) <= set(PRESETS)


def test_output_is_float32_finite_and_of_the_declared_level(extractor, output):
    y, feats = output
    assert feats.dtype == np.float32 and feats.ndim == 2 and np.isfinite(feats).all()
    assert feats.shape[1] == extractor.dim == len(extractor.feature_names) == len(set(extractor.feature_names))
    assert extractor.level in ("frame", "utterance")
    if extractor.level == "utterance":
        assert feats.shape[0] == 1
    else:
        assert feats.shape[0] > 1
    assert np.array_equal(feats, extractor.extract(y.copy(), extractor.sample_rate))  # deterministic


def test_frame_timing_matches_the_number_of_frames(extractor, output):
    feats = output[1]
    if extractor.level == "utterance":
        assert extractor.frame_timing is None
        return
    shift, span, lead = extractor.frame_timing
    assert 0 < shift <= span and 0 <= lead < span
    # frame k covers [k * shift - lead, k * shift - lead + span]: the frames tile the signal, give or take a window
    covered = (feats.shape[0] - 1) * shift - lead + span
    assert abs(covered - SECONDS) <= span + 2 * shift, (feats.shape[0], extractor.frame_timing)


def test_declared_capabilities_are_consistent(extractor):
    declared = {key: getattr(extractor, key) for key in ("streams", "streams_blocks", "streams_live")}
    assert all(isinstance(value, bool) for value in declared.values()), declared
    assert not declared["streams_live"] or declared["streams_blocks"]
    assert not declared["streams_blocks"] or declared["streams"]
    assert not declared["streams"] or extractor.level == "frame"
    assert extractor.sample_rate == extractor.config.sample_rate and extractor.min_duration >= 0


def test_config_round_trips_with_a_stable_hash(extractor):
    config = extractor.config
    assert config_from_dict(config.to_dict()) == config
    assert config_from_dict(tomllib.loads(config.to_toml())) == config
    assert re.fullmatch("[0-9a-f]{64}", config.config_hash())
    assert config_from_dict(config.to_dict()).config_hash() == config.config_hash()
    assert config_from_dict(dict(reversed(config.to_dict().items()))).config_hash() == config.config_hash()


def test_a_file_gives_the_features_of_its_samples(extractor, output, tmp_path):
    y, feats = output
    path = tmp_path / "clip.wav"
    sf.write(path, y, extractor.sample_rate, subtype="FLOAT")
    assert np.array_equal(extractor.extract_file(path), feats)


def test_bad_input_is_a_feature_error(extractor, output):
    y = output[0]
    sr = extractor.sample_rate
    try:
        assert np.isfinite(extractor.extract(np.zeros_like(y), sr)).all()
    except FeatureError as exc:  # a speaker encoder may refuse silence, with a clear message
        assert extractor.name == "embedding" and "silent" in str(exc)
    with pytest.raises(FeatureError, match="shorter than one analysis window"):
        extractor.extract(y[: max(1, int(extractor.min_duration * sr) - 1)], sr)
    with pytest.raises(FeatureError, match="expects"):
        extractor.extract(y, sr + 1)


def _loud_signal(extractor) -> np.ndarray:
    """9 s with one loud stretch: a whole-file ``top_db`` floor depends on all of it."""
    x = speech_like(9.0, extractor.sample_rate)
    x[len(x) // 2:len(x) // 2 + 4000] *= 30
    return x


def _blocks(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[i:i + size] for i in range(0, len(x), size)]


@pytest.mark.parametrize("block", [160, 12345, 16000 * 7])
def test_streamed_features_equal_whole_signal_features(extractor, block):
    if not extractor.streams:
        with pytest.raises(FeatureError, match="cannot"):
            extractor.extract_stream(iter([np.zeros(16000, np.float32)]))
        return
    x = _loud_signal(extractor)
    whole = extractor.extract(x, extractor.sample_rate)
    streamed = extractor.extract_stream(iter(_blocks(x, block)))
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("block", [160, 12345, 16000 * 7])
def test_feature_blocks_join_to_whole_signal_features(extractor, block):
    if not extractor.streams_blocks:
        with pytest.raises(FeatureError, match="cannot"):
            next(iter(extractor.feature_blocks(lambda: iter([np.zeros(16000, np.float32)]))))
        return
    x = _loud_signal(extractor)
    whole = extractor.extract(x, extractor.sample_rate)
    pieces = list(extractor.feature_blocks(lambda: iter(_blocks(x, block))))
    assert pieces[-1][1] == len(x)  # samples seen so far, at the end: all of them
    # two passes when top_db needs the file's maximum first; the floor's rounding allows a little more
    np.testing.assert_allclose(np.concatenate([f for f, _ in pieces]), whole, rtol=1e-5, atol=2e-4)
