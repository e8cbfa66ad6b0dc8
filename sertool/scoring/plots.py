"""Pictures of evaluated runs: confusion matrices (pooled and per fold), training curves and a reliability
diagram, as PNG files.

matplotlib is heavy (about 0.3 s to import): every function imports it when it draws, never at module load.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from sertool.io.atomic import atomic_path


def _draw_confusion(fig, ax, counts: np.ndarray, labels: list[str], title: str) -> None:
    """Row-normalised ``counts`` (C, C) on ``ax``: shares in colour, counts in the cells, a colour bar."""
    with np.errstate(invalid="ignore"):
        normalised = np.nan_to_num(counts / counts.sum(axis=1, keepdims=True))
    image = ax.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{normalised[i, j]:.2f}\n({counts[i, j]})", ha="center", va="center", fontsize=7,
                    color="white" if normalised[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046, label="share of the true class")


def plot_confusion(counts: np.ndarray, labels: list[str], path: Path, *, title: str = "") -> None:
    """Row-normalised confusion matrix as a PNG, with counts in the cells."""
    from matplotlib.figure import Figure  # matplotlib: heavy (~0.5 s); no pyplot: the caller's backend stays

    size = 1.0 + 0.75 * len(labels)
    fig = Figure(figsize=(size + 1.5, size))
    _draw_confusion(fig, fig.add_subplot(), counts, labels, title)
    fig.tight_layout()
    _save_figure(fig, path, dpi=120)


def plot_fold_confusions(per_fold: dict, labels: list[str], path: Path, *, title: str = "") -> bool:
    """One confusion matrix per fold (the entries of ``per_fold`` other than pooled, mean, std) in a grid, as a PNG.

    Returns False (and writes nothing) when there is at most one fold.
    """
    from matplotlib.figure import Figure  # matplotlib: heavy (~0.5 s), loaded only when a plot is drawn

    folds = [k for k in per_fold if k not in ("pooled", "mean", "std") and "confusion" in per_fold[k]]
    if len(folds) < 2:
        return False
    columns = min(2 if len(labels) > 5 else 3, len(folds))  # cells with two lines of text stay legible
    rows = -(-len(folds) // columns)
    size = 1.0 + 0.75 * len(labels)
    fig = Figure(figsize=(columns * (size + 1.5), rows * size + 0.6))
    for k, fold in enumerate(folds):
        s = per_fold[fold]
        _draw_confusion(fig, fig.add_subplot(rows, columns, k + 1), s["confusion"], labels,
                        f"fold {fold}: UA {s['UA']:.3f}, WA {s['WA']:.3f}")
    fig.suptitle(f"{title}: confusion per fold (test speakers of each fold)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    _save_figure(fig, path, dpi=100)
    return True


def plot_reliability(table: dict, path: Path, *, title: str = "") -> None:
    """Reliability diagram as a PNG: accuracy per confidence bin against the diagonal, bin counts below.

    Parameters
    ----------
    table : dict
        :func:`sertool.metrics.reliability_bins`: ``edges`` (B + 1,), ``count``, ``confidence`` and
        ``accuracy`` (B,) each.
    path : Path
        The PNG written.
    title : str
        Above the diagram.
    """
    from matplotlib.figure import Figure  # matplotlib: heavy (~0.5 s), loaded only when a plot is drawn

    edges, count = np.asarray(table["edges"]), np.asarray(table["count"])
    width, filled = np.diff(edges), count > 0
    fig = Figure(figsize=(5.2, 6.0))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
    top.bar(edges[:-1][filled], np.asarray(table["accuracy"])[filled], width=width[filled], align="edge",
            color="tab:blue", edgecolor="black", linewidth=0.6, label="accuracy in the bin")
    top.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    top.plot(np.asarray(table["confidence"])[filled], np.asarray(table["accuracy"])[filled], "o", color="tab:red",
             markersize=4, label="(mean confidence, accuracy)")
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.grid(alpha=0.3)
    top.legend(fontsize=7, loc="upper left")
    top.set_title(title, fontsize=9)
    bottom.bar(edges[:-1], count, width=width, align="edge", color="tab:grey", edgecolor="black", linewidth=0.6)
    bottom.set_xlabel("confidence (largest class probability)")
    bottom.set_ylabel("utterances")
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    _save_figure(fig, path, dpi=110)


def _save_figure(fig, path: Path, *, dpi: int) -> None:
    """Write ``fig`` as PNG through a temporary file, so a reader never sees half a picture."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


def plot_training_curves(fold_dirs: list[Path], path: Path, *, title: str = "") -> bool:
    """Train loss, validation loss and validation UA per epoch, one line per fold, as a PNG.

    Returns False (and writes nothing) when no fold has an epoch log (classic models, fused runs).
    """
    logs = {}
    for d in fold_dirs:
        log = d / "train_log.csv"
        if log.exists():
            with open(log, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if "epoch" in r]
            if rows:
                logs[d.name] = rows
    if not logs:
        return False
    from matplotlib.figure import Figure  # matplotlib: heavy (~0.5 s), loaded only when a plot is drawn

    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    score = "valid_CCC" if any("valid_CCC" in rows[0] for rows in logs.values()) else "valid_UA"  # regression: CCC
    for name, rows in logs.items():
        epochs = [int(r["epoch"]) for r in rows]
        for ax, key in zip(axes, ("train_loss", "valid_loss", score)):
            ax.plot(epochs, [float(r[key]) for r in rows if key in r], label=name, linewidth=1.2)
    for ax, label in zip(axes, ("training loss", "validation loss", f"validation {score[6:]}")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=8)
    fig.suptitle(f"{title}: training curves (validation = speakers held out from each fold's training set)")
    fig.tight_layout()
    _save_figure(fig, path, dpi=110)
    return True


def plot_scatter(true: np.ndarray, pred: np.ndarray, folds: np.ndarray, path: Path, *, title: str = "",
                 what: str = "value") -> None:
    """Predicted against true values as a PNG: one colour per fold, and the identity line (a perfect model).

    Parameters
    ----------
    true, pred
        ``(N,)`` true and predicted values of one regression target.
    folds
        ``(N,)`` the fold (name) that scored each item.
    path
        The PNG.
    title, what
        The figure's title, and the target's name on the axes.
    """
    from matplotlib.figure import Figure  # matplotlib: heavy (~0.5 s), loaded only when a plot is drawn

    fig = Figure(figsize=(5.6, 5.2))
    ax = fig.subplots()
    for fold in sorted(set(folds.tolist()), key=lambda f: (len(f), f)):
        pick = folds == fold
        ax.scatter(true[pick], pred[pick], s=14, alpha=0.7, label=f"fold {fold}")
    low = float(min(true.min(), pred.min())) if len(true) else 0.0
    high = float(max(true.max(), pred.max())) if len(true) else 1.0
    ax.plot([low, high], [low, high], color="black", linewidth=1, linestyle="--", label="predicted = true")
    ax.set_xlabel(f"true {what}")
    ax.set_ylabel(f"predicted {what}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    _save_figure(fig, path, dpi=110)
