"""The speech level kernels behind ``gain = "speech_rms"`` and the input checks: gain invariant, streamable."""

from __future__ import annotations

import numpy as np
import pytest

from sertool.features import dsp
from tests.conftest import tone

SR = 16000


def talk(seconds: float = 3.0) -> np.ndarray:
    """A tone switched on and off every 0.3 s over a faint noise floor: speech-like pauses."""
    y = tone(seconds, SR, freq=180.0)
    gate = (np.arange(y.size) // int(0.3 * SR)) % 2 == 0
    return (y * gate + 1e-4 * np.random.default_rng(3).standard_normal(y.size)).astype(np.float32)


def test_frame_powers_are_mean_squares_of_whole_frames():
    y = np.arange(1000, dtype=np.float32) / 1000
    powers = dsp.frame_powers(y, SR)  # 320-sample frames: 3 whole ones, the last 40 samples left out
    assert powers.shape == (3,) and dsp.frame_size(SR) == 320
    assert powers[1] == pytest.approx(np.mean(y[320:640].astype(np.float64) ** 2))


def test_active_level_is_that_of_the_speech_not_the_pauses_and_moves_with_the_gain():
    y = talk()
    on = dsp.frame_powers(tone(3.0, SR, freq=180.0), SR)
    level = dsp.active_level_db(dsp.frame_powers(y, SR))
    assert level == pytest.approx(10 * np.log10(on.mean()), abs=0.2)  # the pauses do not pull it down
    for db in (-20.0, -40.0, -60.0):
        scaled = dsp.active_level_db(dsp.frame_powers(y * np.float32(10 ** (db / 20)), SR))
        assert scaled == pytest.approx(level + db, abs=1e-3)
    assert dsp.active_level_db(np.zeros(10)) == -np.inf and dsp.speech_level_gain(np.zeros(10)) == 1.0


def test_gain_brings_any_level_to_the_target():
    y = talk()
    for db in (0.0, -30.0, -60.0):
        x = y * np.float32(10 ** (db / 20))
        gain = dsp.speech_level_gain(dsp.frame_powers(x, SR))
        assert dsp.active_level_db(dsp.frame_powers(x * gain, SR)) == pytest.approx(dsp.TARGET_SPEECH_DBFS, abs=1e-3)


def test_level_meter_equals_the_whole_signal():
    y = talk()
    meter = dsp.LevelMeter(SR)
    for start in range(0, y.size, 777):
        meter.push(y[start:start + 777])
    np.testing.assert_array_equal(meter.powers(), dsp.frame_powers(y, SR))
