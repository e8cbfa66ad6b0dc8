"""Silero VAD (``predict --vad``) on a long file made of shared RAVDESS clips joined by silences of known length.

Joins ``--clips`` clips (every 8th of actors 01-16, so all actors and
emotions appear) with ``--gap`` seconds of silence (digital zeros plus noise
at -60 dBFS) between them. Each clip's own leading and trailing silence is
trimmed first (librosa's ``effects.trim``, 30 dB below the clip's peak), so
the speech of clip k spans a known interval of the joined file: those
intervals are the reference. Reports regions found against clips joined,
and, for every reference interval, the error of the nearest found start
and end in milliseconds (median, 90th percentile), plus the share of
reference speech covered by found regions and of found-region time that
lies in the silences. With ``--write`` the table replaces the one between
the markers in bench/README.md.

Usage: python bench/bench_vad.py [--data ../shared/data/ravdess] [--clips 60] [--gap 1.0] [--write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import DEFAULT_RAVDESS, machine, ravdess_rows, write_table  # noqa: E402

SR = 16000


def joined_file(paths: list[Path], gap: float, seed: int = 0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """``(samples, reference speech intervals in s)`` of the clips trimmed and joined with ``gap`` s silences."""
    import librosa

    from sertool.io.audio import load_audio

    rng = np.random.default_rng(seed)
    pieces, truth, cursor = [], [], 0
    for path in paths:
        speech, _ = librosa.effects.trim(load_audio(path, sr=SR), top_db=30)
        silence = (rng.standard_normal(int(gap * SR)) * 1e-3).astype(np.float32)
        pieces += [silence, speech]
        cursor += silence.shape[0]
        truth.append((cursor / SR, (cursor + speech.shape[0]) / SR))
        cursor += speech.shape[0]
    pieces.append((rng.standard_normal(int(gap * SR)) * 1e-3).astype(np.float32))
    return np.concatenate(pieces), truth


def boundary_errors(truth, found) -> tuple[np.ndarray, np.ndarray]:
    """|nearest found start - true start| and the same for ends, in ms, per reference interval."""
    starts, ends = np.array([a for a, _ in found]), np.array([b for _, b in found])
    start_err = np.array([np.abs(starts - a).min() for a, _ in truth]) * 1000
    end_err = np.array([np.abs(ends - b).min() for _, b in truth]) * 1000
    return start_err, end_err


def overlap(intervals_a, intervals_b) -> float:
    """Seconds of time inside both interval lists."""
    return sum(max(0.0, min(b1, b2) - max(a1, a2)) for a1, b1 in intervals_a for a2, b2 in intervals_b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--gap", type=float, default=1.0)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    from sertool.features.vad import speech_regions

    rows = ravdess_rows(args.data, warm=False)[0][::8][: args.clips]
    samples, truth = joined_file([Path(r.path) for r in rows], args.gap)
    speech_regions(samples[:SR], SR)  # load the model before timing
    start = time.perf_counter()
    found = speech_regions(samples, SR)
    seconds = time.perf_counter() - start
    start_err, end_err = boundary_errors(truth, found)
    speech = sum(b - a for a, b in truth)
    found_time = sum(b - a for a, b in found)
    covered = overlap(truth, found) / speech
    in_silence = (found_time - overlap(truth, found)) / found_time
    duration = samples.shape[0] / SR
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; {len(rows)} RAVDESS clips (every 8th of actors "
        f"01-16), each trimmed 30 dB below its peak, joined with {args.gap:.1f} s silences (noise at -60 dBFS): "
        f"{duration:.0f} s of audio, {speech:.0f} s of reference speech; Silero VAD at its defaults.", "",
        "| clips joined | regions found | start error median / p90 (ms) | end error median / p90 (ms) | "
        "reference speech covered | found time in the silences | VAD xRT |",
        "|---|---|---|---|---|---|---|",
        f"| {len(truth)} | {len(found)} | {np.median(start_err):.0f} / {np.percentile(start_err, 90):.0f} | "
        f"{np.median(end_err):.0f} / {np.percentile(end_err, 90):.0f} | {covered:.1%} | {in_silence:.1%} | "
        f"{duration / seconds:.0f}x |"])
    print(table)
    if args.write:
        write_table("vad", table, heading="## Speech-activity detection (`predict --vad`)")


if __name__ == "__main__":
    main()
