"""predict throughput with the bundled model: the 960 RAVDESS clips from the command line, and one-file latency.

Times ``sertool predict`` as a user runs it (a fresh process: imports, model
load, decode, features, network, CSV) over every clip, and over a single
clip, and reports files per second and real-time factor. With ``--write``
the table replaces the one between the markers in bench/README.md.

Usage: python bench/bench_predict.py [--data ../shared/data/ravdess] [--write]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import DEFAULT_RAVDESS, machine, ravdess_rows, write_table  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rows, audio_s = ravdess_rows(args.data)
    out = Path(tempfile.mkdtemp(prefix="sertool-predict-")) / "p.csv"
    cmd = [sys.executable, "-m", "sertool", "predict", args.data, "-o", str(out), "--no-resume"]
    subprocess.run(cmd + ["--crop-tolerance", "0"], check=True, capture_output=True)  # warm the page cache
    times = {"overlapping windows for every clip over 2.944 s (`--crop-tolerance 0`, the baseline)": [],
             "one centre-cropped window up to 4.4 s (default `--crop-tolerance 0.5`)": []}
    for _ in range(2):  # alternate, so drifting load hits both alike
        for name, extra in zip(times, (["--crop-tolerance", "0"], [])):
            start = time.perf_counter()
            subprocess.run(cmd + extra, check=True, capture_output=True)
            times[name].append(time.perf_counter() - start)
    singles = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sertool", "predict", str(rows[0].path)], check=True,
                       capture_output=True)
        singles.append(time.perf_counter() - start)
    single = sorted(singles)[2]
    baseline = min(next(iter(times.values())))
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; bundled LIGHT-SERNET model, CPU; best of 2 "
        "alternating runs each.",
        "",
        "| what | wall time (s) | files / s | xRT | speed-up vs baseline |",
        "|---|---|---|---|---|",
    ]
    for name, values in times.items():
        best = min(values)
        lines.append(f"| `sertool predict` on the {len(rows)} RAVDESS clips ({audio_s:.0f} s of audio), {name} | "
                     f"{best:.1f} | {len(rows) / best:.0f} | {audio_s / best:.0f}x | **{baseline / best:.2f}** |")
    lines.append(f"| `sertool predict` on one {rows[0].duration:.1f} s clip (median of 5, fresh process) | "
                 f"{single:.2f} | | | |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_table("predict", table, heading='## predict with the bundled model\n\n`bench/bench_predict.py`.')


if __name__ == "__main__":
    main()
