"""LIGHT-SERNET training speed: seconds per epoch of a baseline revision and of this tree, in one run.

Trains fold 0 of the 4 RAVDESS speaker folds (600 training clips, 120
validation clips, the model's default recipe) for ``--epochs`` epochs with
``sertool train`` in a fresh process per variant, and reads the per-epoch
seconds (training + validation) from ``train_log.csv``; the first epoch
(warm-up) is left out, the median of the others is reported, best of
``--repeats``. Variants, alternated so drifting load hits all alike:

- the baseline: the same command run from ``git archive --baseline-rev``
  (default: the last commit before the training speed work);
- this tree (channels-last layout), ``--precision fp32``;
- this tree with ``--precision bf16`` (bfloat16 autocast; the default ``auto``
  on CPUs with native bfloat16).

Also, in the same run, the model-only floor: forward + backward + AdamW step
on random batches of the epoch's shape (batch 32, 184 frames x 40, as many
steps as an epoch has), float32 in the old (contiguous) and the new
(channels-last) layout, and bf16. With ``--write`` the table replaces the one
between the markers in bench/README.md.

Usage: python bench/bench_train.py [--data ../shared/data/ravdess] [--epochs 4] [--baseline-rev REV] [--write]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import DEFAULT_RAVDESS, machine, ravdess_rows, write_table  # noqa: E402

BASELINE_REV = "20e17b2"

FLOOR = r"""
import sys, time, torch
sys.path.insert(0, sys.argv[1])
from sertool.models import build_model
from sertool.models.common import fast_layout
steps, layout, precision = int(sys.argv[2]), sys.argv[3], sys.argv[4]
torch.manual_seed(0)
model = build_model("light_sernet", {}, input_dim=40, num_classes=8).train()
if layout == "channels_last":
    model = fast_layout(model)
optimiser = torch.optim.AdamW(model.parameters(), 1e-3)
x, y, lengths = torch.randn(32, 184, 40), torch.randint(0, 8, (32,)), torch.full((32,), 184)
def epoch():
    for _ in range(steps):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(x, lengths).float(), y)
        optimiser.zero_grad(); loss.backward(); optimiser.step()
epoch()
best = 1e9
for _ in range(3):
    start = time.perf_counter(); epoch(); best = min(best, time.perf_counter() - start)
print(best)
"""


def epoch_seconds(tree: Path, manifest: Path, store: Path, epochs: int, extra: list[str]) -> tuple[float, dict]:
    """Median s/epoch (epochs 2..E) of one ``sertool train`` run from ``tree``, and its last log row."""
    out = Path(tempfile.mkdtemp(prefix="sertool-train-bench-"))
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": str(os.cpu_count())}
    cmd = [sys.executable, "-m", "sertool", "train", str(manifest), str(store), "--model", "light_sernet",
           "--folds", "4", "--fold", "0", "--epochs", str(epochs), "-o", str(out), *extra]
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=tree)
    with open(out / "fold-0" / "train_log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return statistics.median(float(r["seconds"]) for r in rows[1:]), rows[-1]


def floor_seconds(steps: int, layout: str, precision: str) -> float:
    done = subprocess.run([sys.executable, "-c", FLOOR, str(ROOT), str(steps), layout, precision], check=True,
                          capture_output=True, text=True)
    return float(done.stdout.split()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--baseline-rev", default=BASELINE_REV)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "train"))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    from sertool.extraction.pipeline import extract_manifest
    from sertool.io.manifest import write_manifest

    work = Path(args.work)
    manifest = write_manifest(ravdess_rows(args.data)[0], work / "ravdess.csv")
    store = extract_manifest(manifest, features="lightsernet_mfcc", output=work / "feats", jobs=2).store_path
    baseline = Path(tempfile.mkdtemp(prefix="sertool-baseline-"))
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline_rev], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
    variants = {f"baseline ({args.baseline_rev}: contiguous layout, fp32)": (baseline, []),
                "this tree: channels-last, `--precision fp32`": (ROOT, ["--precision", "fp32"]),
                "this tree: channels-last, `--precision bf16` (what `auto`, the default, picks on CPUs with "
                "AVX512-BF16 or AMX)": (ROOT, ["--precision", "bf16"])}
    seconds = {name: [] for name in variants}
    last = {}
    for _ in range(args.repeats):
        for name, (tree, extra) in variants.items():
            s, row = epoch_seconds(tree, manifest, store, args.epochs, extra)
            seconds[name].append(s)
            last[name] = row
            print(f"{name}: {s:.2f} s/epoch (train loss {row['train_loss']}, valid UA {row['valid_UA']})", flush=True)
    steps = -(-600 // 32)
    floors = {f"model only, {layout}, {precision}": floor_seconds(steps, layout, precision)
              for layout, precision in (("contiguous", "fp32"), ("channels_last", "fp32"),
                                        ("channels_last", "bf16"))}
    base = min(seconds[next(iter(variants))])
    lines = [f"Measured {__import__('datetime').date.today()} on {machine()}; fold 0 of the 4 RAVDESS speaker "
             f"folds (600 training + 120 validation clips), LIGHT-SERNET default recipe, {args.epochs} epochs, "
             f"median s/epoch of epochs 2-{args.epochs}, best of {args.repeats}.", "",
             f"| loop | s/epoch | speed-up over the baseline | train loss at epoch {args.epochs} | "
             f"valid UA at epoch {args.epochs} |", "|---|---|---|---|---|"]
    for name in variants:
        best = min(seconds[name])
        lines.append(f"| {name} | {best:.2f} | **{base / best:.2f}** | {last[name]['train_loss']} | "
                     f"{last[name]['valid_UA']} |")
    for name, s in floors.items():
        lines.append(f"| {name} ({steps} steps of 32 x 184 x 40, forward + backward + AdamW) | {s:.2f} | "
                     f"{base / s:.2f} | | |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_table("train", table, heading="## LIGHT-SERNET training speed")


if __name__ == "__main__":
    main()
