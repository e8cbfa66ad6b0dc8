"""Extraction throughput: sertool vs a plain per-file librosa loop, same run, same files.

For MFCC and log-Mel at 1 and 2 jobs, times

- ``librosa``: for each file ``librosa.load`` + ``librosa.feature.mfcc`` (or
  ``melspectrogram`` + ``log``) with the same parameters as sertool's config;
  features are computed and discarded (nothing written). 2 jobs: a
  ``multiprocessing.Pool(2)`` forked after librosa is imported.
- ``sertool``: ``extract_manifest(..., overwrite=True)``: decode, features,
  and writing the HDF5 store (so sertool does strictly more work); 2 jobs:
  this process and one worker.

Each timing runs in a fresh Python process that first imports its side and
warms it up on a few files (numba compilation, first HDF5 file), so neither
side inherits the other's memory or pays its imports; librosa and sertool
runs alternate, so drifts in machine load hit both, and each number is the
best of ``--repeat``. One BLAS thread per process on both sides; the page
cache is warmed first. Also times decoding alone (libsndfile vs dr_flac)
and a no-op rerun of ``sertool extract`` (the CLI, fresh process) against
its first run. Results go to stdout and, with ``--write``, into the table
between the markers in bench/README.md.

Usage: python bench/bench_extract.py [--data ../shared/data/ravdess] [--repeat 5] [--write]
"""

from __future__ import annotations

import os

# Same threading for both sides: one BLAS thread per process, set before numpy loads.
os.environ.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})

import argparse
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import DEFAULT_RAVDESS, machine, ravdess_rows, write_table  # noqa: E402
from sertool.extraction.pipeline import extract_manifest  # noqa: E402
from sertool.features import build_config  # noqa: E402
from sertool.io.manifest import write_manifest  # noqa: E402

_CFG = None


def _librosa_one(path: str) -> int:
    """The same computation as sertool's config, written as a plain librosa script would."""
    import librosa
    import scipy.fft

    c = _CFG
    y, sr = librosa.load(path, sr=c.sample_rate)
    kw = dict(y=y, sr=sr, n_fft=c.n_fft, win_length=c.win_length, hop_length=c.hop_length, window=c.window,
              n_mels=c.n_mels, center=c.center)
    if c.type == "mfcc" and c.log == "db" and c.power == 2.0 and not c.htk:
        out = librosa.feature.mfcc(n_mfcc=c.n_mfcc, fmin=c.fmin, fmax=c.mel_fmax, **kw)
    else:
        mel = librosa.feature.melspectrogram(power=c.power, fmin=c.fmin, fmax=c.mel_fmax, htk=c.htk,
                                             norm="slaney" if c.mel_norm == "slaney" else None, **kw)
        out = librosa.power_to_db(mel, amin=c.amin, top_db=c.top_db or None) if c.log == "db" else np.log(mel + c.log_offset)
        if c.type == "mfcc":
            out = scipy.fft.dct(out, axis=0, norm="ortho")[: c.n_mfcc]
    if c.clip:
        out = np.clip(out, -c.clip, c.clip)
    return out.shape[1]


def _init_baseline(config) -> None:
    from threadpoolctl import threadpool_limits

    global _CFG, _LIMIT
    _CFG = config
    _LIMIT = threadpool_limits(1, user_api="blas")


def librosa_loop(files: list[str], config, jobs: int) -> float:
    start = time.perf_counter()
    if jobs == 1:
        _init_baseline(config)
        for f in files:
            _librosa_one(f)
    else:
        # fork: librosa is already imported, so its workers start at once (the fairest baseline).
        with multiprocessing.get_context("fork").Pool(jobs, _init_baseline, (config,)) as pool:
            list(pool.imap_unordered(_librosa_one, files, chunksize=8))
    return time.perf_counter() - start


def sertool_run(manifest: Path, feature_set: str, out: Path, jobs: int) -> float:
    start = time.perf_counter()
    result = extract_manifest(manifest, features=feature_set, output=out, jobs=jobs, overwrite=True,
                              progress=False)
    elapsed = time.perf_counter() - start
    assert result.report.failed == 0, result.report.failures[:3]
    return elapsed


def measure(side: str, feature_set: str, jobs: int, manifest: Path, out: Path) -> float:
    """Seconds for one timed run of ``side``, in this (fresh) process, after a warm-up."""
    from sertool.io.manifest import read_manifest

    rows = read_manifest(manifest)
    config = build_config(feature_set)
    warm = write_manifest(rows[:8], out / "warm.csv")
    if side == "librosa":
        import librosa

        librosa.feature.mfcc(y=np.zeros(16000, np.float32), sr=16000)  # numba compilation
        librosa_loop([str(u.path) for u in rows[:8]], config, 1)
        return librosa_loop([str(u.path) for u in rows], config, jobs)
    sertool_run(warm, feature_set, out / "warm", 1)
    return sertool_run(manifest, feature_set, out / "feats", jobs)


def timed_in_fresh_process(side: str, feature_set: str, jobs: int, manifest: Path, work: Path) -> float:
    out = work / side
    out.mkdir(exist_ok=True)
    cmd = [sys.executable, __file__, "--measure", side, feature_set, str(jobs), str(manifest), str(out)]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()[-1])


def decode_only(files: list[str]) -> tuple[float, float]:
    """Seconds to decode every file (1 process) with libsndfile and with sertool's loader (dr_flac for FLAC)."""
    import soundfile as sf

    from sertool.io.audio import load_audio

    timings = []
    for decode in (lambda f: sf.read(f, dtype="float32"), lambda f: load_audio(f, sr=16000)):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for f in files:
                decode(f)
            best = min(best, time.perf_counter() - start)
        timings.append(best)
    return timings[0], timings[1]


def cli_rerun(manifest: Path, out: Path) -> tuple[float, float]:
    # Bytecode compiled first, as `pip install` does (PYTHONDONTWRITEBYTECODE would otherwise recompile every run).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "sertool")], check=True, capture_output=True)
    cmd = [sys.executable, "-m", "sertool", "extract", str(manifest), "--features", "mfcc", "-o", str(out)]
    def timed() -> float:
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        return time.perf_counter() - start

    first = timed()
    reruns = sorted(timed() for _ in range(5))
    return first, reruns[2]  # median of 5 no-op reruns


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        side, feature_set, jobs, manifest, out = sys.argv[2:]
        print(f"{measure(side, feature_set, int(jobs), Path(manifest), Path(out)):.6f}")
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--features", nargs="+", default=["mfcc", "logmel", "lightsernet_mfcc"])
    ap.add_argument("--jobs", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--write", action="store_true", help="update bench/README.md (needs the default sets)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sertool-bench-"))
    rows, audio_s = ravdess_rows(args.data)
    manifest = write_manifest(rows, work / "ravdess.csv")
    files = [str(u.path) for u in rows]

    lines = []
    for feature_set in args.features:
        for jobs in args.jobs:
            base_runs, our_runs = [], []
            for _ in range(args.repeat):  # interleaved, so drifts in machine load hit both sides
                base_runs.append(timed_in_fresh_process("librosa", feature_set, jobs, manifest, work))
                our_runs.append(timed_in_fresh_process("sertool", feature_set, jobs, manifest, work))
            base, ours = min(base_runs), min(our_runs)
            lines.append(f"| {feature_set} | {jobs} | {base:.2f} | {audio_s / base:.0f}x | {ours:.2f} | "
                         f"{audio_s / ours:.0f}x | **{base / ours:.2f}** |")
            print(lines[-1], flush=True)
    libsndfile_s, ours_s = decode_only(files)
    decode = (f"Decoding alone, 1 process, best of 3: libsndfile (`soundfile.read`) {libsndfile_s:.2f} s, "
              f"sertool's loader (dr_flac for FLAC, into the STFT padding) {ours_s:.2f} s = "
              f"{libsndfile_s / ours_s:.2f}x.")
    print(decode)
    if not args.write:
        return
    first, second = cli_rerun(manifest, work / "cli")
    rerun = (f"No-op rerun of `sertool extract m.csv --features mfcc -o feats/` (CLI, fresh process): "
             f"first run {first:.2f} s, rerun {second:.3f} s (median of 5) = {100 * second / first:.1f} % of the first.")
    print(rerun)
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; {len(files)} RAVDESS files, "
        f"{audio_s:.0f} s of audio; best of {args.repeat}. xRT = audio seconds per wall second.",
        "",
        "| features | jobs | librosa loop (s) | librosa xRT | sertool extract (s) | sertool xRT | speed-up |",
        "|---|---|---|---|---|---|---|",
        *lines,
        "",
        decode,
        "",
        rerun,
    ])
    write_table("extract", table)


if __name__ == "__main__":
    main()
