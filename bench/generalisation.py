"""How models hold up on corpora and speakers they never saw: leave-one-corpus-out over the shared corpora.

Every number comes from a chain of ``sertool`` commands run as a user would (prepare, extract,
store merge, train, evaluate, predict) on ``../shared/data``: RAVDESS actors 01-16 (English, 8
classes), EMO-DB-2s (German, 7) and ASED speakers 01-40 (Amharic, 5). Rows:

- ``loco``: ``train ... --protocol loco``: each corpus is scored by a model trained on the OTHER
  two (validation speakers, which choose C and the temperature, drawn from those two), over the
  classes it shares with that model, probabilities renormalised over them.
- ``unseen speakers``: ``--protocol speaker-kfold --folds 4`` over the three corpora together:
  every corpus's speakers are split into folds, so each corpus is scored on speakers the model
  never saw while the model trained on all three corpora (what the bundled model is).
- ``previous bundled model``: the RAVDESS-only LIGHT-SERNET (``--model ravdess``) scored on
  EMO-DB-2s and ASED with ``sertool predict`` (RAVDESS actors 01-16 are its training data, so
  not scored).

UA is over the classes each test set shares with the model (chance = 1 / classes), with the
pooled 95 % bootstrap interval for the loco rows; ECE with 10 equal-width bins. Choices (C by
validation UA on the validation speakers; normalisation and features by the loco mean) are never
made on a test corpus. ``--bundle`` then trains the bundled default model with the chosen recipe on
all three corpora (``--protocol all``; validation speakers 2 per corpus choose C and the
temperature) and writes ``sertool/models/default/multicorpus.pt`` and its ONNX copy.

Usage::

    python bench/generalisation.py [--data ../shared/data] [--work generalisation-work] [--bundle]

Writes bench/generalisation.csv and the ``generalisation`` tables in bench/README.md, README.md and
the model card (sertool/models/default/README.md).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tables import machine, replace_section  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERTOOL = [sys.executable, "-m", "sertool"]
#: corpus -> (folder under --data, preparer)
CORPORA = {"ravdess": ("ravdess", "ravdess"), "emodb": ("emodb-2s", "emodb"), "ased": ("ased", "ased")}
FEATURES = "egemaps_mfcc_stats"
#: recipe rows: name -> (model, train options)
RECIPES = {
    "logreg, eGeMAPS + MFCC stats (gain-levelled), set": ("logreg", ["--norm", "set"]),
    "logreg, eGeMAPS + MFCC stats (gain-levelled), global": ("logreg", ["--norm", "global"]),
    "svm linear, eGeMAPS + MFCC stats (gain-levelled), set": ("svm", ["--norm", "set"]),
}
#: The four classes most cross-corpus work reports (sertool.corpora.labels.LABEL_SETS["big4"]).
BIG4 = ("angry", "happy", "neutral", "sad")
CHOSEN = "logreg, eGeMAPS + MFCC stats (gain-levelled), set"
BUNDLE = ROOT / "sertool" / "models" / "default" / "multicorpus.pt"


def sertool(*args, capture=False) -> str:
    result = subprocess.run([*SERTOOL, *map(str, args)], check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout.strip() if capture else ""


def prepare(data: Path, work: Path) -> tuple[list[Path], Path]:
    """Manifests of the three corpora and one store of all their rows."""
    manifests, stores = [], []
    for name, (folder, preparer) in CORPORA.items():
        manifest = work / f"{name}.csv"
        if not manifest.exists():
            sertool("prepare", preparer, data / folder, "-o", manifest)
        manifests.append(manifest)
        stores.append(sertool("extract", manifest, "--features", FEATURES, "-o", work / "feats", "--jobs", "2",
                              "--no-progress", capture=True).splitlines()[-1])
    merged = work / "feats" / f"all.{FEATURES}.h5"
    if not merged.exists():
        sertool("store", "merge", *stores, "-o", merged)
    return manifests, merged


def corpus_of(row: dict) -> str:
    return row["speaker"].split(":")[0]


def per_corpus(predictions: Path) -> dict[str, dict]:
    """corpus -> UA, ECE, N, classes from an evaluate predictions.csv (shared classes, renormalised)."""
    rows = list(csv.DictReader(open(predictions)))
    labels = [k[2:] for k in rows[0] if k.startswith("p_")]
    out = {}
    for corpus in sorted({corpus_of(r) for r in rows}):
        part = [r for r in rows if corpus_of(r) == corpus and r["label"] in labels]
        out[corpus] = shared_scores(part, labels) | {"UA_big4": shared_scores(part, labels, BIG4)["UA"]}
    return out


def shared_scores(rows: list[dict], labels: list[str], subset: tuple[str, ...] = ()) -> dict:
    """UA, ECE (10 bins), N and the number of classes of ``rows`` over the classes they share with ``labels``
    (and with ``subset`` when given: rows of other labels left out)."""
    shared = [c for c in labels if any(r["label"] == c for r in rows) and (not subset or c in subset)]
    rows = [r for r in rows if r["label"] in shared]
    probs = np.array([[float(r[f"p_{c}"]) for c in shared] for r in rows], np.float64)
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)
    truth = np.array([shared.index(r["label"]) for r in rows])
    pred = probs.argmax(axis=1)
    ua = float(np.mean([np.mean(pred[truth == k] == k) for k in range(len(shared))]))
    conf, hit = probs.max(axis=1), pred == truth
    ece = sum(np.mean(m) * abs(hit[m].mean() - conf[m].mean())
              for b in range(10) if (m := (conf > b / 10) & (conf <= (b + 1) / 10)).any())
    return {"UA": ua, "ECE": float(ece), "N": len(rows), "classes": len(shared)}


def run_recipes(manifests: list[Path], store: Path, work: Path) -> list[dict]:
    """The loco and unseen-speaker rows of every recipe."""
    results = []
    for name, (model, options) in RECIPES.items():
        slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
        for protocol, args in (("loco", ["--protocol", "loco"]),
                               ("unseen speakers", ["--protocol", "speaker-kfold", "--folds", "4"])):
            run = work / "runs" / f"{slug}-{protocol.split()[0]}"
            if not (run / "predictions.csv").exists():
                sertool("train", *manifests, store, "-m", model, *options, *args, "-o", run)
                sertool("evaluate", run)
            for corpus, scores in per_corpus(run / "predictions.csv").items():
                results.append({"recipe": name, "protocol": protocol, "corpus": corpus, **scores})
    return results


def previous_bundled(manifests: list[Path], work: Path) -> list[dict]:
    """The RAVDESS-only bundled LIGHT-SERNET on the corpora it never saw."""
    results = []
    for manifest in manifests:
        if manifest.stem == "ravdess":
            continue
        out = work / f"previous-{manifest.stem}.csv"
        if not out.exists():
            sertool("predict", manifest, "--model", "ravdess", "-o", out, "--no-progress")
        rows = [r for r in csv.DictReader(open(out)) if not r.get("error")]
        labels = [k[2:] for k in rows[0] if k.startswith("p_")]
        rows = [r for r in rows if r["label"] in labels]
        results.append({"recipe": "previous bundled model (light_sernet, RAVDESS only)", "protocol": "unseen corpus",
                        "corpus": manifest.stem, **shared_scores(rows, labels),
                        "UA_big4": shared_scores(rows, labels, BIG4)["UA"]})
    return results


def table(results: list[dict]) -> str:
    """Markdown: one row per (recipe, protocol), one column per corpus: UA (ECE) [classes]."""
    corpora = list(CORPORA)
    lines = [f"Measured by `python bench/generalisation.py` on {machine()}.", "",
             "| model | protocol | " + " | ".join(f"{c} UA (ECE)" for c in corpora) + " | mean UA | "
             + " | ".join(f"{c} big4" for c in corpora) + " |",
             "|---|---|" + "---|" * (2 * len(corpora) + 1)]
    keys = list(dict.fromkeys((r["recipe"], r["protocol"]) for r in results))
    for recipe, protocol in keys:
        cells, uas, big4 = [], [], []
        for corpus in corpora:
            found = [r for r in results if (r["recipe"], r["protocol"], r["corpus"]) == (recipe, protocol, corpus)]
            if found:
                r = found[0]
                cells.append(f"{r['UA']:.3f} ({r['ECE']:.2f}) [{r['classes']}]")
                uas.append(r["UA"])
                big4.append(f"{r['UA_big4']:.3f}")
            else:
                cells.append("-")
                big4.append("-")
        lines.append(f"| {recipe} | {protocol} | " + " | ".join(cells) + f" | {np.mean(uas):.3f} | "
                     + " | ".join(big4) + " |")
    lines += ["", "UA over the classes each test set shares with the model [their number; chance = 1 / it], "
              "probabilities renormalised over them; ECE in parentheses (10 equal-width bins). `big4`: UA over "
              "angry, happy, neutral and sad only (chance 0.25), the set most cross-corpus work reports."]
    return "\n".join(lines)


def write_outputs(results: list[dict]) -> None:
    with open(HERE / "generalisation.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["recipe", "protocol", "corpus", "UA", "ECE", "N", "classes", "UA_big4"])
        writer.writeheader()
        writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()} for r in results)
    text = table(results)
    for path in (HERE / "README.md", ROOT / "README.md", BUNDLE.parent / "README.md"):
        if not replace_section(path, "generalisation", text):
            print(f"{path}: no <!-- generalisation-table:start --> marker; table not written there")
    print(text)


def bundle(manifests: list[Path], store: Path, work: Path) -> None:
    """Train the bundled default model with the chosen recipe on all three corpora, and export it."""
    model, options = RECIPES[CHOSEN]
    run = work / "runs" / "bundle"
    sertool("train", *manifests, store, "-m", model, *options, "--protocol", "all", "-o", run)
    shutil.copyfile(run / "fold-0" / "checkpoint.pt", BUNDLE)
    sertool("export", BUNDLE, "-o", BUNDLE.with_suffix(".onnx"))
    print(f"wrote {BUNDLE} and {BUNDLE.with_suffix('.onnx')}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--work", default="generalisation-work")
    parser.add_argument("--bundle", action="store_true", help="Also train and export the bundled default model.")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifests, store = prepare(Path(args.data), work)
    results = run_recipes(manifests, store, work) + previous_bundled(manifests, work)
    write_outputs(results)
    if args.bundle:
        bundle(manifests, store, work)


if __name__ == "__main__":
    main()
