"""openSMILE extraction time for the 960 RAVDESS clips at 1 and 2 jobs (eGeMAPS and ComParE functionals).

Each run builds the store from scratch (``overwrite=True``) in the same
process, so the 1-job and 2-job numbers are measured back to back; the
speed-up is their ratio. With ``--write`` the table replaces the one between
the markers in bench/README.md.

Usage: python bench/bench_opensmile.py [--data ../shared/data/ravdess] [--write]
"""

from __future__ import annotations

import os

os.environ.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import DEFAULT_RAVDESS, machine, ravdess_rows, write_table  # noqa: E402
from sertool.extraction.pipeline import extract_manifest  # noqa: E402
from sertool.io.manifest import write_manifest  # noqa: E402
from sertool.store.reader import FeatureStore  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--sets", default="egemaps_functionals,compare_functionals")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sertool-smile-"))
    rows, audio_s = ravdess_rows(args.data, warm=False)
    manifest = write_manifest(rows, work / "ravdess.csv")
    lines = []
    for feature_set in args.sets.split(","):
        times = {}
        for jobs in (1, 2):
            start = time.perf_counter()
            result = extract_manifest(manifest, features=feature_set, output=work, jobs=jobs, overwrite=True,
                                      progress=False)
            times[jobs] = time.perf_counter() - start
            assert result.report.failed == 0, result.report.failures[:2]
        with FeatureStore(result.store_path) as store:
            entries, dim = len(store), store.dim
        lines.append(f"| {feature_set} | {entries} x {dim} | {times[1]:.1f} | {audio_s / times[1]:.0f}x | "
                     f"{times[2]:.1f} | {audio_s / times[2]:.0f}x | **{times[1] / times[2]:.2f}** |")
        print(lines[-1], flush=True)
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}; {len(rows)} RAVDESS files, {audio_s:.0f} s of audio; "
        "store written from scratch each run.",
        "",
        "| feature set | store (utterances x dim) | 1 job (s) | xRT | 2 jobs (s) | xRT | speed-up |",
        "|---|---|---|---|---|---|---|",
        *lines,
    ])
    if args.write:
        write_table("opensmile", table, heading='## openSMILE functionals, 1 vs 2 jobs\n\n`bench/bench_opensmile.py`.')


if __name__ == "__main__":
    main()
