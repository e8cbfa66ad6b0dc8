"""Runs: :func:`train`, :func:`evaluate`, :func:`fuse`, :func:`compare`, :func:`crosscorpus` (and
:func:`train_setup`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

from sertool.api.results import Comparison, TrainSetup
from sertool.errors import ConfigError
from sertool.models import build_model_config, model_spec
from sertool.training import distributed
from sertool.training.runs import read_run_info

PathLike = str | os.PathLike
Log = Callable[[str], None]


def _quiet(message: str) -> None:
    """The default ``log``: progress lines go nowhere."""


def train_setup(model: str = "light_sernet", *, recipe: str = "default", settings: dict[str, Any] | None = None,
                model_settings: dict[str, Any] | None = None, config: PathLike | None = None,
                regression: bool = False) -> TrainSetup:
    """The model and training configs :func:`train` would use (``sertool train --print-config``).

    Parameters
    ----------
    model, recipe, settings, model_settings, config
        As for :func:`train`.
    regression
        Training values (:func:`train`'s ``targets``): the loss defaults to ``ccc`` instead of ``ce``.

    Returns
    -------
    TrainSetup
        ``model_config``, ``train_config``, the model's ``level`` and ``features``; ``to_toml()``.

    Raises
    ------
    ConfigError
        An unknown model, recipe or setting, an invalid value, or a bad TOML file.
    """
    from sertool.training.config import build_train_config, load_train_toml  # numpy: kept off `sertool --help`

    model_values, train_values = load_train_toml(config) if config else ({}, {})
    model_values.update(model_settings or {})
    train_values.update(settings or {})
    if regression and train_values.get("loss") is None:
        train_values["loss"] = "ccc"
    train_config = build_train_config(train_values, model=model, recipe=recipe)
    spec = model_spec(model)
    return TrainSetup(model, recipe, spec.level, spec.features, model_values,
                      build_model_config(model, model_values), train_config)


def train(manifest: PathLike | Sequence[PathLike], store: PathLike, *, output: PathLike,
          model: str = "light_sernet", protocol: str = "speaker-kfold", folds: int = 5, fold: int | None = None,
          valid_speakers: float = 2, test_speakers: Sequence[str] | None = None, split_column: str = "split",
          recipe: str = "default", settings: dict[str, Any] | None = None,
          model_settings: dict[str, Any] | None = None, config: PathLike | None = None,
          utterance_store: PathLike | None = None, labels: str | Sequence[str] | None = None,
          label_map: Sequence[str] | dict[str, str] | None = None, targets: str | Sequence[str] | None = None,
          log: Log | None = None):
    """Train one model per fold of a speaker-independent protocol (``sertool train``).

    Parameters
    ----------
    manifest, store
        Manifest CSV (or a list of them, trained together with speakers named ``<corpus>:<speaker>``)
        and a feature store of all their rows (``store_merge`` joins per-corpus stores).
    output
        Run folder (``fold-<i>/checkpoint.pt`` ...); a rerun resumes it.
    model
        A name of :func:`model_names`.
    protocol, folds, fold, valid_speakers, test_speakers, split_column
        As the CLI options of the same names (protocols: :data:`sertool.training.splits.PROTOCOLS`).
    recipe
        ``"default"`` (measured on CPU) or ``"paper"`` (:data:`sertool.models.RECIPES`).
    settings
        :class:`~sertool.training.config.TrainConfig` overrides (``{"epochs": 10, "norm": "speaker"}``).
    model_settings
        Model config overrides (``{"kernel": "rbf"}``).
    config
        A TOML file with ``[model]`` and ``[train]`` tables (applied before the two dicts).
    utterance_store
        An utterance-level store (e.g. speaker embeddings) appended after MSCNN-SPU's pooling.
    labels
        Train on these labels only: a set name (``big4``, ``big6``, ``big7``, ``all``), a list, or
        comma-separated names; other rows are left out.
    label_map
        Rename labels first: ``["excited=happy"]`` or ``{"excited": "happy"}``.
    targets
        Regression: learn these numeric manifest columns (names, or comma-separated text, e.g.
        ``["arousal", "valence"]``) instead of the labels, with models that do regression (networks, mlp,
        svr, ridge); the loss defaults to ``ccc``. Every row needs a number in each column.
    log
        Called with each progress line (default: silent).

    Returns
    -------
    list of sertool.training.trainer.FoldResult
        Per fold: ``best_epoch``, ``valid_ua``, ``epochs_run``, ``seconds``, ``directory``, ``skipped``.

    Raises
    ------
    ConfigError
        Unknown model, recipe, protocol or setting, or protocol options that do not fit the manifest.
    ManifestError
        The manifest is missing, malformed or unlabelled.
    StoreError
        The store lacks rows of the manifest or does not fit the model.
    """
    from sertool.training.trainer import train_run  # numpy (torch when a model trains): kept off `sertool --help`

    setup = train_setup(model, recipe=recipe, settings=settings, model_settings=model_settings, config=config,
                        regression=bool(targets))
    try:
        return train_run(manifest, store, model=model, output=output, protocol=protocol, folds=folds,
                         fold=fold, valid_speakers=valid_speakers,
                         test_speakers=list(test_speakers) if test_speakers else None, split_column=split_column,
                         model_settings=setup.model_settings, utterance_store=utterance_store,
                         train_config=setup.train_config, label_set=labels, label_map=label_map,
                         targets=targets, log=log or _quiet)
    finally:
        distributed.stop()


def evaluate(run: PathLike, *, manifest: PathLike | None = None, store: PathLike | None = None,
             on: tuple[PathLike, PathLike] | None = None, label_map: dict[str, str] | PathLike | None = None,
             selection: str | None = None, output: PathLike | None = None, device: str = "cpu",
             allow_missing_folds: bool = False, log: Log | None = None):
    """Score every fold of a run on its test speakers, or with ``on`` on another corpus (``sertool evaluate``).

    Parameters
    ----------
    run
        A trained or fused run folder.
    manifest, store
        Score these instead of the manifest and store the run was trained on (give both or neither).
    on
        ``(manifest, store)`` of another corpus: cross-corpus evaluation (a regression run scores the rows with
        a number in each of its target columns, which the other manifest must have under the same names).
    label_map
        With ``on``: ``{other label: model label}`` or a CSV of ``from,to`` rows (not for a regression run).
    selection
        ``"best"``, ``"average"`` or ``"last"``: score that checkpoint instead of ``checkpoint.pt``.
    output
        Results folder (default: the run folder, or ``RUN/cross-<manifest>`` with ``on``).
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"`` (not with ``on``, except for a regression run).
    allow_missing_folds
        Score the folds there are when some of the run's folds have no checkpoint; the result's
        ``folds_scored`` / ``folds_total`` (and metrics.csv) say how many. Default: an error naming them.
    log
        Called with each progress line (default: silent).

    Returns
    -------
    sertool.scoring.evaluate.EvaluationResult
        ``folds``: fold name (``fold-0`` ..., ``pooled``, ``mean``, ``std``) -> scores
        (``UA``, ``WA``, ``macro_F1``, per-class arrays, ``test_classes``, ``ci`` for pooled); ``labels``;
        ``out_dir``; ``folds_scored`` of ``folds_total`` (``partial`` when fewer).

    Raises
    ------
    ConfigError
        ``label_map`` without ``on``, only one of ``manifest`` and ``store``, or an unknown selection.
    CheckpointError
        A fold's checkpoint is unreadable.
    SertoolError
        Folds of the run without a checkpoint (unless ``allow_missing_folds``), or a damaged run file
        (run.json, split.csv, ...): the message names the file and the command that rewrites it.
    StoreError
        The store does not match the run's features.
    """
    # scoring: numpy, kept off `sertool --help`
    from sertool.scoring.cross_corpus import evaluate_cross_corpus, read_label_map
    from sertool.scoring.evaluate import evaluate_run  # numpy too

    if (manifest is None) != (store is None):
        raise ConfigError("give both manifest and store, or neither")
    if read_run_info(run).get("task") == "regression":
        return _evaluate_regression(run, manifest=manifest, store=store, on=on, label_map=label_map,
                                    selection=selection, output=output, device=device,
                                    allow_missing_folds=allow_missing_folds, log=log)
    if on is None:
        if label_map is not None:
            raise ConfigError("label_map goes with on=(manifest, store)")
        if manifest is None and _per_fold_classes(run):
            from sertool.scoring.loco import evaluate_shared_classes  # numpy: kept off `sertool --help`

            return evaluate_shared_classes(run, output=output, selection=selection, log=log or _quiet,
                                           allow_missing_folds=allow_missing_folds)
        return evaluate_run(run, manifest, store, output=output, selection=selection, log=log or _quiet,
                            device=device, allow_missing_folds=allow_missing_folds)
    if label_map is not None and not isinstance(label_map, dict):
        label_map = read_label_map(label_map)
    return evaluate_cross_corpus(run, on[0], on[1], label_map=label_map, output=output, selection=selection,
                                 log=log or _quiet, allow_missing_folds=allow_missing_folds)


def _evaluate_regression(run: PathLike, *, on, label_map, log, **options):
    """:func:`evaluate` of a regression run (:mod:`sertool.scoring.regression`), or with ``on`` on another corpus
    (:func:`sertool.scoring.cross_corpus.evaluate_regression_cross_corpus`); ConfigError for a ``label_map``."""
    from sertool.scoring.cross_corpus import evaluate_regression_cross_corpus  # numpy: kept off `sertool --help`
    from sertool.scoring.regression import evaluate_regression_run  # numpy too

    if label_map is not None:
        raise ConfigError(f"{run}: a regression run (train --target) has no class labels to map; drop --label-map "
                          "(the other manifest needs columns named as the run's targets)")
    manifest, store = options.pop("manifest"), options.pop("store")
    if on is not None:
        return evaluate_regression_cross_corpus(run, on[0], on[1], log=log or _quiet, **options)
    return evaluate_regression_run(run, manifest, store, log=log or _quiet, **options)


def _per_fold_classes(run: PathLike) -> bool:
    """Whether the run's folds are scored over the classes each shares with its test set (``--protocol loco``).

    A damaged run.json raises :class:`~sertool.training.runs.DamagedRunFile`, naming it.
    """
    return read_run_info(run).get("protocol") == "loco"


def fuse(runs: Sequence[PathLike], *, output: PathLike, weights: Sequence[float] | None = None,
         grid_step: float = 0.1, allow_missing_folds: bool = False, log: Log | None = None):
    """Late fusion of runs trained on the same folds (``sertool fuse``).

    Classifiers fuse their calibrated class probabilities; regression runs (``train --target``, same targets)
    their predicted values, weights chosen by the mean validation CCC over the targets.

    Parameters
    ----------
    runs
        Two or more trained run folders (all classifiers, or all regression runs of the same targets).
    output
        Folder of the fused run (``run.json``, ``fold-<i>/checkpoint.pt``).
    weights
        One per run (normalised to sum 1); default: fitted per fold on its validation speakers.
    grid_step
        Step of the weight grid searched on the validation speakers.
    allow_missing_folds
        Fuse the folds every run has finished when some have no checkpoint (default: an error naming them).
    log
        Called with each progress line (default: silent).

    Returns
    -------
    sertool.scoring.fuse.FusionResult
        ``out_dir``, per-fold ``weights`` and their ``valid_ua`` (the mean CCC of regression runs:
        ``score_name``).

    Raises
    ------
    SertoolError
        Fewer than two runs, runs on different folds or labels, regression runs mixed with classifiers or of
        other targets, folds without a checkpoint (unless
        ``allow_missing_folds``), damaged run files, or weights of the wrong length.
    """
    from sertool.scoring.fuse import fuse_runs  # numpy: kept off `sertool --help`

    return fuse_runs(list(runs), output, weights=list(weights) if weights else None, grid_step=grid_step,
                     log=log or _quiet, allow_missing_folds=allow_missing_folds)


def compare(runs: Sequence[PathLike], *, output: PathLike | None = None) -> Comparison:
    """Evaluated runs side by side: pooled scores with intervals, fold mean/std, paired UA difference to the first.

    Parameters
    ----------
    runs
        Evaluated run folders (``sertool evaluate`` wrote their ``metrics.csv``).
    output
        Also write the table: ``.md`` for Markdown, anything else CSV.

    Returns
    -------
    Comparison
        ``rows`` (dicts keyed by :data:`sertool.scoring.compare.COLUMNS`), ``table`` (Markdown), ``output``.

    Raises
    ------
    SertoolError
        A run that was not evaluated, or a damaged metrics.csv / predictions.csv (naming ``evaluate`` as the fix).
    """
    from sertool.scoring.compare import compare_runs, markdown, write_csv  # numpy: kept off `sertool --help`

    rows = compare_runs(list(runs))
    result = Comparison(rows, markdown(rows), Path(output) if output else None)
    if result.output and result.output.suffix == ".md":
        result.output.write_text(result.table + "\n")
    elif result.output:
        write_csv(rows, result.output)
    return result


def crosscorpus(manifests: Sequence[PathLike], store: PathLike, *, output: PathLike, model: str = "light_sernet",
                folds: int = 4, valid_speakers: float = 2, recipe: str = "default",
                settings: dict[str, Any] | None = None, model_settings: dict[str, Any] | None = None,
                config: PathLike | None = None, labels: str | Sequence[str] | None = None,
                label_map: Sequence[str] | dict[str, str] | None = None,
                targets: str | Sequence[str] | None = None, log: Log | None = None):
    """A training-corpus x test-corpus matrix of UA (or CCC) with 95 % intervals (``sertool crosscorpus``).

    Off the diagonal, a model trained on all of one corpus (protocol ``all``) scores all of another; on it,
    ``folds``-fold speaker cross-validation within the corpus; an ``all others`` row holds the ``loco``
    protocol's folds. Every run is an ordinary :func:`train` run under ``OUTPUT/runs/`` with the settings
    given, resumed by a rerun (finished folds are not retrained). Cells are scored over the classes the
    training and test sets share, probabilities renormalised over them.

    Parameters
    ----------
    manifests
        Labelled manifest CSVs; their ``corpus`` column names the corpora (two or more in all).
    store
        A feature store holding every row (``store_merge`` joins per-corpus stores).
    output
        The folder of ``matrix.csv``, ``matrix.md``, ``matrix.png``, ``data/`` and ``runs/``.
    model, valid_speakers, recipe, settings, model_settings, config, labels, label_map, targets
        As for :func:`train`, for every run. With ``targets`` every run is a regression run and each cell
        holds the mean CCC over the targets (:mod:`sertool.scoring.crosscorpus_regression`).
    folds
        The diagonal's speaker folds.
    log
        Called with each progress line (default: silent).

    Returns
    -------
    sertool.scoring.crosscorpus.CrossCorpusResult
        ``cells`` (train, test, UA, ci_low, ci_high, n, classes, ECE, WA, run), ``corpora``, ``out_dir``,
        ``trained`` and ``skipped`` folds.

    Raises
    ------
    ConfigError
        Fewer than two corpora, an unknown model, recipe or setting, or too few speakers for ``folds``.
    ManifestError
        A manifest is missing, malformed or unlabelled, or two share an utterance id.
    StoreError
        The store lacks rows of the manifests or does not fit the model.
    CheckpointError
        A run's checkpoint is unreadable.
    """
    from sertool.scoring.crosscorpus import build_matrix  # numpy: kept off `sertool --help`

    from sertool.training.targets import parse_targets  # with build_matrix above

    columns = parse_targets(targets) if targets else None
    train_setup(model, recipe=recipe, settings=settings, model_settings=model_settings, config=config,
                regression=bool(columns))  # fail early

    def train_one(run_manifests: list, run_dir, protocol: str) -> list:
        return train(run_manifests[0] if len(run_manifests) == 1 else run_manifests, store, output=run_dir,
                     model=model, protocol=protocol, folds=folds, valid_speakers=valid_speakers, recipe=recipe,
                     settings=settings, model_settings=model_settings, config=config, labels=labels,
                     label_map=label_map, targets=columns, log=log)

    return build_matrix(list(manifests), store, output=output, train=train_one, model=model, folds=folds,
                        label_set=labels, label_map=label_map, targets=columns, log=log or _quiet)
