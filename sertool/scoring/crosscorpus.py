"""``crosscorpus``: a training-corpus x test-corpus matrix of UA, with intervals, from runs it trains and resumes.

Over the corpora of the manifests given (their ``corpus`` column; a manifest may hold one corpus or more):

- cell (train i, test j), i != j: one model trained on every speaker of corpus i (protocol ``all``: the
  validation speakers that choose the epoch or C come from i), scored on every utterance of corpus j;
- cell (i, i): speaker-independent cross-validation within corpus i (``speaker-kfold``), pooled over folds;
- row ``all others``: for each column j, the ``loco`` protocol's fold for j (a model trained on every other
  corpus together, validation speakers from each of them).

Every cell is scored over the classes its training and test sets share (the classes of the model's
training rows, read from its ``split.csv``, and of the test rows), the model's probabilities renormalised
over them (:func:`sertool.scoring.cross_corpus.over_shared_classes`); a cell with fewer than two shared
classes has no UA (NaN). Per cell: UA with its 95 % bootstrap interval (utterances resampled),
N utterances, the number of shared classes, ECE and WA. Writes into ``OUT``:

- ``data/<corpus>.csv``: each corpus's rows, speakers named ``<corpus>:<speaker>`` (what every run reads);
- ``runs/train-<corpus>/``, ``runs/cv-<corpus>/``, ``runs/loco/``: ordinary run folders (``sertool evaluate``
  reads them); a rerun resumes them and retrains no finished fold;
- ``matrix.csv`` (:data:`COLUMNS`), ``matrix.md`` (UA [low, high] per cell) and ``matrix.png`` (a heatmap).
"""

from __future__ import annotations

import csv
import re
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from sertool.corpora.combine import combine_manifests, namespaced
from sertool.corpora.labels import apply_labels
from sertool.errors import ConfigError, SertoolError
from sertool.io.atomic import atomic_path, atomic_write
from sertool.io.manifest import Utterance, write_manifest
from sertool.metrics import bootstrap_ci
from sertool.scoring.cross_corpus import over_shared_classes
from sertool.scoring.crosscorpus_regression import COLUMNS as REGRESSION_COLUMNS
from sertool.scoring.crosscorpus_regression import regression_cell, score_regression_cell
from sertool.scoring.evaluate import BOOTSTRAP_RESAMPLES, fold_scores, load_fold_checkpoint, score_ids
from sertool.training.runs import SPLIT_FILE, finished_folds, read_split, read_split_rows

#: The row of the leave-one-corpus-out models.
ALL_OTHERS = "all others"
#: The columns of ``matrix.csv``.
COLUMNS = ("train", "test", "UA", "ci_low", "ci_high", "n", "classes", "ECE", "WA", "run")

#: ``train(manifests, run_dir, protocol) -> fold results`` (each with ``skipped``): the caller's training call.
TrainCall = Callable[[list[Path], Path, str], list]


@dataclass(frozen=True)
class Cell:
    """One cell of the matrix (a row of ``matrix.csv``).

    Attributes
    ----------
    train, test
        Training corpus (or :data:`ALL_OTHERS`) and test corpus.
    UA, ci_low, ci_high
        Unweighted accuracy over the shared classes and its 95 % bootstrap interval (NaN: fewer than two).
    n, classes
        Utterances scored; classes shared by the training and test sets.
    ECE, WA
        Expected calibration error (10 bins) and accuracy, over the shared classes.
    run
        The run folder behind the cell, relative to ``OUT``.

    Regression runs (``--target``) fill ``UA`` with the mean CCC over the targets, ``classes`` with their
    number and ``WA`` with the mean Pearson's r (:mod:`sertool.scoring.crosscorpus_regression`).
    """

    train: str
    test: str
    UA: float
    ci_low: float
    ci_high: float
    n: int
    classes: int
    ECE: float
    WA: float
    run: str


@dataclass
class CrossCorpusResult:
    """The matrix (:func:`sertool.crosscorpus`).

    Attributes
    ----------
    cells : list of Cell
        Row by row: each corpus's row, then :data:`ALL_OTHERS`.
    corpora : list of str
        The corpora, sorted (the columns).
    out_dir : Path
        The folder holding ``matrix.csv``, ``matrix.md``, ``matrix.png``, ``data/`` and ``runs/``.
    trained, skipped : int
        Folds trained by this call, and folds found finished (not retrained).
    """

    cells: list[Cell]
    corpora: list[str]
    out_dir: Path
    trained: int
    skipped: int
    #: what the cells' ``UA`` holds: ``UA``, or ``CCC`` (the mean over the targets) for ``--target`` runs
    score_name: str = "UA"

    def cell(self, train: str, test: str) -> Cell:
        """The cell of training corpus ``train`` (or :data:`ALL_OTHERS`) and test corpus ``test``."""
        return next(c for c in self.cells if (c.train, c.test) == (train, test))


@dataclass(frozen=True)
class RunPlan:
    """A run the matrix needs: its folder name under ``OUT/runs``, manifests and protocol."""

    name: str
    manifests: tuple[Path, ...]
    protocol: str


def file_name(corpus: str) -> str:
    """``corpus`` as a file-name part (characters other than letters, digits, ``.``, ``_``, ``-`` become ``_``)."""
    return re.sub(r"[^\w.-]+", "_", corpus)


def split_corpora(manifests: Sequence, data_dir: Path) -> dict[str, Path]:
    """Write each corpus's rows of ``manifests`` to ``data_dir/<corpus>.csv``, speakers named per corpus.

    Parameters
    ----------
    manifests
        Manifest CSV paths (one corpus or more each).
    data_dir
        Folder of the per-corpus manifests (created).

    Returns
    -------
    dict
        Corpus -> its manifest, in sorted corpus order.

    Raises
    ------
    ManifestError
        A missing or malformed manifest, or an utterance id in two manifests.
    ConfigError
        Fewer than two corpora, or two whose names give the same file name.
    """
    paths = [Path(m) for m in manifests]
    rows = combine_manifests(paths).rows
    if len(paths) == 1:  # several manifests are namespaced by combine_manifests already
        rows = namespaced(rows, paths[0].stem)
    by_corpus: dict[str, list[Utterance]] = {}
    for u in rows:
        by_corpus.setdefault(u.corpus, []).append(u)
    if len(by_corpus) < 2:
        raise ConfigError(f"{', '.join(map(str, paths))}: one corpus ({', '.join(by_corpus)}); a cross-corpus "
                          "matrix needs two or more (give one manifest per corpus, or fill the corpus column)")
    names = {file_name(c) for c in by_corpus}
    if len(names) < len(by_corpus):
        raise ConfigError(f"corpora {', '.join(sorted(by_corpus))}: two names give the same file name; rename one "
                          "in the corpus column")
    data_dir.mkdir(parents=True, exist_ok=True)
    return {c: write_manifest(by_corpus[c], data_dir / f"{file_name(c)}.csv") for c in sorted(by_corpus)}


def plan_runs(data: dict[str, Path]) -> list[RunPlan]:
    """The runs behind the matrix: per corpus ``train-<c>`` (protocol all) and ``cv-<c>``; then ``loco``."""
    plans = []
    for corpus, manifest in data.items():
        plans += [RunPlan(f"train-{file_name(corpus)}", (manifest,), "all"),
                  RunPlan(f"cv-{file_name(corpus)}", (manifest,), "speaker-kfold")]
    return plans + [RunPlan("loco", tuple(data.values()), "loco")]


def _train_all(plans: list[RunPlan], runs_dir: Path, train: TrainCall, log) -> tuple[int, int]:
    """Train (or resume) every planned run; (folds trained now, folds found finished)."""
    trained = skipped = 0
    for plan in plans:
        log(f"run {plan.name} ({plan.protocol}; {', '.join(p.stem for p in plan.manifests)})")
        results = train(list(plan.manifests), runs_dir / plan.name, plan.protocol)
        skipped += sum(bool(r.skipped) for r in results)
        trained += sum(not r.skipped for r in results)
    return trained, skipped


def cell_parts(runs_dir: Path, train: str, test: str, test_ids: list[str], corpus_of: dict[str, str]):
    """The (checkpoint, utterance ids) pairs a cell scores, and its run folder's name.

    Parameters
    ----------
    runs_dir
        ``OUT/runs``.
    train, test
        The cell's training corpus (or :data:`ALL_OTHERS`) and test corpus.
    test_ids
        Every scored utterance of corpus ``test`` (off-diagonal cells score them all).
    corpus_of
        Utterance id -> corpus (finds the ``loco`` fold whose test set is corpus ``test``).

    Returns
    -------
    list of tuple
        ``(checkpoint path, ids)``: one pair, or one per fold of a cross-validated diagonal cell.
    str
        The run folder's name.

    Raises
    ------
    SertoolError
        The run has no finished fold for the cell.
    """
    if train == ALL_OTHERS:
        name = "loco"
        folds = [(d, read_split(d / "split.csv")["test"]) for d in complete_folds(runs_dir / name)]
        parts = [(d / "checkpoint.pt", ids) for d, ids in folds if ids and corpus_of.get(ids[0]) == test]
        if not parts:
            raise SertoolError(f"{runs_dir / name}: no finished fold tests {test}; rerun crosscorpus to train it")
        return parts, name
    if train == test:
        name = f"cv-{file_name(train)}"
        folds = complete_folds(runs_dir / name)
        return [(d / "checkpoint.pt", read_split(d / "split.csv")["test"]) for d in folds], name
    name = f"train-{file_name(train)}"
    return [(complete_folds(runs_dir / name)[0] / "checkpoint.pt", test_ids)], name


def complete_folds(run_dir: Path) -> list[Path]:
    """The fold folders of a run of the matrix, every fold finished; SertoolError naming the ones that are not.

    Raises
    ------
    SertoolError
        A fold without ``checkpoint.pt`` (or none at all), or a damaged run.json.
    """
    missing: list[str] = []
    finished, total = finished_folds(run_dir, allow_missing=True, log=missing.append)
    if len(finished) < total:
        raise SertoolError(f"{run_dir}: {total - len(finished)} of its {total} folds have no checkpoint.pt; rerun "
                           "the same `sertool crosscorpus` command: it resumes and trains them")
    return finished


def trained_classes(checkpoint) -> set[str]:
    """The labels of the training rows of the fold holding ``checkpoint`` (its ``split.csv``)."""
    return {row["label"] for row in read_split_rows(Path(checkpoint).parent / SPLIT_FILE) if row["role"] == "train"}


def score_cell(parts, rows: list[Utterance], store) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Pooled truth and probabilities of a cell over the classes its model(s) and test rows share.

    Parameters
    ----------
    parts
        ``(checkpoint path, utterance ids)`` pairs (:func:`cell_parts`); ids whose label is not shared are left out.
    rows
        Every row (labels selected), for the labels and for normalisation (speakers, corpora).
    store
        The feature store of all rows.

    Returns
    -------
    numpy.ndarray
        ``(N,)`` class indices into the shared classes.
    numpy.ndarray
        ``(N, S)`` probabilities renormalised over the S shared classes.
    list of str
        The classes of both the test rows and the model's training rows, in the model's order.

    Raises
    ------
    SertoolError
        Fold models with different classes, or a store without some rows.
    """
    by_id = {u.id: u for u in rows}
    loaded = [(load_fold_checkpoint(path, Path(path).parent.parent), ids) for path, ids in parts]
    model_labels = list(loaded[0][0].labels)
    if any(list(ckpt.labels) != model_labels for ckpt, _ in loaded):
        raise SertoolError(f"{parts[0][0]}: the fold models of this cell have different classes; retrain the run")
    present = {by_id[i].label for _, ids in loaded for i in ids}
    trained = set.union(*(trained_classes(path) for path, _ in parts))
    shared = [c for c in model_labels if c in present and c in trained]
    truths, probs = [np.zeros(0, np.int64)], [np.zeros((0, len(shared)), np.float32)]
    for ckpt, ids in loaded:
        kept = [i for i in ids if by_id[i].label in shared]
        if kept:
            scored = score_ids(ckpt, kept, utterances=rows, stores=[(store, None)])
            probs.append(over_shared_classes(scored, model_labels, shared))
            truths.append(np.array([shared.index(by_id[i].label) for i in kept]))
    return np.concatenate(truths), np.concatenate(probs), shared


def cell_scores(train: str, test: str, truth: np.ndarray, probs: np.ndarray, run: str) -> Cell:
    """The :class:`Cell` of ``truth`` (N,) against ``probs`` (N, S); UA, interval, ECE and WA NaN when S < 2."""
    classes = probs.shape[1]
    if classes < 2 or len(truth) == 0:
        return Cell(train, test, np.nan, np.nan, np.nan, len(truth), classes, np.nan, np.nan, run)
    s = fold_scores(truth, probs, classes)
    low, high = bootstrap_ci(truth, probs.argmax(1), classes, resamples=BOOTSTRAP_RESAMPLES)["UA"]
    return Cell(train, test, s["UA"], low, high, len(truth), classes, s["ECE"], s["WA"], run)


def selected_rows(data: dict[str, Path], label_set, label_map, log) -> list[Utterance]:
    """Every corpus's rows with the label selection applied (what the runs train and test on); drops logged."""
    rows = combine_manifests(list(data.values())).rows
    kept, dropped = apply_labels(rows, label_set, label_map)
    if dropped:
        log("labels outside the set left out: " + ", ".join(f"{k} {v}" for k, v in sorted(dropped.items())))
    return kept


def score_matrix(data: dict[str, Path], runs_dir: Path, store, *, rows: list[Utterance],
                 targets: list[str] | None = None, log=lambda m: None) -> list[Cell]:
    """Score every cell of the matrix from the finished runs in ``runs_dir``.

    Parameters
    ----------
    data
        Corpus -> its manifest (:func:`split_corpora`).
    runs_dir
        ``OUT/runs`` holding the runs of :func:`plan_runs`.
    store
        The feature store of every row.
    rows
        Every corpus's rows with the runs' label selection applied (:func:`selected_rows`).
    targets
        The target columns of regression runs (cells of CCC); None for classifiers.
    log
        Called with one line per cell.

    Returns
    -------
    list of Cell
        Row by row (each corpus, then :data:`ALL_OTHERS`), columns in corpus order.

    Raises
    ------
    SertoolError
        A run without the fold a cell needs, or a store without some rows.
    """
    corpus_of = {u.id: u.corpus for u in rows}
    originals = {c: [u.id for u in rows if u.corpus == c and not u.source_id] for c in data}
    cells = []
    for train in [*data, ALL_OTHERS]:
        for test in data:
            parts, run = cell_parts(runs_dir, train, test, originals[test], corpus_of)
            if targets:
                cell = regression_cell(Cell, train, test, *score_regression_cell(parts, rows, store, targets),
                                       f"runs/{run}")
                log(f"{train} -> {test}: CCC {cell.UA:.3f} [{cell.ci_low:.3f}, {cell.ci_high:.3f}], {cell.n} "
                    f"utterances, Pearson {cell.WA:.3f}")
            else:
                truth, probs, shared = score_cell(parts, rows, store)
                cell = cell_scores(train, test, truth, probs, f"runs/{run}")
                log(f"{train} -> {test}: UA {cell.UA:.3f} [{cell.ci_low:.3f}, {cell.ci_high:.3f}], {cell.n} "
                    f"utterances, {cell.classes} shared classes ({', '.join(shared)})"
                    + (", fewer than 2: no UA" if cell.classes < 2 else ""))
            cells.append(cell)
    return cells


def write_csv(cells: list[Cell], path: Path, columns: tuple[str, ...] = COLUMNS) -> None:
    """``matrix.csv``: one row per cell, ``columns`` (:data:`COLUMNS`, or the regression names of the same
    fields), scores with 4 decimals, NaN as empty."""
    assert len(fields(Cell)) == len(columns)
    with atomic_write(path) as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for cell in cells:
            writer.writerow(["" if isinstance(v, float) and np.isnan(v) else f"{v:.4f}" if isinstance(v, float)
                             else v for v in astuple(cell)])


def markdown(cells: list[Cell], corpora: list[str], *, folds: int, score_name: str = "UA") -> str:
    """``matrix.md``: rows = training corpus (then :data:`ALL_OTHERS`), columns = test corpus, score [low, high]."""
    lines = ["| train \\ test | " + " | ".join(corpora) + " |", "|---" * (len(corpora) + 1) + "|"]
    for train in [*corpora, ALL_OTHERS]:
        row = {c.test: c for c in cells if c.train == train}
        texts = [f"{row[t].UA:.3f} [{row[t].ci_low:.3f}, {row[t].ci_high:.3f}]" if not np.isnan(row[t].UA)
                 else "n/a" for t in corpora]
        lines.append(f"| {'**' + train + '**' if train == ALL_OTHERS else train} | " + " | ".join(texts) + " |")
    what = ("CCC (the mean over the targets" if score_name == "CCC" else "UA (mean per-class recall")
    scope = ("Every manifest holds the target columns on the same scale (matrix.csv: n, targets, Pearson)."
             if score_name == "CCC" else "Scores are over the classes the training and test sets share, "
             "probabilities renormalised over them (matrix.csv: n, classes, ECE).")
    return "\n".join(lines + [
        "", f"{what}) with its 95 % bootstrap interval ({BOOTSTRAP_RESAMPLES} resamples of "
        f"utterances). Diagonal: {folds}-fold speaker-independent cross-validation within the corpus, pooled. "
        "Off the diagonal: a model trained on all of the row's corpus, scored on all of the column's. "
        f"{ALL_OTHERS}: trained on every other corpus (leave one corpus out). {scope}"])


def plot_matrix(cells: list[Cell], corpora: list[str], path: Path, *, title: str, score_name: str = "UA") -> None:
    """``matrix.png``: the score as a heatmap, it and its interval in each cell, :data:`ALL_OTHERS` set apart."""
    from matplotlib.figure import Figure  # matplotlib: heavy (~0.5 s); no pyplot: the caller's backend stays
    from matplotlib import colormaps  # with the Figure above: only when drawing
    from matplotlib.patches import Rectangle  # with the Figure above: only when drawing

    rows = [*corpora, ALL_OTHERS]
    values = np.full((len(rows), len(corpora)), np.nan)
    for cell in cells:
        values[rows.index(cell.train), corpora.index(cell.test)] = cell.UA
    fig = Figure(figsize=(2.0 + 1.5 * len(corpora), 1.4 + 0.75 * len(rows)))
    ax = fig.add_subplot()
    image = ax.imshow(np.ma.masked_invalid(values), vmin=0, vmax=1, aspect="auto",
                      cmap=colormaps["viridis"].with_extremes(bad="lightgrey"))  # grey: no UA (< 2 classes)
    for cell in cells:
        i, j = rows.index(cell.train), corpora.index(cell.test)
        text = "n/a" if np.isnan(cell.UA) else f"{cell.UA:.3f}\n[{cell.ci_low:.2f}, {cell.ci_high:.2f}]"
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if cell.UA <= 0.6 else "black")
        if cell.train == cell.test:  # the cross-validated cells
            ax.add_patch(Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False, edgecolor="red", linewidth=2,
                                   zorder=3))
    ax.axhline(len(corpora) - 0.5, color="white", linewidth=6)
    ax.set_xticks(range(len(corpora)), corpora, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("test corpus")
    ax.set_ylabel("training corpus")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.046,
                 label="CCC, mean over the targets" if score_name == "CCC" else "UA over the shared classes")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def build_matrix(manifests: Sequence, store, *, output, train: TrainCall, model: str, folds: int = 4,
                 label_set=None, label_map=None, targets: list[str] | None = None,
                 log: Callable[[str], None] = lambda m: None) -> CrossCorpusResult:
    """Train (or resume) the runs of the matrix, score every cell and write the outputs (module docstring).

    Parameters
    ----------
    manifests
        Labelled manifest CSVs (one corpus or more each).
    store
        A feature store holding every row (``sertool store merge`` joins per-corpus stores).
    output
        The folder ``OUT``.
    train
        :data:`TrainCall`: trains one run (the same settings for every run; ``folds`` for ``speaker-kfold``).
    model
        The model's name, for the picture's title.
    folds
        The diagonal's folds (as given to ``train``), for the notes.
    label_set, label_map
        The label selection ``train`` applies (the test rows get the same).
    targets
        The target columns of regression runs (``train`` trains them; cells hold CCC); None for classifiers.
    log
        Progress lines.

    Returns
    -------
    CrossCorpusResult

    Raises
    ------
    SertoolError
        Fewer than two corpora, bad manifests, or whatever ``train`` raises.
    """
    output = Path(output)
    data = split_corpora(manifests, output / "data")
    log(f"corpora: {', '.join(data)}; {len(data) * (len(data) + 1)} cells")
    rows = selected_rows(data, label_set, label_map, log)  # as the runs select them, --target runs too
    trained, skipped = _train_all(plan_runs(data), output / "runs", train, log)
    cells = score_matrix(data, output / "runs", store, rows=rows, targets=targets, log=log)
    corpora, score = list(data), "CCC" if targets else "UA"
    write_csv(cells, output / "matrix.csv", REGRESSION_COLUMNS if targets else COLUMNS)
    (output / "matrix.md").write_text(markdown(cells, corpora, folds=folds, score_name=score) + "\n")
    plot_matrix(cells, corpora, output / "matrix.png", score_name=score,
                title=f"cross-corpus {score}, {model} (rows: training corpus; boxed: {folds}-fold speaker CV)")
    return CrossCorpusResult(cells, corpora, output, trained, skipped, score)
