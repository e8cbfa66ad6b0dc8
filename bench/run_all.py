"""Regenerate every table in bench/README.md, each stamped with date, machine and sertool version.

Runs, in order: extraction vs librosa, openSMILE 1 vs 2 jobs, predict speed
with the bundled model, LIGHT-SERNET training speed against a baseline revision, Silero VAD
boundaries on joined clips, the CPU cost of self-supervised encoders, live-stream latency, how often the input
checks flag the clean speech of the shared corpora, and every model on the RAVDESS folds (the long one:
about an hour on 2 cores with ``--epochs 3``). ``--skip-models`` leaves the
model table as it is.

Usage: python bench/run_all.py [--skip-models] [--epochs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-models", action="store_true")
    ap.add_argument("--epochs", default="3")
    args = ap.parse_args()
    steps = [["bench_extract.py", "--write"], ["bench_opensmile.py", "--write"], ["bench_predict.py", "--write"],
             ["bench_train.py", "--write"], ["bench_vad.py", "--write"], ["bench_ssl.py", "--write"],
             ["bench_stream.py", "--write"], ["flag_rates.py", "--write"]]
    if not args.skip_models:
        steps.append(["bench_models.py", "--write", "--epochs", args.epochs])
    for script, *options in steps:
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *options], check=True)


if __name__ == "__main__":
    main()
