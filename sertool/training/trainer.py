"""Training: one model per fold, epoch chosen on validation speakers, resumable.

Per fold, ``RUN_DIR/fold-<i>/`` holds

- ``split.csv``: id, speaker, label, role (train / valid / test) of every utterance;
- ``train_log.csv``: epoch, train_loss, valid_loss, valid_UA, valid_WA, lr, seconds;
- ``state.pt``: the last finished epoch (weights, optimiser, best weights and
  the running sum of the last epochs' weights), rewritten atomically after
  every epoch: a rerun resumes from it;
- ``checkpoint.pt``: the model ``TrainConfig.selection`` names, as a
  :class:`~sertool.models.checkpoint.Checkpoint`, written when the fold finishes,
  beside ``checkpoint-best.pt`` (highest validation UA), ``checkpoint-last.pt``
  and ``checkpoint-average.pt`` (mean weights of the last epochs);
- ``config.json``: model, feature, train configs and the fold's speakers.

Classic estimators (trainer ``fit``) write ``train_log.csv`` with one row per
value of C tried on the validation speakers, and ``checkpoint.pt``.

Normalisation (:mod:`sertool.features.normalise`): global statistics come from the fold's
training utterances only; speaker statistics from each speaker's own
utterances. The parts: :mod:`~sertool.training.config` (settings),
:mod:`~sertool.training.device` (device and precision), :mod:`~sertool.training.folds` (set-up and
resume), :mod:`~sertool.training.loop` (the epoch loop), :mod:`~sertool.training.classic` (the
scikit-learn path), :mod:`~sertool.training.checkpoints` (what a fold writes).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

from sertool.corpora.combine import Combined, combine_manifests
from sertool.corpora.labels import parse_mapping, resolve_set
from sertool.errors import ConfigError, SertoolError
from sertool.features.normalise import check_mode, speaker_trust
from sertool.inference.flags import duration_range
from sertool.io.manifest import Utterance, write_manifest
from sertool.models import MODELS, build_model_config, model_spec
from sertool.models.registry import check_task
from sertool.runtime.process import torch_threads
from sertool.store.reader import FeatureStore
from sertool.training import distributed
from sertool.training.config import (  # noqa: F401  (re-exported: api, cli and tests import them from here)
    BALANCES, CLASSIFICATION_LOSSES, DEVICES, LOSSES, OPTIMIZERS, PRECISIONS, REGRESSION_LOSSES, SCHEDULES,
    SELECTIONS, TrainConfig, build_train_config, load_train_toml,
)
from sertool.training.device import native_bf16, resolved_precision  # noqa: F401  (re-exported)
from sertool.training.folds import FoldResult, fingerprint, restore_split, resume_state, set_up_fold
from sertool.training.runs import (LOG_COLUMNS, RUN_FILE, DamagedRunFile, atomic_json, fold_dir,  # noqa: F401
                                   read_run_info)
from sertool.training.splits import Fold, make_folds
from sertool.training.targets import TargetScale, parse_targets, target_values, values_digest


def _store_hashes(*paths) -> list[str]:
    """Config hashes of the feature stores given (None entries skipped)."""
    hashes = []
    for path in filter(None, paths):
        with FeatureStore(path) as store:
            hashes.append(store.config_hash)
    return hashes


def train_fold(fold: Fold, *, utterances: list[Utterance], store: Path, model: str,
               model_config, train_config: TrainConfig, labels: list[str], output: Path,
               utterance_store: Path | None = None, log: Callable[[str], None] = lambda m: None,
               targets: dict | None = None) -> FoldResult:
    """Train one fold into ``output``, resuming from its ``state.pt`` when present.

    Parameters
    ----------
    fold : Fold
        Utterance ids of its train, valid and test roles.
    utterances : list of Utterance
        The whole manifest.
    store : Path
        Feature store.
    model : str
        A registered model.
    model_config : dataclass
        Its config.
    train_config : TrainConfig
    labels : list of str
        Class names, sorted; class index = position (regression: the target names).
    output : Path
        The fold's folder (created).
    utterance_store : Path, optional
        Utterance-level store whose vector is appended to every frame.
    log : callable
        Progress messages.
    targets : dict, optional
        Regression: id -> values of the ``labels`` columns (:func:`~sertool.training.targets.target_values`).

    Returns
    -------
    FoldResult
        ``skipped`` when the folder already holds the finished fold.

    Raises
    ------
    SertoolError
        The folder holds a run with other settings, features or data.
    """
    output.mkdir(parents=True, exist_ok=True)
    found = fingerprint(fold, model, model_config, train_config, labels, _store_hashes(store, utterance_store),
                        {u.id: u for u in utterances})
    if targets is not None:  # the values learnt are part of the run: other values are another run
        found |= {"targets": list(labels), "target_values": values_digest(targets)}
    state = distributed.broadcast(resume_state(output, found, log) if distributed.world().is_main else None)
    if isinstance(state, str):  # rank 0 found another run or a damaged state in the folder: every rank stops
        raise SertoolError(state)
    if state is not None and state.get("finished"):
        if distributed.world().is_main:  # a damaged or deleted split.csv is written again (evaluate reads it)
            restore_split(output, fold, {u.id: u for u in utterances}, log)
        log(f"fold {fold.index}: already finished (best epoch {state['best_epoch']}), skipped")
        return FoldResult(fold, output, state["best_epoch"], state["best_ua"], state["epoch"], 0.0, True,
                          score_name="CCC" if targets is not None else "UA")
    setup = set_up_fold(fold, utterances=utterances, store=store, model=model,
                        model_config=model_config, train_config=train_config, labels=labels, output=output,
                        utterance_store=utterance_store, found=found, log=log, targets=targets)
    by_id = {u.id: u for u in utterances}  # the training clips' duration range, for predict's short/long flags
    setup.info["train_duration_s"] = duration_range(by_id[i].duration for i in fold.train)
    with torch_threads(train_config.threads):  # the caller's thread count comes back afterwards
        if model_spec(model).trainer == "fit":  # one fit, on rank 0; the others wait for its result
            from sertool.training.classic import fit_fold  # torch, sklearn: heavy, loaded only when a model trains

            return distributed.broadcast(fit_fold(setup) if distributed.world().is_main else None)
        from sertool.training.loop import sgd_fold  # torch: heavy, loaded only when a model trains

        return sgd_fold(setup, state)


def check_store_kind(model: str, store, *, norm: str = "global") -> None:
    """Check that the store's level (frame / utterance) is the one model ``model`` reads.

    Parameters
    ----------
    model : str
        A registered model.
    store : str or Path
        Feature store.
    norm : str
        The normalisation mode (``utterance`` needs a frame-level store).

    Raises
    ------
    ConfigError
        Another level (naming the models that fit the store), or ``norm`` that does not fit it.
    """
    spec = model_spec(model)
    with FeatureStore(store) as opened:
        level, feature_set = opened.attrs.get("level", "frame"), opened.attrs.get("feature_set", "?")
    check_mode(norm, level=level)
    if level != spec.level:
        fitting = sorted(n for n, s in MODELS.items() if s.level == level)
        article = "an" if level == "utterance" else "a"
        raise ConfigError(
            f"{store}: {feature_set} is {article} {level}-level store, but model {model!r} reads "
            f"{spec.level}-level features (e.g. --features {spec.features}); for this store use one of: {', '.join(fitting)}")


def _model_config(model: str, store, utterance_store, settings: dict | None):
    """The model config: the store's settings (``adapt``), the utterance vector's width, then ``settings``."""
    spec = model_spec(model)
    overrides = dict(settings or {})
    if utterance_store:
        if not spec.takes_utterance_vector:
            takers = ", ".join(sorted(n for n, s in MODELS.items() if s.takes_utterance_vector))
            raise ConfigError(f"model {model!r} takes no utterance-level vector; --utterance-store works "
                              f"with models that have a speaker_dim setting ({takers})")
        with FeatureStore(utterance_store) as extra:
            overrides["speaker_dim"] = extra.dim
    if spec.adapt is not None:  # settings the store decides (the user's --set still wins)
        with FeatureStore(store) as opened:
            overrides = {**spec.adapt(opened.attrs["config"]), **overrides}
    return build_model_config(model, overrides)


def _labels(manifest, utterances: list[Utterance], *, selected: bool = False) -> list[str]:
    """Sorted class names; SertoolError when some rows have no label, ConfigError for fewer than two classes.

    ``selected``: the rows are what a label selection (``--labels`` / ``--label-map``) kept, named in the message.
    """
    unlabelled = [u.id for u in utterances if not u.label]
    if unlabelled:
        raise SertoolError(f"{manifest}: {len(unlabelled)} rows have no label (e.g. {unlabelled[0]!r}); "
                           "training needs labels")
    labels = sorted({u.label for u in utterances})
    if len(labels) < 2:
        kept = " the --labels / --label-map selection keeps" if selected else ""
        raise ConfigError(f"{manifest}: every row{kept} is of class {', '.join(labels) or '(none)'}; a classifier "
                          "needs two classes or more: train on a manifest with more classes"
                          + (" or change --labels" if selected else ""))
    return labels


def _fold_labels(fold: Fold, utterances: list[Utterance], labels: list[str], protocol: str, log, *,
                 fitted: bool = False):
    """The classes a fold's model learns: the run's, or (``loco``) those of its training corpora.

    A leave-one-corpus-out fold learns the classes its training rows have; validation rows of other
    classes are left out of model selection (they cannot be predicted). Any other fold lacking
    training utterances of a class of the run is a ConfigError for a ``fitted`` (classic) model and a
    logged warning for a network; every fold needs two classes or more in training, and in validation when it
    has validation utterances (they choose the epoch or C and the calibration). Returns ``(fold, labels)``.
    """
    by_id = {u.id: u for u in utterances}
    own = sorted({by_id[i].label for i in fold.train})
    if len(own) < 2:
        raise ConfigError(f"fold {fold.index} ({fold.name}): its training utterances have {len(own)} class(es) "
                          f"({', '.join(own)}); a classifier needs two or more: use other folds or more data")
    _check_valid_classes(fold, by_id, own if protocol == "loco" else labels)
    if protocol != "loco":
        if own != labels:
            message = (f"fold {fold.index} ({fold.name}): no training utterance of class(es) "
                       f"{', '.join(sorted(set(labels) - set(own)))} (only its validation or test speakers have "
                       "them); change --folds / --seed / --valid-speakers, or leave the class out with --labels")
            if fitted:  # a classic estimator cannot have a class it never saw
                raise ConfigError(message)
            log(f"warning: {message}; the model never learns them")
        return fold, labels
    valid = tuple(i for i in fold.valid if by_id[i].label in own)
    if own != labels:
        log(f"fold {fold.index} ({fold.name}): learns the {len(own)} classes of its training corpora "
            f"({', '.join(own)})")
    return replace(fold, valid=valid), own


def _check_valid_classes(fold: Fold, by_id: dict, labels: list[str]) -> None:
    """ConfigError when the fold's validation utterances (of ``labels``) are all of one class."""
    valid = sorted({by_id[i].label for i in fold.valid if by_id[i].label in labels})
    if len(valid) == 1:
        raise ConfigError(f"fold {fold.index} ({fold.name}): every validation utterance is of class {valid[0]}, so "
                          "the epoch (or C) and the calibration would be chosen on one class: change --valid-speakers "
                          "or --seed (--protocol column: give the valid rows two classes or more)")


def _read_rows(manifest, label_set, label_map, log) -> Combined:
    """The rows of one manifest or several (:func:`~sertool.corpora.combine.combine_manifests`), left-out labels logged."""
    manifests = [manifest] if isinstance(manifest, (str, Path)) else list(manifest)
    combined = combine_manifests(manifests, label_set=label_set, mapping=label_map)
    if combined.dropped:
        log("labels outside the set left out: " + ", ".join(f"{k} {v}" for k, v in sorted(combined.dropped.items())))
    return combined


def _data_info(combined: Combined, label_set, label_map) -> dict:
    """run.json's record of the data: the manifests read and the label set and mapping (plain lists and dicts)."""
    selection = {"set": list(resolve_set(label_set)), "map": parse_mapping(label_map)} if combined.changed else None
    return {"manifests": [str(m.resolve()) for m in combined.manifests], "label_selection": selection}


def _check_settings(model: str, train_config: TrainConfig, utterances: list[Utterance], log) -> None:
    """ConfigError for ``balance corpus`` with a classic model; log :func:`~sertool.features.normalise.speaker_trust`'s
    warning for ``--norm speaker`` runs."""
    if train_config.balance == "corpus" and model_spec(model).trainer == "fit":
        raise ConfigError(f"--balance corpus samples training batches; {model} is fitted in one go "
                          "(its class_weight balances classes): drop --balance")
    doubt = speaker_trust(utterances, [u.id for u in utterances]) if train_config.norm == "speaker" else None
    if doubt:
        log(f"warning: {doubt}")


def _claim_run_dir(output: Path, run_info: dict, world, log) -> None:
    """Check ``output`` holds no other run, then write its ``run.json`` (rank 0).

    ``folds_requested`` (the folds ``train`` was asked for: all, or ``--fold``'s) joins those of earlier
    calls, so ``evaluate`` tells a fold never trained from one that was trained and lost.
    """
    output.mkdir(parents=True, exist_ok=True)
    try:
        earlier = read_run_info(output)
    except DamagedRunFile as exc:  # each fold's state.pt still guards its settings, features and data
        log(f"warning: {str(exc).split('; ')[0]}: writing it again")
        earlier = {}
    keys = ("manifest", "store", "utterance_store", "model", "manifests", "label_selection", "targets")
    changed = [k for k in keys if earlier and k in earlier and earlier.get(k) != run_info.get(k)]
    if changed:
        raise SertoolError(f"{output}: holds a run with another {', '.join(changed)} ({earlier[changed[0]]}); use a "
                           "new -o folder or delete it to start over")
    requested = sorted(set(run_info["folds_requested"]) | set(earlier.get("folds_requested", [])))
    if world.is_main:
        atomic_json(output / RUN_FILE, {**run_info, "folds_requested": requested,
                                        **({"processes": world.size} if world.active else {})})


def _run_manifest(combined: Combined, output: Path) -> Path:
    """The manifest the run's folds refer to: the one given, or the run's own ``manifest.csv`` of the rows used.

    Several manifests, or labels renamed or left out, make rows no single input holds; the run keeps them
    in ``RUN/manifest.csv`` (written by :func:`_write_run_manifest` once the folder is claimed), so
    ``evaluate`` reads exactly what trained.
    """
    return output / "manifest.csv" if combined.changed else combined.manifests[0]


def _write_run_manifest(combined: Combined, path: Path, world) -> None:
    """Write the combined rows to the run's ``manifest.csv`` (rank 0), when the run needs its own copy."""
    if combined.changed and world.is_main:
        write_manifest(combined.rows, path)
    distributed.barrier()


def train_run(manifest, store, *, model: str, output, protocol: str = "speaker-kfold",
              folds: int = 5, fold: int | None = None, valid_speakers: float = 2,
              test_speakers: list[str] | None = None, split_column: str = "split",
              model_settings: dict | None = None, train_config: TrainConfig | None = None,
              utterance_store=None, label_set=None, label_map=None, targets=None,
              log: Callable[[str], None] = lambda m: None) -> list[FoldResult]:
    """Split ``manifest`` by ``protocol`` and train every fold (or only ``fold``).

    Parameters
    ----------
    manifest, store : str or Path
        Labelled manifest CSV(s) (several: trained together, speakers named per corpus,
        :mod:`sertool.corpora.combine`), and a store of every row (``sertool store merge`` joins stores).
    label_set, label_map
        Keep only these labels (a name of :data:`sertool.corpora.labels.LABEL_SETS` or a list), after
        renaming by ``label_map`` (``FROM=TO`` items or a dict).
    model : str
        A registered model.
    output : str or Path
        The run folder.
    protocol, folds, valid_speakers, test_speakers, split_column
        The split (:func:`sertool.training.splits.make_folds`).
    fold : int, optional
        Train only this fold (0-based).
    model_settings, train_config : dict, TrainConfig, optional
        Model config overrides; default: the model's default recipe (``loss`` ``ccc`` for ``targets``).
    utterance_store : str or Path, optional
        Utterance-level store (models with ``takes_utterance_vector``).
    targets : str or list of str, optional
        Regression: numeric manifest columns (names, or comma-separated text) learnt instead of the labels.
    log : callable
        Progress messages (rank 0 only under DDP).

    Returns
    -------
    list of FoldResult

    Raises
    ------
    SertoolError
        Bad protocol settings, unlabelled rows, a store without features for
        some rows, or a run folder holding a different run.
    ConfigError
        Fewer than two classes in the rows trained on, in a fold's training rows or in its validation rows;
        for ``targets``, :func:`check_regression`'s errors (raised before any fold trains).
    """
    names = parse_targets(targets)
    train_config = train_config or build_train_config({"loss": "ccc"} if names else None, model=model)
    world = distributed.start(train_config.device)  # a no-op unless launched by torchrun / srun
    if not world.is_main:
        log = lambda message: None  # noqa: E731 - rank 0 alone reports
    combined, labels, values = _what_to_learn(manifest, label_set, label_map, model, train_config, names, log)
    utterances = combined.rows
    check_store_kind(model, store, norm=train_config.norm)
    model_config = _model_config(model, store, utterance_store, model_settings)
    all_folds = make_folds(utterances, protocol, folds=folds, valid_speakers=valid_speakers,
                           test_speakers=test_speakers, split_column=split_column, seed=train_config.seed, warn=log)
    if fold is not None and not 0 <= fold < len(all_folds):
        raise ConfigError(f"--fold {fold}: this protocol has folds 0-{len(all_folds) - 1}")
    _check_settings(model, train_config, utterances, log)
    chosen = [f for f in all_folds if fold is None or f.index == fold]
    planned = _plan_folds(chosen, utterances, labels, protocol, model, values, log)  # every fold checked first
    output = Path(output)
    manifest = _run_manifest(combined, output)
    _claim_run_dir(output, {"manifest": str(Path(manifest).resolve()), "store": str(Path(store).resolve()),
                            **_data_info(combined, label_set, label_map), "protocol": protocol,
                            "folds": len(all_folds), "folds_requested": [f.index for f, _ in planned],
                            "model": model, **_task_info(labels, names), "norm": train_config.norm,
                            "utterance_store": str(Path(utterance_store).resolve()) if utterance_store else None},
                   world, log)
    _write_run_manifest(combined, Path(manifest), world)
    results = []
    for f, fold_labels in planned:
        log(f"fold {f.index} ({f.name}): {len(f.train)} train, {len(f.valid)} valid, {len(f.test)} test utterances")
        results.append(train_fold(f, utterances=utterances, store=Path(store), model=model,
                                  model_config=model_config, train_config=train_config, labels=fold_labels,
                                  output=fold_dir(output, f.index), targets=values,
                                  utterance_store=Path(utterance_store) if utterance_store else None, log=log))
    distributed.barrier()  # the files rank 0 wrote are complete before any rank goes on
    return results


def _what_to_learn(manifest, label_set, label_map, model: str, train_config: TrainConfig, targets: list[str], log):
    """The rows read, and what the model learns of them: ``(rows, labels or target names, target values or None)``."""
    combined = _read_rows(manifest, label_set, label_map, log)
    where = combined.manifests[0] if len(combined.manifests) == 1 else "the manifests"
    if targets:
        return combined, targets, check_regression(model, train_config, where, combined.rows, targets)
    check_task(model, "classification")  # svr, ridge: regression only (they need --target)
    if train_config.loss in REGRESSION_LOSSES:
        raise ConfigError(f"--loss {train_config.loss} is a loss of numeric targets: add --target COLUMN, or use "
                          "--loss ce / focal for classes")
    return combined, _labels(where, combined.rows, selected=combined.changed and len(combined.manifests) == 1), None


def _task_info(labels: list[str], targets: list[str]) -> dict:
    """run.json's ``labels`` (classes), or for a regression run no labels, its ``task`` and ``targets``."""
    return {"labels": [], "task": "regression", "targets": targets} if targets else {"labels": labels}


def _plan_folds(folds: list[Fold], utterances: list[Utterance], labels: list[str], protocol: str, model: str,
                values: dict | None, log) -> list[tuple[Fold, list[str]]]:
    """``(fold, what it learns)`` per fold: its classes (:func:`_fold_labels`), or the targets (their training
    rows checked: two or more, no constant target)."""
    if values is not None:
        for f in folds:
            TargetScale.fit(labels, values, f.train, f"fold {f.index} ({f.name})")
            flat = [t for k, t in enumerate(labels) if len({float(values[i][k]) for i in f.valid}) == 1]
            if flat:
                log(f"warning: fold {f.index} ({f.name}): every validation utterance has one {', '.join(flat)} value, "
                    "so its validation CCC is undefined (counted as 0) and cannot choose the epoch or C: change "
                    "--valid-speakers or --seed")
        return [(f, labels) for f in folds]
    fitted = model_spec(model).trainer == "fit"
    return [_fold_labels(f, utterances, labels, protocol, log, fitted=fitted) for f in folds]


def check_regression(model: str, train_config: TrainConfig, manifest, utterances: list[Utterance],
                     targets: list[str]) -> dict:
    """The target values of a regression run (:func:`~sertool.training.targets.target_values`), its settings checked.

    Raises
    ------
    ConfigError
        A model that does no regression (naming those that do), a classification loss, or class balancing.
    ManifestError
        A missing column, or a row without a number in it.
    """
    check_task(model, "regression")
    if train_config.loss in CLASSIFICATION_LOSSES:
        raise ConfigError(f"--loss {train_config.loss} is a loss of classes; with --target use --loss ccc (default) "
                          "or --loss mse")
    if train_config.balance != "none":
        raise ConfigError(f"--balance {train_config.balance} balances classes; a --target run has none: drop it")
    return target_values(manifest, utterances, targets)
