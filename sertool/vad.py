"""Speech-activity detection with Silero VAD (``predict --vad``), offline: the model ships inside the wheel.

:func:`speech_regions` returns the speech regions of a recording as
``(start s, end s)`` pairs, with Silero's own rules at its defaults
(:data:`SETTINGS`): 32 ms frames scored at 16 kHz, speech above
``threshold`` probability, regions shorter than ``min_speech_ms`` dropped,
pauses shorter than ``min_silence_ms`` kept inside a region, and
``pad_ms`` added on both sides. Needs the vad extra:
``pip install 'sertool[vad]'`` (the MIT-licensed ``silero-vad`` package).
"""

from __future__ import annotations

import numpy as np

from sertool.errors import ConfigError

SAMPLE_RATE = 16000
#: Silero VAD settings (its defaults), in its own names.
SETTINGS = {"threshold": 0.5, "min_speech_duration_ms": 250, "min_silence_duration_ms": 100, "speech_pad_ms": 30}
_MODEL: list = []


def _model():
    if not _MODEL:
        try:
            from silero_vad import load_silero_vad
        except ImportError:
            raise ConfigError("--vad needs the silero-vad package: pip install 'sertool[vad]'") from None
        _MODEL.append(load_silero_vad())
    return _MODEL[0]


def speech_regions(samples: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """Speech regions ``[(start s, end s)]`` of mono float ``samples`` at ``sr`` Hz (resampled to 16 kHz)."""
    import torch
    from silero_vad import get_speech_timestamps

    model = _model()
    if sr != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, sr, SAMPLE_RATE, quality="HQ")
    with torch.no_grad():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), model,
                                       sampling_rate=SAMPLE_RATE, **SETTINGS)
    model.reset_states()
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]
