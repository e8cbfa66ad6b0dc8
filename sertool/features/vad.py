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

from dataclasses import replace
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from sertool.errors import SertoolError, optional_import
from sertool.io.atomic import atomic_path
from sertool.io.audio import load_audio


SAMPLE_RATE = 16000
#: Silero VAD settings (its defaults), in its own names.
SETTINGS = {"threshold": 0.5, "min_speech_duration_ms": 250, "min_silence_duration_ms": 100, "speech_pad_ms": 30}
_MODEL: list = []


def _model():
    if not _MODEL:
        _MODEL.append(optional_import("silero_vad", "--vad", "vad").load_silero_vad())
    return _MODEL[0]


def speech_regions(samples: np.ndarray, sr: int) -> list[tuple[float, float]]:
    """Speech regions ``[(start s, end s)]`` of mono float ``samples`` at ``sr`` Hz (resampled to 16 kHz)."""
    import torch  # heavy (~1 s): loaded only when the VAD runs
    from silero_vad import get_speech_timestamps  # pulls in torch; the vad extra, loaded only when the VAD runs

    model = _model()
    if sr != SAMPLE_RATE:
        samples = soxr.resample(samples, sr, SAMPLE_RATE, quality="HQ")
    with torch.no_grad():
        stamps = get_speech_timestamps(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)), model,
                                       sampling_rate=SAMPLE_RATE, **SETTINGS)
    model.reset_states()
    return [(s["start"] / SAMPLE_RATE, s["end"] / SAMPLE_RATE) for s in stamps]


def split_utterances(rows: list, out_dir, *, report) -> list:
    """Each row's recording cut into its speech regions: one FLAC (16 kHz mono) and one row per region.

    A region row keeps the recording's label, speaker, gender, session and
    corpus, gets id ``<id>_<k>`` (k from 000), ``duration`` of the region,
    and extra columns ``parent_id`` (the recording's id), ``start`` and
    ``end`` (seconds in the recording). ``source_id`` stays empty: sertool
    reads it as "augmented copy of", which regions are not; speaker-disjoint
    folds keep all regions of a recording together through the speaker.
    A recording without speech is a failure in ``report``; files already
    written are reused (a rerun after an interruption redoes only the rest).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cut = []
    for row in rows:
        try:
            samples = load_audio(row.path, sr=SAMPLE_RATE)
        except SertoolError as exc:
            report.fail(row.id, row.path, "vad-split", str(exc))
            continue
        regions = speech_regions(samples, SAMPLE_RATE)
        if not regions:
            report.fail(row.id, row.path, "vad-split", f"{row.path}: the VAD found no speech")
            continue
        for k, (start, end) in enumerate(regions):
            target = out_dir / f"{row.id}_{k:03d}.flac"
            piece = samples[int(round(start * SAMPLE_RATE)):int(round(end * SAMPLE_RATE))]
            if not target.exists():
                with atomic_path(target) as tmp:
                    sf.write(tmp, piece, SAMPLE_RATE, format="FLAC")
            cut.append(replace(row, id=f"{row.id}_{k:03d}", path=target, duration=piece.shape[0] / SAMPLE_RATE,
                               source_id="", extra={**row.extra, "parent_id": row.id, "start": f"{start:.3f}",
                                                    "end": f"{end:.3f}"}))
    return cut
