"""Dimensional (ordinal) targets, measured: BAVED's level and RAVDESS's intensity, as regression and as classes.

Every number comes from ``sertool`` commands run as a user would (prepare, extract, train, evaluate) on
``../shared/data``:

- BAVED (Arabic words at three levels of expressed emotion: 0 low, 1 neutral, 2 high), the target
  the ``level`` column; RAVDESS actors 01-16, the target the ``intensity`` column (1 normal, 2 strong).
- Protocol: ``--protocol speaker-kfold --folds 4`` (speakers split into 4 folds balanced by file count;
  BAVED's speakers have 3 to 356 files), validation speakers holding about a fifth of each fold's
  training files (``--valid-speakers 0.2``) choose C / alpha / the epoch and fit the classic regressors'
  output map. Features: openSMILE eGeMAPS functionals (88 per utterance) for the
  classic models and the mlp, LIGHT-SERNET's MFCC frames for light_sernet.
- Regression rows train on the number (``--target``) and report pooled CCC with its 95 % bootstrap
  interval (utterances resampled), Pearson's r and MAE; classification rows train on the levels as
  classes and report UA (chance 1/3 for BAVED, 1/2 for RAVDESS intensity) and, for comparison, the CCC of
  the predicted class index.

The recipe rows are all shown; which one is "best" is read off the cross-validated pooled score, the
same folds for every row (no setting is chosen on a test fold: C, alpha and epochs are chosen on
validation speakers inside each fold). The fusion row averages two refit runs with equal weights fixed
in advance (``sertool fuse --weights 1,1``), so it too chooses nothing per fold. light_sernet (about 15 s
an epoch on 2 cores) runs only when named: ``--recipes "light_sernet (MFCC frames), CCC loss, speaker
statistics"``.

Usage::

    python bench/dimensional.py [--data ../shared/data] [--work dimensional-work] [--seed N]

Writes bench/dimensional.csv and the ``dimensional`` tables in bench/README.md and README.md; with
``--seed N`` (other folds and validation speakers) only bench/dimensional-seed<N>.csv.
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
#: validation speakers: about a fifth of each fold's training files (BAVED's speakers hold 3 to 356 files)
VALID = ["--valid-speakers", "0.2"]
SPEAKER = ["--norm", "speaker"]
REFIT = ["--set", "refit=true"]
#: recipe name -> (task, model, feature set, train options)
RECIPES = {
    "ridge, global statistics": ("regression", "ridge", FEATURES, ["--norm", "global"]),
    "ridge, speaker statistics": ("regression", "ridge", FEATURES, SPEAKER),
    "svr (rbf), speaker statistics": ("regression", "svr", FEATURES, SPEAKER),
    "svr (rbf), speaker statistics, refit": ("regression", "svr", FEATURES, SPEAKER + REFIT),
    "logreg_mean, speaker statistics": ("regression", "logreg_mean", FEATURES, SPEAKER),
    "logreg_mean, speaker statistics, refit": ("regression", "logreg_mean", FEATURES, SPEAKER + REFIT),
    "mlp, CCC loss, speaker statistics": ("regression", "mlp", FEATURES, SPEAKER + ["--loss", "ccc"]),
    "mlp, MSE loss, speaker statistics": ("regression", "mlp", FEATURES, SPEAKER + ["--loss", "mse"]),
    "light_sernet (MFCC frames), CCC loss, speaker statistics": (
        "regression", "light_sernet", "lightsernet_mfcc", SPEAKER + ["--loss", "ccc"]),
    "logreg on the levels as classes, global statistics": ("classification", "logreg", FEATURES, ["--norm", "global"]),
    "logreg on the levels as classes, speaker statistics": ("classification", "logreg", FEATURES, SPEAKER),
}
#: fusion name -> the recipes fused with equal weights (`sertool fuse --weights 1,1`: nothing chosen per fold)
FUSIONS = {"fusion of svr and logreg_mean (both refit, speaker statistics), equal weights": (
    "svr (rbf), speaker statistics, refit", "logreg_mean, speaker statistics, refit")}
#: recipes left out unless named with --recipes (light_sernet: about 15 s an epoch here, an hour a corpus)
OPT_IN = ("light_sernet (MFCC frames), CCC loss, speaker statistics",)


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


def run_dir(corpus: str, name: str, work: Path, seed: int) -> Path:
    task, model, _, options = RECIPES[name]
    return work / "runs" / f"{corpus}-{task}-{model}-{'-'.join(o.strip('-') for o in options)}{seed or ''}"


def run_recipe(corpus: str, name: str, manifest: Path, work: Path, seed: int) -> dict:
    task, model, features, options = RECIPES[name]
    store = store_of(manifest, features, work)
    column = CORPORA[corpus][2]
    run = run_dir(corpus, name, work, seed)
    target = ["--target", column] if task == "regression" else []
    sertool("train", manifest, store, "-m", model, *target, *options, *PROTOCOL, *VALID, "--seed", seed, "-o", run)
    sertool("evaluate", run)
    return scores(corpus, name, task, run, manifest)


def run_fusion(corpus: str, name: str, manifest: Path, work: Path, seed: int) -> dict:
    run = work / "runs" / f"{corpus}-fusion-{len(FUSIONS[name])}{seed or ''}"
    sertool("fuse", *(run_dir(corpus, member, work, seed) for member in FUSIONS[name]),
            "--weights", ",".join("1" for _ in FUSIONS[name]), "-o", run)
    sertool("evaluate", run)
    return scores(corpus, name, "regression", run, manifest)


def scores(corpus: str, name: str, task: str, run: Path, manifest: Path) -> dict:
    metrics, column = pooled(run), CORPORA[corpus][2]
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
    parser.add_argument("--recipes", nargs="+", default=[r for r in RECIPES if r not in OPT_IN],
                        choices=list(RECIPES))
    parser.add_argument("--seed", type=int, default=0,
                        help="Fold and validation seed; other than 0: bench/dimensional-seed<N>.csv, no tables")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for corpus in args.corpora:
        manifest = prepare(corpus, Path(args.data), work)
        results += [run_recipe(corpus, name, manifest, work, args.seed) for name in args.recipes]
        results += [run_fusion(corpus, name, manifest, work, args.seed) for name, members in FUSIONS.items()
                    if set(members) <= set(args.recipes)]
    with open(HERE / f"dimensional{f'-seed{args.seed}' if args.seed else ''}.csv", "w", newline="") as fh:
        fields = sorted({k for r in results for k in r})
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in results)
    text = table(results)
    for path in (HERE / "README.md", ROOT / "README.md") if not args.seed else ():
        if not replace_section(path, "dimensional", text):
            print(f"{path}: no <!-- dimensional-table:start --> marker; table not written there")
    print(text)


if __name__ == "__main__":
    main()
