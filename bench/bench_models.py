"""Every registered model on the same RAVDESS folds with a short CPU budget.

For each model: its paper's feature preset, ``speaker-kfold`` with 4 folds and seed 0
(the folds of the LIGHT-SERNET acceptance run), 2 validation speakers per
fold, ``--epochs`` epochs at the model's paper learning rate, then
``evaluate``. Reports parameters, mean seconds per epoch (train + valid, from
train_log.csv) and pooled UA/WA/F1. With ``--write`` the table replaces the
one between the markers in bench/README.md.

Usage: python bench/bench_models.py [--data ../shared/data/ravdess] [--epochs 3] [--work DIR] [--write]
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.tables import DEFAULT_RAVDESS, machine, ravdess_rows, write_table  # noqa: E402
from sertool.scoring.evaluate import evaluate_run  # noqa: E402
from sertool.extraction.pipeline import extract_manifest  # noqa: E402
from sertool.io.manifest import write_manifest  # noqa: E402
from sertool.models import build_model, model_names  # noqa: E402
from sertool.training.trainer import build_train_config, train_run  # noqa: E402

#: model -> (feature preset, learning rate from its paper)
SETUP = {
    "light_sernet": ("lightsernet_mfcc", 1e-4),
    "parallel_resnet_transformer": ("resnet_transformer_map", 1e-4),
    "mscnn_spu": ("mscnn_mfcc96", 5e-4),
    "mscnn_spu_att": ("mscnn_mfcc96", 5e-4),
    "cnn_transformer": ("transformer_logmel", 1e-4),
    "cnn_lstm_transformer": ("transformer_logmel", 1e-4),
    "ilt": ("transformer_logmel", 1e-4),
    "cat": ("transformer_logmel", 1e-4),
    "drn_mhsa": ("drn_lld17", 1e-4),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_RAVDESS)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--work", default=str(ROOT / "bench" / "out" / "models"))
    ap.add_argument("--models", default=",".join(model_names()))
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    work = Path(args.work)
    manifest = write_manifest(ravdess_rows(args.data, warm=False)[0], work / "ravdess.csv")
    lines = []
    for name in args.models.split(","):
        feature_set, lr = SETUP[name]
        store = extract_manifest(manifest, features=feature_set, output=work / "feats", jobs=2).store_path
        config = build_train_config({"epochs": args.epochs, "lr": lr, "patience": args.epochs})
        start = time.monotonic()
        train_run(manifest, store, model=name, output=work / "runs" / name, protocol="speaker-kfold",
                  folds=4, train_config=config)
        wall = time.monotonic() - start
        result = evaluate_run(work / "runs" / name)
        pooled = result.folds["pooled"]
        seconds = [float(r["seconds"]) for k in range(4)
                   for r in csv.DictReader(open(work / "runs" / name / f"fold-{k}" / "train_log.csv"))]
        params = sum(p.numel() for p in build_model(name, {}, input_dim=_dim(store), num_classes=8).parameters())
        lines.append(f"| {name} | {feature_set} | {params / 1e6:.2f} M | {sum(seconds) / len(seconds):.1f} | "
                     f"{args.epochs} | {pooled['UA']:.3f} | {pooled['WA']:.3f} | {pooled['macro_F1']:.3f} | "
                     f"{wall / 60:.1f} |")
        print(lines[-1], flush=True)
    table = "\n".join([
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()}, torch threads {os.cpu_count()}; RAVDESS actors "
        f"01-16 (960 clips), speaker-kfold 4 folds (seed 0), 2 validation speakers per fold, "
        f"{args.epochs} epochs per fold at the paper's learning rate, best validation epoch tested. "
        "A short budget: these numbers rank nothing, they show that every model trains end to end.",
        "",
        "| model | features | parameters | s / epoch | epochs | pooled UA | pooled WA | macro-F1 | wall (min, 4 folds) |",
        "|---|---|---|---|---|---|---|---|---|",
        *lines,
    ])
    if args.write:
        write_table("models", table)


def _dim(store_path) -> int:
    from sertool.store.reader import FeatureStore

    with FeatureStore(store_path) as store:
        return store.dim


if __name__ == "__main__":
    main()
