"""predict throughput with the bundled model: the 960 RAVDESS clips from the command line, and one-file latency.

Times ``sertool predict`` as a user runs it (a fresh process: imports, model
load, decode, features, network, CSV) over every clip, and over a single
clip, and reports files per second and real-time factor. In the same run,
two floors (in a fresh process each, after loading the model): the
feature-only floor (decode + features of every clip, no model) and the
model-only floor (the windows predict would score, pre-computed, through
the network in batches of 32), and their sequential sum. With ``--write``
the table replaces the one between the markers in bench/README.md.

Usage: python bench/bench_predict.py [--data ../shared/data/ravdess] [--baseline-rev REV] [--write]
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


#: The RAVDESS LIGHT-SERNET (``--model ravdess``; the bundled default until the multi-corpus model): the model
#: timed in both trees, so the two sides score the same network.
LSN = Path(__file__).resolve().parents[1] / "sertool" / "models" / "default" / "light_sernet_ravdess.pt"

FLOORS = r"""
import sys, time, torch
from pathlib import Path
from sertool.models.checkpoint import Checkpoint
from sertool.inference.engine import Scorer
import sertool
which, paths = sys.argv[1], [Path(p) for p in sys.argv[2:]]
torch.set_num_threads(2)
scorer = Scorer(Checkpoint.load(Path(sertool.__file__).parent / "models" / "default" / "light_sernet_ravdess.pt"))
scorer.features(paths[0])
start = time.perf_counter()
computed = [scorer.features(p) for p in paths]
features_s = time.perf_counter() - start
if which == "features":
    print(features_s); sys.exit()
# the windows predict scores, from the one window planner (sertool.inference.windows)
windows = [w for duration, feats, spans in computed for _, w in scorer.windows(feats, duration, spans)]
scorer.probabilities(windows[:32])
start = time.perf_counter()
scorer.probabilities(windows)  # batches of 32 (WINDOW_BATCH), as predict sends them
print(time.perf_counter() - start, len(windows))
"""


def floors(paths: list[str]) -> tuple[float, float, int]:
    """(feature-only seconds, model-only seconds, windows) over ``paths``, best of 2 fresh processes each."""
    env = {**__import__("os").environ, "OPENBLAS_NUM_THREADS": "1"}
    run = lambda which: subprocess.run([sys.executable, "-c", FLOORS, which, *paths], check=True,  # noqa: E731
                                       capture_output=True, text=True, env=env).stdout.split()
    features = min(float(run("features")[0]) for _ in range(2))
    models = [run("model") for _ in range(2)]
    return features, min(float(m[0]) for m in models), int(models[0][1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--baseline-rev", default="6c1b1d3",
                    help="git revision timed as the baseline (default: the tree before the one inference engine)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    rows, audio_s = ravdess_rows(args.data)
    out = Path(tempfile.mkdtemp(prefix="sertool-predict-")) / "p.csv"
    cmd = [sys.executable, "-m", "sertool", "predict", args.data, "-m", str(LSN), "-o", str(out), "--no-resume"]
    subprocess.run(cmd + ["--crop-tolerance", "0"], check=True, capture_output=True)  # warm the page cache
    baseline_tree = Path(tempfile.mkdtemp(prefix="sertool-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(baseline_tree)], input=archive.stdout, check=True)
    variants = {
        f"{args.baseline_rev}, the baseline (torch model, windows of 32 files per forward pass)": (baseline_tree, []),
        "this tree, overlapping windows for every clip over 2.944 s (`--crop-tolerance 0`)": (ROOT, ["--crop-tolerance", "0"]),
        "this tree (default): one centre-cropped window up to 4.4 s, windows of 32 files per forward pass, the "
        "bundled model through its ONNX export (onnxruntime; torch is not imported)": (ROOT, []),
        "this tree, `--jobs 2` (a worker decodes and computes features, this process runs the model)":
            (ROOT, ["--jobs", "2"]),
    }
    times = {name: [] for name in variants}
    for _ in range(2):  # alternate, so drifting load hits all alike
        for name, (tree, extra) in variants.items():
            start = time.perf_counter()
            subprocess.run(cmd + extra, check=True, capture_output=True, cwd=tree,
                           env={**__import__("os").environ, "PYTHONPATH": str(tree)})
            times[name].append(time.perf_counter() - start)
    singles = {"baseline": [], "this tree": []}
    for _ in range(5):  # one clip, fresh process, alternating the two trees
        for name, tree in (("baseline", baseline_tree), ("this tree", ROOT)):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "sertool", "predict", str(rows[0].path), "-m", str(LSN)], check=True,
                           capture_output=True, cwd=tree, env={**__import__("os").environ, "PYTHONPATH": str(tree)})
            singles[name].append(time.perf_counter() - start)
    single = {name: sorted(values)[2] for name, values in singles.items()}
    feature_s, model_s, windows = floors([str(r.path) for r in rows])
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
        lines.append(f"| `sertool predict` on the {len(rows)} RAVDESS clips ({audio_s:.0f} s of audio): {name} | "
                     f"{best:.1f} | {len(rows) / best:.0f} | {audio_s / best:.0f}x | **{baseline / best:.2f}** |")
    for name in ("baseline", "this tree"):
        label = args.baseline_rev if name == "baseline" else "this tree"
        lines.append(f"| `sertool predict` on one {rows[0].duration:.1f} s clip (median of 5, fresh process): {label} | "
                     f"{single[name]:.2f} | | | **{single['baseline'] / single[name]:.2f}** |")
    for name, seconds in ((f"feature-only floor: decode + features of the {len(rows)} clips, no model", feature_s),
                          (f"model-only floor (torch): the {windows} windows predict scores, pre-computed, batches of 32",
                           model_s),
                          ("the two floors in sequence (features, then model)", feature_s + model_s)):
        lines.append(f"| {name} | {seconds:.1f} | {len(rows) / seconds:.0f} | {audio_s / seconds:.0f}x | "
                     f"{baseline / seconds:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_table("predict", table, heading='## predict with the bundled model\n\n`bench/bench_predict.py`.')


if __name__ == "__main__":
    main()
