"""The sections of a run in ``sertool report`` (:mod:`sertool.scoring.html_report`), each read from the run folder.

Data (manifests, corpora, speakers, label counts), protocol (each fold's speakers per role and what its
validation speakers chose: the epoch or C, and the calibration temperature), metrics (``metrics.csv``:
any metric it holds, pooled with intervals, mean and std, per fold), per-class scores, evaluate's
pictures, cross-corpus scores, every other PNG of the folder, and the flags of predictions CSVs. Every
string read from a file goes through :func:`sertool.io.webpage.esc` or :func:`sertool.io.webpage.table`.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from sertool.errors import SertoolError
from sertool.io.webpage import Page, esc, table
from sertool.training.runs import LOG_FILE, SPLIT_FILE, fold_index, read_split_rows, read_train_log

#: Pictures ``sertool evaluate`` draws, in the order the page shows them, with their captions.
EVALUATE_FIGURES = {
    "confusion.png": "Pooled confusion matrix: rows are the true classes (shares of each row; counts in the cells).",
    "reliability.png": "Reliability diagram: accuracy per confidence bin against the diagonal of perfect "
                       "calibration; utterances per bin below.",
    "training_curves.png": "Training curves per fold; validation = the speakers held out of each fold's training set.",
    "confusion_folds.png": "Confusion matrix of each fold (its test speakers).",
}
#: Prefixes of per-class metrics in metrics.csv.
PER_CLASS = ("precision", "recall", "f1", "support")
#: Fold names of metrics.csv that are summaries, not folds.
SUMMARIES = ("pooled", "mean", "std")


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if value == value else "n/a"


def read_metrics(path: Path) -> dict[str, dict[str, float]]:
    """``metrics.csv`` as fold -> metric -> value, in the file's order.

    Raises
    ------
    SertoolError
        A file without the fold, metric and value columns, or a value that is not a number.
    """
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not {"fold", "metric", "value"} <= set(reader.fieldnames or ()):
                raise SertoolError(f"{path}: not evaluate's metrics.csv (columns fold, metric, value); "
                                   f"run sertool evaluate {path.parent} again")
            metrics: dict[str, dict[str, float]] = {}
            for line, row in enumerate(reader, start=2):
                metrics.setdefault(row["fold"], {})[row["metric"]] = _value(row["value"], path, line)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise SertoolError(f"{path}: unreadable ({exc}); run sertool evaluate {path.parent} again") from None
    return metrics


def _value(text: str, path: Path, line: int) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise SertoolError(f"{path} line {line}: value {text!r} is not a number; run sertool evaluate "
                           f"{path.parent} again") from None


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def fold_dirs(run_dir: Path) -> list[Path]:
    """Fold folders (``fold-<i>``, stray names such as ``fold-old`` left out) with a split.csv, in fold order."""
    dirs = [d for d in run_dir.glob("fold-*") if fold_index(d) is not None and (d / SPLIT_FILE).is_file()]
    return sorted(dirs, key=fold_index)


def _fold_config(fold_dir: Path) -> dict:
    path = fold_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _member_fold_config(members: list[dict], fold_name: str) -> dict:
    """A fused run's fold: the first member's fold config (fusion needs the members' folds to be the same)."""
    return _fold_config(Path(str(members[0].get("run", ""))) / fold_name) if members else {}


def _fusion_choice(members: list[dict]) -> str:
    return f"fusion of {', '.join(str(m.get('model', '?')) for m in members)} (each member chose its own)"


def data_section(page: Page, run_dir: Path, info: dict, folds: list[Path]) -> None:
    """Manifests, corpora, speakers and label counts of the utterances the folds split."""
    page.add("<h3>Data</h3>")
    rows = {}
    for d in folds:
        for r in read_split_rows(d / SPLIT_FILE, run_dir):
            rows.setdefault(r["id"], (r.get("speaker", ""), r.get("label", "")))
    manifests = info.get("manifests") or ([info["manifest"]] if info.get("manifest") else [])
    members = info.get("members") or []  # a fused run: each member has its own store and normalisation
    per_member = ", ".join(f"{m.get('model', '?')}: {m.get('store', '?')}" for m in members)
    facts = [["model", info.get("model", "?")], ["manifest(s)", ", ".join(map(str, manifests)) or "?"],
             ["feature store", per_member or info.get("store", "?")],
             ["normalisation", "each member's own (see its run)" if members else info.get("norm", "?")],
             ["utterances in the folds", len(rows)], ["speakers", len({s for s, _ in rows.values()})]]
    if info.get("label_selection"):
        facts.append(["labels kept / renamed", json.dumps(info["label_selection"], sort_keys=True)])
    page.add(table(None, facts, numeric_from=9))
    by_label = Counter(label for _, label in rows.values())
    speakers = {label: len({s for s, lab in rows.values() if lab == label}) for label in by_label}
    page.add(table(["label", "utterances", "speakers"], [[k, by_label[k], speakers[k]] for k in sorted(by_label)]))
    _corpora(page, run_dir, info, rows)


def _corpora(page: Page, run_dir: Path, info: dict, rows: dict) -> None:
    """Utterances and speakers per corpus (the manifest's ``corpus`` column, joined on id)."""
    manifest = info.get("manifest")
    path = Path(manifest) if manifest else None
    if path is not None and not path.is_absolute():
        path = run_dir / path
    if path is None or not path.is_file():
        page.note(f"corpora: the run's manifest {manifest or '(none in run.json)'} is not readable here")
        return
    corpus = {r["id"]: r.get("corpus") or "?" for r in _read_csv(path) if r.get("id") in rows}
    counts = Counter(corpus.values())
    page.add(table(["corpus", "utterances", "speakers"],
                   [[c, counts[c], len({rows[i][0] for i, k in corpus.items() if k == c})] for c in sorted(counts)]))


def _selection(log: list[dict], config: dict) -> str:
    """What the fold's validation speakers chose: the epoch (networks) or C / alpha (classic models).

    Classifiers' logs hold ``valid_UA``, regression runs' ``valid_CCC`` (and ``valid_RMSE_standardised``,
    which breaks ties as the fit did).
    """
    if not log:
        return "no training log"
    score = "UA" if "valid_UA" in log[0] else "CCC"
    if "epoch" in log[0]:
        train = config.get("train_config", {})
        best = max(log, key=lambda r: float(r[f"valid_{score}"]))
        chosen = train.get("selection", "?")
        what = {"best": f"the best epoch ({best['epoch']})", "last": f"the last epoch ({log[-1]['epoch']})",
                "average": f"the mean weights of the last {train.get('average_last', '?')} epochs"}.get(chosen, chosen)
        return (f"{len(log)} epochs; best validation {score} {float(best[f'valid_{score}']):.3f} at epoch "
                f"{best['epoch']}; checkpoint.pt = {what}")
    model, field = config.get("model_config", {}), next(iter(log[0]))  # C or alpha: the log's first column
    if float(model.get(field, 0) or 0) > 0:
        return f"{field} fixed at {float(model[field]):g}"
    # as the fit chose: the highest validation score, ties to the lower RMSE (regression), then the grid's order
    row = max(log, key=lambda r: (float(r[f"valid_{score}"]), -float(r.get("valid_RMSE_standardised", 0))))
    grid = ", ".join(r[field] for r in log)
    refit = "; refit on train + valid" if model.get("refit") else ""
    return f"{field} = {row[field]} (validation {score} {float(row[f'valid_{score}']):.3f}) of {grid}{refit}"


def _calibration(config: dict) -> str:
    c = config.get("calibration") or {}
    if not c:
        return ""
    text = f"T = {c.get('temperature', float('nan')):.3g}"
    if "valid_ece_before" in c:
        text += f" (validation ECE {c['valid_ece_before']:.3f} -> {c.get('valid_ece_after', float('nan')):.3f})"
    return text


def _speakers(names: list[str], shown: int = 6) -> str:
    return ", ".join(names[:shown]) + (f" ... ({len(names)})" if len(names) > shown else "")


def protocol_section(page: Page, info: dict, folds: list[Path]) -> None:
    """The protocol and, per fold, its speakers and what its validation speakers chose."""
    page.add("<h3>Protocol</h3>")
    page.add(f"<p>Protocol <code>{esc(info.get('protocol', '?'))}</code>, {esc(info.get('folds', len(folds)))} "
             "fold(s). Each fold's model learns from its training speakers; its validation speakers (never "
             "trained on) choose the epoch (networks) or C (classic models) and fit the softmax temperature that "
             "calibrates the probabilities; <code>sertool evaluate</code> scores its test speakers.</p>")
    rows = []
    members = info.get("members") or []
    for d in folds:
        config = _fold_config(d) or _member_fold_config(members, d.name)
        speakers = config.get("speakers", {})
        if members:  # a fused run: its members chose on validation; the fused checkpoint holds the weights
            config = {**config, "calibration": {}}
        rows.append([d.name, config.get("fold_name", ""), _speakers(speakers.get("train", [])),
                     _speakers(speakers.get("valid", [])), _speakers(speakers.get("test", [])),
                     " / ".join(str(config.get(k, "?")) for k in ("train", "valid", "test")),
                     _fusion_choice(members) if members else _selection(read_train_log(d / LOG_FILE), config),
                     _calibration(config)])
    page.add(table(["fold", "name", "train speakers", "validation speakers", "test speakers",
                    "utterances train / valid / test", "chosen on validation", "calibration"], rows, numeric_from=9))
    first = _fold_config(folds[0]) if folds else {}
    for key, title in (("model_config", "model settings"), ("train_config", "training settings")):
        if first.get(key):
            page.add(f"<details><summary>{esc(title)} (fold 0's config.json)</summary>"
                     + table(["setting", "value"], [[k, json.dumps(v)] for k, v in sorted(first[key].items())])
                     + "</details>")


def summary_columns(metrics: dict[str, dict[str, float]]) -> list[str]:
    """Metric names of the summary table: every metric but per-class scores and interval bounds, in file order."""
    names: list[str] = []
    for fold in metrics.values():
        for name in fold:
            per_class = name.split("_", 1)[0] in PER_CLASS and "_" in name
            if not per_class and "_ci95_" not in name and name not in names:
                names.append(name)
    return names


def _counts(metrics: dict[str, dict[str, float]], names: list[str]) -> set[str]:
    """Metrics that are counts (whole numbers in every fold, one at least 2), shown without decimals."""
    return {n for n in names if all(float(m[n]).is_integer() for m in metrics.values() if n in m)
            and any(m.get(n, 0) >= 2 for m in metrics.values())}


def _pooled_cell(pooled: dict[str, float], name: str, digits: int) -> str:
    """A pooled score with its 95 % interval when metrics.csv has one."""
    low, high = pooled.get(f"{name}_ci95_low"), pooled.get(f"{name}_ci95_high")
    interval = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
    return _fmt(pooled.get(name), digits) + interval


def _metrics_rows(metrics: dict[str, dict[str, float]], names: list[str]) -> list[list[str]]:
    """pooled (with 95 % intervals), mean +- std over folds, then every fold."""
    pooled, mean, std = (metrics.get(k, {}) for k in SUMMARIES)
    digits = {n: 0 if n in _counts(metrics, names) else 3 for n in names}
    rows = [["pooled"] + [_pooled_cell(pooled, n, digits[n]) for n in names]] if pooled else []
    if mean:
        rows.append(["mean ± std over folds"] + [f"{mean[n]:.3f} ± {std.get(n, float('nan')):.3f}" if n in mean
                                                 else "" for n in names])
    rows += [[f"fold {f}"] + [_fmt(m.get(n), digits[n]) for n in names]
             for f, m in metrics.items() if f not in SUMMARIES]
    return rows


def _classes(metrics: dict[str, dict[str, float]]) -> list[str]:
    return [n[len("recall_"):] for n in metrics.get("pooled", {}) if n.startswith("recall_")]


def _per_class_rows(metrics: dict[str, dict[str, float]]) -> list[list[str]]:
    pooled, folds = metrics.get("pooled", {}), [m for f, m in metrics.items() if f not in SUMMARIES]
    rows = []
    for c in _classes(metrics):
        recalls = [m[f"recall_{c}"] for m in folds if f"recall_{c}" in m]
        spread = f"{min(recalls):.3f} - {max(recalls):.3f}" if recalls else ""
        rows.append([c, *(_fmt(pooled.get(f"{k}_{c}")) for k in ("precision", "recall", "f1")),
                     f"{pooled.get(f'support_{c}', 0):.0f}", spread])
    return rows


def metrics_section(page: Page, eval_dir: Path) -> dict:
    """The metrics table, per-class scores and evaluate's pictures; returns the metrics read."""
    metrics = read_metrics(eval_dir / "metrics.csv")
    names = summary_columns(metrics)
    page.add("<h3>Metrics</h3>", "<p>Pooled: every test utterance of every fold together, with its 95 % bootstrap "
             "interval (utterances resampled); mean ± std: over the folds (population std); then each fold on its "
             "test speakers. WA = accuracy, UA = mean per-class recall, ECE = expected calibration error (10 "
             "confidence bins).</p>", table(["", *names], _metrics_rows(metrics, names)))
    if _classes(metrics):
        page.add("<h3>Per-class scores (pooled)</h3>",
                 table(["class", "precision", "recall", "F1", "support", "recall over folds (min - max)"],
                       _per_class_rows(metrics)))
    page.add("<h3>Figures</h3>")
    pooled = metrics.get("pooled", {})
    for name, caption in EVALUATE_FIGURES.items():
        if (eval_dir / name).is_file():
            if name == "reliability.png" and "ECE" in pooled:
                caption += f" Pooled ECE {pooled['ECE']:.3f}" + (f", Brier {pooled['Brier']:.3f}."
                                                                  if "Brier" in pooled else ".")
            page.figure(eval_dir / name, caption)
    return metrics


def cross_section(page: Page, run_dir: Path) -> None:
    """``evaluate --on`` results (``cross-*`` folders) and the ``crosscorpus`` matrix the run belongs to."""
    cross = sorted(d for d in run_dir.glob("cross-*") if (d / "metrics.csv").is_file())
    matrix_dir = next((d for d in (run_dir, run_dir.parent.parent) if (d / "matrix.csv").is_file()), None)
    if not cross and matrix_dir is None:
        return
    page.add("<h3>Cross-corpus</h3>")
    if cross:
        rows = [_cross_row(d.name, read_metrics(d / "metrics.csv").get("pooled", {})) for d in cross]
        page.add("<p>Every fold's model on another corpus (<code>sertool evaluate RUN --on</code>), over the classes "
                 "both share (regression runs: CCC, the mean over the targets; Pearson's r in place of WA).</p>",
                 table(["scored on", "UA or CCC [95 % CI]", "WA or Pearson", "ECE", "utterances"], rows))
        for d in cross:
            for png in sorted(d.glob("*.png")):
                page.figure(png, f"{d.name}: {EVALUATE_FIGURES.get(png.name, png.name)}")
    if matrix_dir is not None:
        rows = _read_csv(matrix_dir / "matrix.csv")
        page.add(f"<p>The <code>sertool crosscorpus</code> matrix of {esc(matrix_dir)}: train corpus (rows) x test "
                 "corpus; the diagonal is speaker cross-validation within the corpus.</p>")
        if rows:
            page.add(table(list(rows[0]), [list(r.values()) for r in rows], numeric_from=2))
        if (matrix_dir / "matrix.png").is_file():
            score = list(rows[0])[2] if rows else "UA"
            page.figure(matrix_dir / "matrix.png", f"{score} per (train, test) corpus pair, with 95 % intervals.")


def _cross_row(name: str, pooled: dict) -> list[str]:
    """A row of the ``evaluate --on`` table: a classifier's UA, WA, ECE, or a regression run's CCC and Pearson."""
    key = "UA" if "UA" in pooled else "CCC"
    targets = [k[4:] for k in pooled if k.startswith("CCC_") and not k.endswith(("_low", "_high"))]
    low = f"{key}_ci95_low" if key == "UA" else (f"CCC_{targets[0]}_ci95_low" if len(targets) == 1 else "")
    high = low[:-3] + "high"
    ci = f" [{pooled[low]:.3f}, {pooled[high]:.3f}]" if low in pooled and high in pooled else ""
    pearson = [pooled[f"Pearson_{t}"] for t in targets if f"Pearson_{t}" in pooled]
    second = pooled.get("WA") if key == "UA" else (sum(pearson) / len(pearson) if pearson else None)
    support = sum(v for k, v in pooled.items() if k.startswith("support_"))
    count = f"{support:.0f}" if support else "-"
    return [name, _fmt(pooled.get(key)) + ci, _fmt(second), _fmt(pooled.get("ECE")), count]


def other_figures(page: Page, run_dir: Path) -> None:
    """Every PNG of the run folder that no section shows (regression scatter plots, say)."""
    others = sorted(p for p in run_dir.glob("*.png") if p.name not in EVALUATE_FIGURES and p.name != "matrix.png")
    if others:
        page.add("<h3>Other figures</h3>")
        for png in others:
            page.figure(png, "")


def flag_summary(path: Path) -> dict:
    """Rows, failed rows, flagged rows and each flag's count of a predictions CSV with a ``flags`` column.

    Raises
    ------
    SertoolError
        A CSV without a ``flags`` column (not written by ``sertool predict``).
    """
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if "flags" not in (reader.fieldnames or ()):
            raise SertoolError(f"{path}: no flags column; give a CSV written by `sertool predict` (or "
                               "`sertool stream`), which checks the input audio")
        counts, total, failed, flagged, files = Counter(), 0, 0, 0, set()
        for row in reader:
            total += 1
            files.add(row.get("path"))
            if row.get("error"):
                failed += 1
            names = [n for n in (row.get("flags") or "").split(";") if n]
            flagged += bool(names)
            counts.update(names)
    return {"rows": total, "files": len(files), "failed": failed, "flagged": flagged, "counts": counts,
            "segments": "start" in (reader.fieldnames or ())}


def flags_section(page: Page, paths: list[Path]) -> None:
    page.add("<h3>Input checks (flags)</h3>", "<p>Flags name reasons to distrust a score (quiet, clipped, "
             "narrowband, no_speech, short, long, cancelling audio); they never stop scoring.</p>")
    for path in paths:
        s = flag_summary(path)
        unit = "windows" if s["segments"] else "rows"
        share = lambda n: f"{n} ({100 * n / s['rows']:.1f} %)" if s["rows"] else "0"  # noqa: E731
        page.add(f"<p><code>{esc(path)}</code>: {s['rows']} {unit} of {s['files']} file(s); "
                 f"{esc(share(s['flagged']))} flagged, {s['failed']} failed.</p>")
        if s["counts"]:
            page.add(table(["flag", unit], [[name, share(n)] for name, n in s["counts"].most_common()]))


def run_predictions(run_dir: Path) -> list[Path]:
    """CSVs of the run folder with flags that ``predict`` set (evaluate's predictions.csv has none: stored features)."""
    found = []
    for path in sorted(run_dir.glob("*.csv")):
        if path.name in ("metrics.csv", "confusion.csv", "matrix.csv"):
            continue
        try:
            s = flag_summary(path)
        except (SertoolError, UnicodeDecodeError, csv.Error):
            continue
        if s["flagged"] or path.name != "predictions.csv":
            found.append(path)
    return found
