"""The classic-estimator path of training (trainer ``fit``): svm and logreg, fitted by scikit-learn.

The hyperparameter (C) is chosen on the fold's validation speakers; ``train_log.csv`` holds one row per
value tried. Imports torch (through the datasets): load it only when a model trains.
"""

from __future__ import annotations

import time

from sertool.models import model_spec
from sertool.training import regression
from sertool.training.checkpoints import save_state, write_checkpoint, write_fit_log
from sertool.training.data import utterance_matrix
from sertool.training.folds import FoldResult, FoldSetup


def fit_fold(setup: FoldSetup) -> FoldResult:
    """Fit a classic estimator on one fold and write its ``checkpoint.pt``.

    Parameters
    ----------
    setup : FoldSetup
        The fold, its utterance-level datasets and folder.

    Returns
    -------
    FoldResult
        ``valid_ua`` of the chosen C; ``best_epoch`` and ``epochs_run`` are 0.
    """
    if setup.regression is not None:  # svr, ridge: fitted to the targets' values
        return regression.fit_fold(setup)
    begin = time.monotonic()
    x, y = utterance_matrix(setup.train_set)
    xv, yv = utterance_matrix(setup.valid_set)
    spec = model_spec(setup.model_name)
    config, state_dict, rows = spec.cls.fit(x, y, xv, yv, config=setup.model_config,
                                            num_classes=len(setup.labels), log=setup.log)
    chosen = {r[0]: r for r in rows}.get(config.C, (config.C, float("nan"), float("nan")))
    write_fit_log(setup.log_path, rows)
    model = spec.cls(config, input_dim=setup.info["input_dim"], num_classes=len(setup.labels))
    model.load_state_dict(state_dict)  # checks every array has the shape the config implies
    metrics = {"valid_UA": chosen[1], "C": config.C, "best_epoch": 0, "epochs_run": 0}
    write_checkpoint(setup, "checkpoint.pt", model, metrics, model_config=config)
    save_state(setup.state_path, {"epoch": 0, "best_ua": chosen[1], "best_epoch": 0}, setup.fingerprint,
               finished=True)
    setup.log(f"fold {setup.fold.index}: {setup.model_name} C={config.C:g} (valid UA {chosen[1]:.3f})")
    return FoldResult(setup.fold, setup.out_dir, 0, chosen[1], 0, time.monotonic() - begin, False)
