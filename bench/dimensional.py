"""Dimensional (ordinal) targets, measured: BAVED's level and RAVDESS's intensity, as regression and as classes.

Every number comes from ``sertool`` commands run as a user would (prepare, extract, train, evaluate) on
``../shared/data``:

- BAVED (Arabic words at three levels of expressed emotion: 0 low, 1 neutral, 2 high), the target
  the ``level`` column; RAVDESS actors 01-16, the target the ``intensity`` column (1 normal, 2 strong).
- Protocol: ``--protocol speaker-kfold --folds 4`` (speakers split into 4 folds balanced by file count;
  BAVED's speakers have 3 to 349 files), validation speakers drawn from each fold's training speakers
  choose C / alpha / the epoch. Features: openSMILE eGeMAPS functionals (88 per utterance) for the
  classic models and the mlp, LIGHT-SERNET's MFCC frames for light_sernet.
- Regression rows train on the number (``--target``) and report pooled CCC with its 95 % bootstrap
  interval (utterances resampled), Pearson's r and MAE; classification rows train on the levels as
  classes and report UA (chance 1/3 for BAVED, 1/2 for RAVDESS intensity) and, for comparison, the CCC of
  the predicted class index.

The recipe rows are all shown; which one is "best" is read off the cross-validated pooled score, the
same folds for every row (no setting is chosen on a test fold: C, alpha and epochs are chosen on
validation speakers inside each fold).

Usage::

    python bench/dimensional.py [--data ../shared/data] [--work dimensional-work]

Writes bench/dimensional.csv and the ``dimensional`` tables in bench/README.md and README.md.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tables import machine, replace_section  # noqa: E402
from sertool.metrics import concordance  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERTOOL = [sys.executable, "-m", "sertool"]
FEATURES = "egemaps_functionals"
PROTOCOL = ["--protocol", "speaker-kfold", "--folds", "4"]
#: corpus -> (folder under --data, preparer, target column, its class label per value)
CORPORA = {"baved": ("baved", "baved", "level", {"0": "low", "1": "neutral", "2": "high"}),
           "ravdess": ("ravdess", "ravdess", "intensity", {"01": "normal", "02": "strong"})}
#: recipe name -> (task, model, feature set, train options)
RECIPES = {
    "ridge, global statistics": ("regression", "ridge", FEATURES, ["--norm", "global"]),
    "ridge, speaker statistics": ("regression", "ridge", FEATURES, ["--norm", "speaker"]),
    "svr (rbf), speaker statistics": ("regression", "svr", FEATURES, ["--norm", "speaker"]),
    "mlp, CCC loss, speaker statistics": ("regression", "mlp", FEATURES, ["--norm", "speaker", "--loss", "ccc"]),
    "mlp, MSE loss, speaker statistics": ("regression", "mlp", FEATURES, ["--norm", "speaker", "--loss", "mse"]),
    "light_sernet (MFCC frames), CCC loss, speaker statistics": (
        "regression", "light_sernet", "lightsernet_mfcc", ["--norm", "speaker", "--loss", "ccc"]),
    "logreg on the levels as classes, global statistics": ("classification", "logreg", FEATURES, ["--norm", "global"]),
    "logreg on the levels as classes, speaker statistics": (
        "classification", "logreg", FEATURES, ["--norm", "speaker"]),
}


def sertool(*args) -> None:
    subprocess.run([*SERTOOL, *map(str, args)], check=True)


def prepare(corpus: str, data: Path, work: Path) -> Path:
    """The corpus's manifest, with ``label`` set to the level's class name."""
    folder, preparer, column, names = CORPORA[corpus]
    full = work / f"{corpus}-full.csv"
    if not full.exists():
        sertool("prepare", preparer, data / folder, "-o", full)
    manifest = work / f"{corpus}.csv"
    with open(full, newline="") as fh:
        reader = csv.DictReader(fh)
        rows, fields = list(reader), reader.fieldnames
    for row in rows:
        row["label"] = names[row[column]]
        row["path"] = str((full.parent / row["path"]).resolve())
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def store_of(manifest: Path, features: str, work: Path) -> Path:
    """The feature store of ``manifest`` (extracted on first use; an up-to-date rerun only checks it)."""
    out = subprocess.run([*SERTOOL, "extract", manifest, "-f", features, "-o", work / "stores"], check=True,
                         text=True, stdout=subprocess.PIPE).stdout.strip().splitlines()[-1]
    return Path(out)


def pooled(run: Path) -> dict[str, float]:
    """The pooled rows of ``RUN/metrics.csv`` (columns fold, metric, value) as metric -> value."""
    with open(run / "metrics.csv", newline="") as fh:
        return {row["metric"]: float(row["value"]) for row in csv.DictReader(fh) if row["fold"] == "pooled"}


def class_ccc(run: Path, column: str, names: dict[str, str], manifest: Path) -> float:
    """CCC of the predicted class's level against the true level (classification rows)."""
    value = {name: float(code) for code, name in names.items()}
    with open(run / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    true = np.array([value[r["label"]] for r in rows])
    pred = np.array([value[r["predicted"]] for r in rows])
    return concordance(true, pred)


def run_recipe(corpus: str, name: str, manifest: Path, work: Path) -> dict:
    task, model, features, options = RECIPES[name]
    store = store_of(manifest, features, work)
    column = CORPORA[corpus][2]
    run = work / "runs" / f"{corpus}-{task}-{model}-{'-'.join(o.strip('-') for o in options)}"
    # classes: 6 validation speakers (BAVED's 2 random ones are often a few files of one level, which the
    # validation check refuses for classes); the test speakers of every fold are the same as the regression rows'
    target = ["--target", column] if task == "regression" else ["--valid-speakers", "6"]
    sertool("train", manifest, store, "-m", model, *target, *options, *PROTOCOL, "-o", run)
    sertool("evaluate", run)
    metrics = pooled(run)
    if task == "regression":
        ccc = f"CCC_{column}"
        return {"corpus": corpus, "recipe": name, "task": task, "CCC": metrics[ccc],
                "CCC_low": metrics[f"{ccc}_ci95_low"], "CCC_high": metrics[f"{ccc}_ci95_high"],
                "UA": float("nan")}
    return {"corpus": corpus, "recipe": name, "task": task, "UA": metrics["UA"],
            "UA_low": metrics["UA_ci95_low"], "UA_high": metrics["UA_ci95_high"],
            "CCC": class_ccc(run, column, CORPORA[corpus][3], manifest)}


def table(results: list[dict]) -> str:
    lines = [f"Measured {machine()} by `python bench/dimensional.py` (speaker-kfold, 4 folds balanced by file "
             "count; pooled over the folds' test speakers, 95 % bootstrap interval).", "",
             "| corpus (target) | recipe | CCC | UA |", "|---|---|---|---|"]
    for r in results:
        ccc = (f"**{r['CCC']:.3f}** [{r['CCC_low']:.3f}, {r['CCC_high']:.3f}]" if r["task"] == "regression"
               else f"{r['CCC']:.3f} (of the class index)")
        ua = f"{r['UA']:.3f} [{r['UA_low']:.3f}, {r['UA_high']:.3f}]" if r["task"] == "classification" else "-"
        lines.append(f"| {r['corpus']} ({CORPORA[r['corpus']][2]}) | {r['recipe']} | {ccc} | {ua} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--work", default="dimensional-work")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for corpus in args.corpora:
        manifest = prepare(corpus, Path(args.data), work)
        results += [run_recipe(corpus, name, manifest, work) for name in args.recipes]
    with open(HERE / "dimensional.csv", "w", newline="") as fh:
        fields = sorted({k for r in results for k in r})
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in results)
    text = table(results)
    for path in (HERE / "README.md", ROOT / "README.md"):
        if not replace_section(path, "dimensional", text):
            print(f"{path}: no <!-- dimensional-table:start --> marker; table not written there")
    print(text)


if __name__ == "__main__":
    main()
