"""NumPy signal-processing kernels behind the spectral extractors.

Each function reproduces the librosa 0.11 function named in its docstring
(same padding, window, filterbank and scaling), so features agree with
librosa to float32 rounding, but builds its constant matrices once and does
not import librosa (whose import and first call cost 1.6-19 s here).
Arrays are time-major: ``(num_frames, num_bins)``.
"""

from __future__ import annotations

import numpy as np

from sertool.errors import AudioError


def hz_to_mel(freqs: np.ndarray, *, htk: bool = False) -> np.ndarray:
    """Hz -> mel, HTK formula or Slaney's (linear below 1 kHz, log above); as librosa."""
    freqs = np.asanyarray(freqs, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + freqs / 700.0)
    f_sp = 200.0 / 3
    mels = freqs / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    log_part = freqs >= min_log_hz
    mels = np.where(log_part, min_log_mel + np.log(np.maximum(freqs, 1e-12) / min_log_hz) / logstep, mels)
    return mels


def mel_to_hz(mels: np.ndarray, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel`."""
    mels = np.asanyarray(mels, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


def mel_filterbank(*, sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float,
                   htk: bool = False, norm: str = "slaney") -> np.ndarray:
    """Triangular mel filters, ``(n_mels, 1 + n_fft // 2)`` float32; = ``librosa.filters.mel``.

    ``norm`` is ``"slaney"`` (constant energy per band) or ``"none"``.
    """
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


def periodic_window(name: str, length: int) -> np.ndarray:
    """Periodic ("fftbins") window, float64 ``(length,)``; = ``scipy.signal.get_window(name, length)``.

    Written out here because importing scipy.signal costs 1.2 s per process.
    """
    phase = 2.0 * np.pi * np.arange(length) / length
    if name == "hann":
        return 0.5 - 0.5 * np.cos(phase)
    if name == "hamming":
        return 0.54 - 0.46 * np.cos(phase)
    if name == "blackman":
        return 0.42 - 0.5 * np.cos(phase) + 0.08 * np.cos(2.0 * phase)
    if name == "boxcar":
        return np.ones(length)
    if name == "bartlett":
        return 1.0 - np.abs(2.0 * np.arange(length) / length - 1.0)
    raise ValueError(f"unknown window {name!r}")


def dct_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Orthonormal DCT-II basis as ``(n_in, n_out)`` float32: ``x @ D`` = ``scipy.fft.dct(x, norm='ortho')[:, :n_out]``."""
    k = np.arange(n_in)[:, None]
    n = np.arange(n_out)[None, :]
    basis = np.cos(np.pi / n_in * (k + 0.5) * n) * np.sqrt(2.0 / n_in)
    basis[:, 0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


def num_frames(num_samples: int, *, n_fft: int, hop_length: int, center: bool) -> int:
    """Frames an STFT of ``num_samples`` yields (0 when too short without centring)."""
    padded = num_samples + (2 * (n_fft // 2) if center else 0)
    return max(0, 1 + (padded - n_fft) // hop_length)


def padded_frame_spectrum(samples: np.ndarray, *, window: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """Complex STFT ``(num_frames, 1 + n_fft // 2)`` of float32 ``samples`` (already padded, if at all:
    librosa's centred STFT pads ``n_fft // 2`` samples on each side first).

    Frame ``t`` covers ``samples[t * hop_length : t * hop_length + n_fft]``.
    ``window`` (float32, its own length <= ``n_fft``) sits in the middle of
    the frame, as librosa centres it; only that part of each frame is
    windowed, into a buffer whose tail is zero, and transformed with
    ``n_fft`` points. That shifts every frame's phase but leaves magnitudes
    exactly as librosa computes them, and skips the multiply by zeros and
    the copy a zero-padding FFT call would make.
    """
    from scipy.fft import rfft  # scipy.fft: heavy (0.1-0.3 s of imports), loaded only when a spectrum is computed

    count = num_frames(samples.shape[0], n_fft=n_fft, hop_length=hop_length, center=False)
    width = window.shape[0]
    if count == 0:
        return np.zeros((0, 1 + n_fft // 2), np.complex64)
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    step = samples.strides[0]
    frames = np.lib.stride_tricks.as_strided(samples[(n_fft - width) // 2:], shape=(count, width),
                                             strides=(hop_length * step, step), writeable=False)
    buffer = np.empty((count, n_fft), np.float32)
    np.multiply(frames, window, out=buffer[:, :width])
    buffer[:, width:] = 0.0
    return rfft(buffer, axis=-1)


class BandedMel:
    """``|X|**2 @ mel`` computed block by block over each block's non-zero bins.

    Mel filters are narrow at low frequencies: grouping ``block`` filters and
    multiplying only the FFT bins they cover does 3-7x fewer multiply-adds
    than the dense product. The squared magnitude is folded in: the complex
    spectrum is viewed as interleaved (re, im) floats, squared in place, and
    each filter row is repeated for the re and im parts.

    Parameters
    ----------
    filterbank
        ``(n_mels, n_freqs)`` float32, as from :func:`mel_filterbank`.
    """

    def __init__(self, filterbank: np.ndarray, block: int = 8):
        self.n_mels = filterbank.shape[0]
        self.bands = []
        for start in range(0, self.n_mels, block):
            rows = filterbank[start:start + block]
            nonzero = np.flatnonzero(rows.any(axis=0))
            lo, hi = (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 1)
            weights = np.repeat(rows[:, lo:hi].T, 2, axis=0)  # (2 * (hi - lo), rows)
            self.bands.append((start, start + rows.shape[0], 2 * lo, 2 * hi, np.ascontiguousarray(weights)))

    def power_mel(self, spectrum: np.ndarray, *, power: float = 2.0) -> np.ndarray:
        """Mel energies ``(num_frames, n_mels)`` of complex64 ``spectrum`` (overwritten).

        ``power=1`` uses magnitudes (sqrt of re^2 + im^2) and skips the banding trick.
        """
        frames = spectrum.shape[0]
        if power != 2.0:
            mags = np.abs(spectrum)
            out = np.empty((frames, self.n_mels), np.float32)
            for start, stop, lo, hi, weights in self.bands:
                np.matmul(mags[:, lo // 2:hi // 2], weights[0::2], out=out[:, start:stop])
            return out
        flat = spectrum.view(np.float32).reshape(frames, -1)
        np.square(flat, out=flat)
        out = np.empty((frames, self.n_mels), np.float32)
        for start, stop, lo, hi, weights in self.bands:
            np.matmul(flat[:, lo:hi], weights, out=out[:, start:stop])
        return out


def power_to_db(spec: np.ndarray, *, amin: float = 1e-10, top_db: float = 80.0, inplace: bool = False) -> np.ndarray:
    """``10 log10(max(amin, spec))``, floored at ``max - top_db`` (``top_db`` 0: no floor); = ``librosa.power_to_db``.

    ``inplace`` overwrites ``spec`` (a float array) with the result.
    """
    log_spec = np.maximum(spec, amin, out=spec if inplace else None)
    np.log10(log_spec, out=log_spec)
    log_spec *= 10.0
    if top_db > 0:
        np.maximum(log_spec, log_spec.max() - top_db, out=log_spec)
    return log_spec


def deltas(feats: np.ndarray, *, order: int, width: int = 9) -> np.ndarray:
    """Savitzky-Golay derivative of ``feats`` ``(num_frames, dim)`` along time; = ``librosa.feature.delta``.

    Utterances with fewer than ``width`` frames fall back to edge-replicating
    padding (librosa refuses them).
    """
    from scipy.signal import savgol_filter  # scipy.signal: heavy (1.2 s of imports), loaded only for deltas

    mode = "interp" if feats.shape[0] >= width else "nearest"
    return savgol_filter(feats, width, deriv=order, polyorder=order, axis=0, mode=mode).astype(np.float32)


def with_deltas(feats: np.ndarray, *, order: int, width: int = 9) -> np.ndarray:
    """``[feats | delta 1 | ... | delta order]`` float32 ``(num_frames, dim * (1 + order))`` (:func:`deltas`)."""
    return np.concatenate([feats] + [deltas(feats, order=k, width=width) for k in range(1, order + 1)], axis=1)


def streamed_deltas(blocks, *, order: int, width: int = 9):
    """:func:`with_deltas` of consecutive frame ``blocks`` ``(frames, dim)``, yielded block by block.

    The blocks' rows joined equal :func:`with_deltas` of all the frames joined
    (the same filter over the same frames, so to float rounding). Each block
    is filtered with ``width - 1`` frames kept from before it; a row is
    yielded once the ``width // 2`` frames after it have arrived, and the
    last rows (the filter's end fit) when the blocks end.
    """
    half = width // 2
    held, start = None, 0  # frames kept (the context before the next row to yield, then the rows not yet yielded)
    for block in blocks:
        held = block if held is None else np.concatenate([held, block])
        stop = held.shape[0] - half
        if held.shape[0] >= width and stop > start:
            yield with_deltas(held, order=order, width=width)[start:stop]
            keep = max(0, stop - 2 * half)  # rows before this are no longer in any later row's window
            held, start = held[keep:], stop - keep
    if held is not None and held.shape[0] > start:
        yield with_deltas(held, order=order, width=width)[start:]


def carried_frames(blocks, *, pad: int, hop_length: int, transform, sr: int, min_seconds: float):
    """Yield ``(rows, samples seen so far)`` of the frames of consecutive sample ``blocks`` at ``sr``, as they complete.

    ``pad`` zeros are added at both ends (a centred STFT's padding);
    ``transform(samples)`` returns ``(row blocks, complete frames)`` of the
    samples it is given, and the samples the next frame still needs are
    carried over to the next block. AudioError when less than ``min_seconds``
    (or nothing) arrives.
    """
    buffer, total = np.zeros(pad, np.float32), 0  # the left padding
    for block in blocks:
        total += block.shape[0]
        buffer = np.concatenate([buffer, np.asarray(block, dtype=np.float32)])
        rows, count = transform(buffer)
        for row in rows:
            yield row, total
        buffer = buffer[count * hop_length:]  # what the next frame still needs
    if total < min_seconds * sr or total == 0:
        raise AudioError(f"{total / sr:.3f} s of audio is shorter than the {min_seconds:.3f} s needed; remove it or "
                         "use a shorter analysis window")
    for row in transform(np.concatenate([buffer, np.zeros(pad, np.float32)]))[0]:
        yield row, total


def metered(blocks, meter: "LevelMeter | None"):
    """``blocks``, each pushed into ``meter`` on the way (as they are when ``meter`` is None)."""
    for block in blocks:
        if meter is not None:
            meter.push(block)
        yield block


class RunningMoments:
    """Mean and standard deviation per column of rows that arrive block by block (float64, Chan et al.'s merge).

    ``moments.push(rows)`` for each ``(n, dim)`` block; :attr:`mean` and
    :attr:`std` (population, as ``numpy.std``) then equal those of the
    joined rows to float rounding, without keeping them.
    """

    def __init__(self, dim: int):
        self.count = 0
        self.mean = np.zeros(dim)
        self._m2 = np.zeros(dim)

    def push(self, rows: np.ndarray) -> None:
        """Add the rows ``(n, dim)``."""
        n = rows.shape[0]
        if n == 0:
            return
        rows = np.asarray(rows, dtype=np.float64)
        block_mean = rows.mean(axis=0)
        block_m2 = np.square(rows - block_mean).sum(axis=0)
        total = self.count + n
        delta = block_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self._m2 = self._m2 + block_m2 + np.square(delta) * (self.count * n / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        """Population standard deviation per column (zeros before any row)."""
        return np.sqrt(self._m2 / max(1, self.count))


# ------------------------------------------------------------------ speech level (gain invariance, input checks)
#: Length in seconds of the non-overlapping frames the speech level is measured over.
LEVEL_FRAME_S = 0.02
#: Frames quieter than this (dBFS: a mean square of 1.0 is 0 dB) are digital silence, whatever the gain.
SILENCE_DBFS = -120.0
#: Active frames are those within this many dB of the loud reference frame (below); the rest are pauses.
ACTIVE_RANGE_DB = 25.0
#: The loud reference: this percentile of the non-silent frames' levels (a few loud clicks do not set it).
REFERENCE_PERCENTILE = 95.0
#: The active speech level ``gain = "speech_rms"`` scales every input to, in dBFS (ITU-T P.56's usual -26 dBov).
TARGET_SPEECH_DBFS = -26.0


def frame_size(sr: int) -> int:
    """Samples in one level frame (:data:`LEVEL_FRAME_S`) at ``sr`` Hz."""
    return max(1, int(round(LEVEL_FRAME_S * sr)))


def frame_powers(samples: np.ndarray, sr: int) -> np.ndarray:
    """Mean square of each whole :data:`LEVEL_FRAME_S` frame of ``samples`` ``(N,)``: float64 ``(N // size,)``.

    A last partial frame is left out (the streaming :class:`LevelMeter` carries it into the next block).
    """
    size = frame_size(sr)
    count = samples.shape[0] // size
    frames = np.asarray(samples[:count * size], dtype=np.float64).reshape(count, size)
    return np.einsum("ij,ij->i", frames, frames) / size


def active_frames(powers: np.ndarray) -> np.ndarray:
    """Boolean mask ``(F,)`` of the active frames among frame ``powers`` (mean squares, :func:`frame_powers`).

    Active: louder than :data:`SILENCE_DBFS` and within :data:`ACTIVE_RANGE_DB`
    of the :data:`REFERENCE_PERCENTILE` percentile of the non-silent frames.
    Both bounds move with the gain, so the mask does not change when the
    signal is scaled (until its pauses sink under the silence floor).
    """
    levels = 10.0 * np.log10(np.maximum(powers, 1e-30))
    sound = levels > SILENCE_DBFS
    if not sound.any():
        return sound
    reference = np.percentile(levels[sound], REFERENCE_PERCENTILE)
    return sound & (levels >= reference - ACTIVE_RANGE_DB)


def active_level_db(powers: np.ndarray) -> float:
    """Active speech level in dBFS of frame ``powers`` (mean square over the active frames); -inf for silence."""
    active = active_frames(powers)
    return float(10.0 * np.log10(powers[active].mean())) if active.any() else float("-inf")


def speech_level_gain(powers: np.ndarray, target_db: float = TARGET_SPEECH_DBFS) -> float:
    """The factor that brings frame ``powers``' active speech level to ``target_db`` dBFS (1.0 for silence)."""
    level = active_level_db(powers)
    return 1.0 if not np.isfinite(level) else float(10.0 ** ((target_db - level) / 20.0))


class LevelMeter:
    """:func:`frame_powers` of samples that arrive block by block (the partial frame is carried over).

    ``meter.push(block)`` for each block in order; :meth:`powers` then equals
    :func:`frame_powers` of the joined blocks.
    """

    def __init__(self, sr: int):
        self.size = frame_size(sr)
        self.sr = sr
        self.parts: list[np.ndarray] = []
        self.rest = np.zeros(0, np.float32)

    def push(self, block: np.ndarray) -> None:
        """Add the next samples ``(n,)``."""
        joined = np.concatenate([self.rest, np.asarray(block, dtype=np.float32)])
        whole = joined.shape[0] // self.size * self.size
        if whole:
            self.parts.append(frame_powers(joined[:whole], self.sr))
        self.rest = joined[whole:]

    def powers(self) -> np.ndarray:
        """float64 ``(F,)`` mean squares of the whole frames pushed so far."""
        return np.concatenate(self.parts) if self.parts else np.zeros(0)
