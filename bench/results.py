"""The results table: train and evaluate every row on the shared corpora with the sertool CLI.

Each row is a chain of ``sertool`` commands (prepare, extract, train with the
model's default recipe unless the row says otherwise, evaluate; ``fuse`` for
fusion rows), run exactly as a user would. Pooled UA / WA / macro-F1 and the
standard deviation of UA over folds come from each run's ``metrics.csv``;
seconds are the wall time of train (+ fuse) + evaluate when the run was made (kept
from bench/results.csv when a finished run is reused; extraction is shared and not
counted). The UA interval is
the pooled 95 % bootstrap interval that ``sertool evaluate`` writes (1000
resamples of test utterances).

Protocols: RAVDESS actors 01-16 with ``--protocol speaker-kfold --folds 4``
(default seed 0), EMO-DB-2s with ``--protocol loso``. Every choice (epoch
selection, C, fusion weights) is made on validation speakers drawn from each
fold's training speakers; the recipes were chosen on the 4-fold RAVDESS mean.
The ``baseline`` row is bench/baseline.py (logistic regression on
utterance-mean MFCCs) on the folds of the corpus's first run.

Usage::

    python bench/results.py [--data ../shared/data] [--work results-work] [--rows quick|all] [--only SUBSTRING]

``quick`` (default) runs the classic models, LIGHT-SERNET and the fusions;
``all`` adds the other network families (hours on 2 cores). Finished runs are
reused, so a rerun only trains what is missing. Writes bench/results.csv and
the table in bench/README.md (``results``) and README.md (``results``).
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.tables import machine, replace_section  # noqa: E402

HERE = Path(__file__).resolve().parent
SERTOOL = [sys.executable, "-m", "sertool"]
FEATURES = {"egemaps": "egemaps_functionals", "compare": "compare_functionals", "mfcc": "lightsernet_mfcc",
            "mscnn": "mscnn_mfcc96", "logmel": "transformer_logmel", "lld17": "drn_lld17",
            "resnet": "resnet_transformer_map"}
CORPORA = {"ravdess": ("ravdess", ["--protocol", "speaker-kfold", "--folds", "4"]),
           "emodb": ("emodb-2s", ["--protocol", "loso"])}


@dataclass
class Row:
    corpus: str
    name: str
    model: str = ""
    features: str = ""
    options: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)  # fusion rows: names of other rows
    slow: bool = False


def rows() -> list[Row]:
    out = []
    for corpus in CORPORA:
        out += [
            Row(corpus, "svm linear, eGeMAPS, global", "svm", "egemaps", ["--norm", "global"]),
            Row(corpus, "svm linear, eGeMAPS, speaker", "svm", "egemaps", ["--norm", "speaker"]),
            Row(corpus, "svm linear, ComParE, global", "svm", "compare", ["--norm", "global"]),
            Row(corpus, "svm linear, ComParE, speaker", "svm", "compare", ["--norm", "speaker"]),
            Row(corpus, "svm rbf, ComParE, speaker", "svm", "compare", ["--norm", "speaker", "--set", "kernel=rbf"]),
            Row(corpus, "logreg, ComParE, speaker", "logreg", "compare", ["--norm", "speaker"]),
            Row(corpus, "mlp, ComParE, speaker", "mlp", "compare", ["--norm", "speaker"]),
            Row(corpus, "light_sernet, MFCC, global", "light_sernet", "mfcc", ["--norm", "global"],
                slow=corpus == "emodb"),
            Row(corpus, "light_sernet, MFCC, speaker (default)", "light_sernet", "mfcc", []),
            Row(corpus, "fusion: svm rbf ComParE + light_sernet (speaker)",
                members=["svm rbf, ComParE, speaker", "light_sernet, MFCC, speaker (default)"]),
            Row(corpus, "fusion: svm linear ComParE + svm rbf ComParE + light_sernet (speaker)",
                members=["svm linear, ComParE, speaker", "svm rbf, ComParE, speaker",
                         "light_sernet, MFCC, speaker (default)"]),
        ]
        out.append(Row(corpus, "light_sernet, MFCC, speaker, --precision bf16", "light_sernet", "mfcc",
                       ["--precision", "bf16"], slow=True))
        out.append(Row(corpus, "mscnn_spu, mscnn, default recipe", "mscnn_spu", "mscnn", [], slow=True))
        for m in ("cnn_transformer", "cnn_lstm_transformer", "ilt", "cat"):  # default: speaker normalisation
            out += [Row(corpus, f"{m}, logmel, global", m, "logmel", ["--norm", "global"], slow=True),
                    Row(corpus, f"{m}, logmel, speaker (default)", m, "logmel", [], slow=True)]
        out += [Row(corpus, "drn_mhsa, lld17, global", "drn_mhsa", "lld17", ["--norm", "global"], slow=True),
                Row(corpus, "drn_mhsa, lld17, speaker (default)", "drn_mhsa", "lld17", [], slow=True),
                Row(corpus, "parallel_resnet_transformer, resnet, default recipe", "parallel_resnet_transformer",
                    "resnet", [], slow=True)]
    return out


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text).strip("_").lower()


def sertool(*args, capture=False) -> str:
    result = subprocess.run([*SERTOOL, *map(str, args)], check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout.strip() if capture else ""


def pooled(run_dir: Path) -> dict[str, float]:
    values = {(r["fold"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run_dir / "metrics.csv"))}
    return {"UA": values["pooled", "UA"], "WA": values["pooled", "WA"], "F1": values["pooled", "macro_F1"],
            "UA_std": values["std", "UA"], "UA_ci": (values.get(("pooled", "UA_ci95_low"), float("nan")),
                                                     values.get(("pooled", "UA_ci95_high"), float("nan")))}


def run_row(row: Row, work: Path, data: Path, done: dict[str, Path]) -> dict:
    corpus_dir, protocol = CORPORA[row.corpus]
    base = work / row.corpus
    base.mkdir(parents=True, exist_ok=True)
    manifest = base / "manifest.csv"
    if not manifest.exists():
        sertool("prepare", "ravdess" if row.corpus == "ravdess" else "emodb", data / corpus_dir, "-o", manifest)
    run = base / "runs" / slug(row.name)
    start = time.monotonic()
    reused = (run / "metrics.csv").exists()
    if not reused:
        if row.members:
            sertool("fuse", *[done[(row.corpus, m)] for m in row.members], "-o", run)
        else:
            store = sertool("extract", manifest, "--features", FEATURES[row.features], "-o", base / "feats",
                            "--jobs", "2", "--no-progress", capture=True).splitlines()[-1]
            sertool("train", manifest, store, "--model", row.model, *protocol, *row.options, "-o", run)
        sertool("evaluate", run)
    done[(row.corpus, row.name)] = run
    return {"corpus": row.corpus, "row": row.name, **pooled(run),
            "seconds": 0.0 if reused else time.monotonic() - start, "run": str(run)}


def baseline(corpus: str, work: Path, first_run: Path) -> dict:
    manifest = work / corpus / "manifest.csv"
    store = sertool("extract", manifest, "--features", "mfcc", "-o", work / corpus / "feats", "--no-progress",
                    capture=True).splitlines()[-1]
    from bench.baseline import main as baseline_main

    start = time.monotonic()
    s = baseline_main(str(first_run), store)
    return {"corpus": corpus, "row": "baseline: logreg on utterance-mean MFCC (bench/baseline.py)", "UA": s["UA"],
            "WA": s["WA"], "F1": s["macro_F1"], "UA_std": float("nan"), "UA_ci": (float("nan"), float("nan")),
            "seconds": time.monotonic() - start,
            "run": str(first_run)}


def from_csv(record: dict) -> dict:
    """A results.csv row back to the types :func:`run_row` returns."""
    low, high = (float(v) for v in record["UA_ci"].strip("()").split(","))
    return {**record, **{k: float(record[k]) for k in ("UA", "WA", "F1", "UA_std", "seconds")}, "UA_ci": (low, high)}


def ordered(fresh: dict, earlier: dict) -> list[dict]:
    """Every row measured now or before, in the order of :func:`rows`, baselines last per corpus."""
    names = [(r.corpus, r.name) for r in rows()]
    baselines = sorted(k for k in {*fresh, *earlier} if k[1].startswith("baseline"))
    out = []
    for corpus in CORPORA:
        for key in [k for k in names if k[0] == corpus] + [k for k in baselines if k[0] == corpus]:
            if key in fresh:
                out.append(fresh[key])
            elif key in earlier:
                out.append(from_csv(earlier[key]))
    return out


#: Margin over the baseline row that every model family should reach (issue 11's floor), in UA.
FLOOR = 0.10


def _epoch_seconds() -> dict[str, float]:
    """Model -> seconds per RAVDESS epoch from bench/README.md's models table (upper bounds: measured under load)."""
    text = (HERE / "README.md").read_text()
    if "<!-- models-table:start -->" not in text:
        return {}
    block = text.split("<!-- models-table:start -->")[1].split("<!-- models-table:end -->")[0]
    out = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) > 3 and cells[3].replace(".", "").isdigit():
            out[cells[0]] = float(cells[3])
    return out


def not_run_rows(results: list[dict]) -> list[str]:
    """One line per slow row without a measurement, with what it would cost (estimated from measured numbers)."""
    from sertool.models import recipe

    have = {(r["corpus"], r["row"]) for r in results}
    seconds = {(r["corpus"], r["row"]): r["seconds"] for r in results}
    ls = "light_sernet, MFCC, speaker (default)"
    networks = {r.name for r in rows() if r.model and r.model not in ("svm", "logreg", "mlp")}
    ratios = [seconds["emodb", name] / seconds["ravdess", name] for name in networks
              if seconds.get(("emodb", name)) and seconds.get(("ravdess", name))]
    ratio = float(np.median(ratios)) if ratios else 0.0  # EMO-DB / RAVDESS train + evaluate time of network rows
    per_epoch = _epoch_seconds()
    # the models table was measured under load: scale it by LIGHT-SERNET's measured / table-predicted run time
    predicted = per_epoch.get("light_sernet", 0) * recipe("light_sernet").get("epochs", 30) * 4
    scale = seconds.get(("ravdess", ls), 0) / predicted if predicted else 1.0
    lines = []
    for row in rows():
        if not row.slow or (row.corpus, row.name) in have:
            continue
        epochs = recipe(row.model).get("epochs", 30)
        if row.corpus == "ravdess" and row.model in per_epoch:
            cost = f"about {per_epoch[row.model] * epochs * 4 * scale / 3600:.1f} h ({per_epoch[row.model]:.0f} " \
                   f"s/epoch of the models table x {epochs} epochs x 4 folds x {scale:.2f}, LIGHT-SERNET's " \
                   "measured / table time)"
        elif row.corpus == "emodb" and (row.model and ("ravdess", row.name) in seconds and ratio):
            cost = f"about {seconds['ravdess', row.name] * ratio / 3600:.1f} h (its RAVDESS time x {ratio:.2f}, " \
                   f"the median EMO-DB/RAVDESS time ratio of the {len(ratios)} network rows run on both)"
        else:
            cost = "no time estimate"
        lines.append(f"- {row.corpus}: {row.name}: not run in this measurement; {cost} on these 2 cores.")
    return lines


def table(results: list[dict]) -> str:
    lines = [f"Measured {time.strftime('%Y-%m-%d')} on {machine()} by `python bench/results.py`.", "",
             "| corpus | model, features, normalisation | UA | UA 95 % CI | WA | macro-F1 | UA std over folds | "
             "UA - baseline | seconds |",
             "|---|---|---|---|---|---|---|---|---|"]
    baseline = {r["corpus"]: r["UA"] for r in results if r["row"].startswith("baseline")}
    below = []
    for r in results:
        std = "" if r["UA_std"] != r["UA_std"] else f"{r['UA_std']:.3f}"
        lo, hi = r["UA_ci"]
        ci = "" if lo != lo else f"{lo:.3f}-{hi:.3f}"
        seconds = "reused" if not r["seconds"] else f"{r['seconds']:.0f}"
        margin = "" if r["row"].startswith("baseline") or r["corpus"] not in baseline else \
            f"{r['UA'] - baseline[r['corpus']]:+.3f}"
        if margin and r["UA"] - baseline[r["corpus"]] < FLOOR:
            below.append(f"- {r['corpus']}: {r['row']}: {margin} over the baseline, under the +{FLOOR:.2f} floor.")
        lines.append(f"| {r['corpus']} | {r['row']} | {r['UA']:.3f} | {ci} | {r['WA']:.3f} | {r['F1']:.3f} | {std} | "
                     f"{margin} | {seconds} |")
    if below:
        lines += ["", "Rows under the baseline + 0.10 floor:", "", *below]
    missing = not_run_rows(results)
    if missing:
        lines += ["", "Rows not measured:", "", *missing]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parents[1] / "shared" / "data"))
    parser.add_argument("--work", default="results-work")
    parser.add_argument("--rows", choices=["quick", "all"], default="quick")
    parser.add_argument("--only", default=None, help="Run only rows whose name contains this (and their members).")
    parser.add_argument("--corpus", choices=sorted(CORPORA), default=None)
    parser.add_argument("--no-readme", action="store_true", help="Update bench/results.csv only, not the tables.")
    parser.add_argument("--measured-only", action="store_true",
                        help="Only rows whose run is finished and evaluated in --work (train nothing).")
    args = parser.parse_args(argv)
    data, work = Path(args.data), Path(args.work)
    chosen = [r for r in rows() if (args.rows == "all" or not r.slow) and (not args.corpus or r.corpus == args.corpus)]
    if args.only:
        keep = {(r.corpus, r.name) for r in chosen if args.only in r.name}
        keep |= {(r.corpus, m) for r in chosen if (r.corpus, r.name) in keep for m in r.members}
        chosen = [r for r in chosen if (r.corpus, r.name) in keep]
    if args.measured_only:
        measured = lambda r: (work / r.corpus / "runs" / slug(r.name) / "metrics.csv").exists()  # noqa: E731
        chosen = [r for r in chosen if measured(r) and all(measured(m) for m in chosen if m.name in r.members)]
    earlier = {}
    if (HERE / "results.csv").exists():  # rows not run now keep their last measurement
        with open(HERE / "results.csv", newline="") as fh:
            earlier = {(r["corpus"], r["row"]): r for r in csv.DictReader(fh)}
    fresh, done = {}, {}
    for corpus in CORPORA:
        corpus_rows = [r for r in chosen if r.corpus == corpus]
        if not corpus_rows or not (data / CORPORA[corpus][0]).is_dir():
            continue
        for row in corpus_rows:
            print(f"== {corpus}: {row.name}", flush=True)
            result = run_row(row, work, data, done)
            if not result["seconds"] and (corpus, row.name) in earlier:  # a reused run keeps its seconds
                result["seconds"] = float(earlier[corpus, row.name]["seconds"])
            fresh[corpus, row.name] = result
            print(f"   UA {result['UA']:.3f} WA {result['WA']:.3f}", flush=True)
        first = next(r for r in rows() if r.corpus == corpus)
        if (work / corpus / "runs" / slug(first.name) / "metrics.csv").exists():
            result = baseline(corpus, work, work / corpus / "runs" / slug(first.name))
            fresh[corpus, result["row"]] = result
    results = ordered(fresh, earlier)
    with open(HERE / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["corpus", "row", "UA", "UA_ci", "WA", "F1", "UA_std", "seconds", "run"])
        w.writeheader()
        w.writerows(results)
    if args.no_readme:
        return
    text = table(results)
    print(text)
    replace_section(HERE / "README.md", "results", text)
    replace_section(HERE.parent / "README.md", "results", text)


if __name__ == "__main__":
    main()
