"""The regression side of training (``train --target``): losses, validation scores and the classic fit.

Networks learn standardised targets (:class:`~sertool.training.targets.TargetScale`) with ``--loss mse`` or
``--loss ccc`` (the default: the mean over targets of ``1 - CCC`` of each batch); the epoch (``--selection
best``) and a classic model's C or alpha are chosen by the mean validation CCC over the targets. There is no
calibration: the outputs are values, not probabilities. Imports torch: load it only when a model trains.
"""

from __future__ import annotations

import csv
import time

import numpy as np
import torch

from sertool.inference.runner import forward
from sertool.metrics import regression_scores
from sertool.models import model_spec
from sertool.training.checkpoints import save_state, write_checkpoint
from sertool.training.config import TrainConfig
from sertool.training.data import collate, utterance_matrix
from sertool.training.folds import FoldResult, FoldSetup

#: What the loop's two validation scores are for a regression fold (a classifier's are UA and WA).
SCORE_NAMES = ("CCC", "RMSE")


def ccc_loss(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The mean over targets of ``1 - CCC`` of a batch: ``outputs`` and ``target`` (B, K) float."""
    outputs, target = outputs.float(), target.float()
    mo, mt = outputs.mean(0), target.mean(0)
    covariance = ((outputs - mo) * (target - mt)).mean(0)
    denominator = outputs.var(0, unbiased=False) + target.var(0, unbiased=False) + (mo - mt) ** 2
    return (1 - 2 * covariance / denominator.clamp(min=1e-8)).mean()


def regression_loss(config: TrainConfig):
    """``loss(outputs (B, K), target (B, K)) -> scalar``: mean squared error or :func:`ccc_loss`."""
    if config.loss == "mse":
        return lambda outputs, target: torch.nn.functional.mse_loss(outputs.float(), target.float())
    return ccc_loss


def predictions(setup: FoldSetup, model, dataset, loss_fn=None) -> tuple[np.ndarray, np.ndarray, float]:
    """``(pred (N, K), true (N, K))`` of ``dataset`` on the targets' scale, and the mean loss (NaN without one)."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=setup.train_config.batch_size,
                                         collate_fn=collate, num_workers=setup.train_config.workers)
    model.eval()
    outs, truths, losses = [], [], []
    for feats, lengths, y in loader:
        out = forward(model, feats, lengths, setup.device)
        if loss_fn is not None:
            with torch.no_grad():
                losses.append(float(loss_fn(out, y.to(setup.device))) * len(y))
        outs.append(out.cpu().numpy())
        truths.append(y.numpy())
    scale = setup.regression
    pred, true = (np.concatenate(outs) * scale.std + scale.mean, np.concatenate(truths) * scale.std + scale.mean)
    return pred, true, (sum(losses) / len(pred) if losses else float("nan"))


def validate(setup: FoldSetup, model, loss_fn) -> tuple[dict, float]:
    """Validation scores of a regression fold: ``UA`` holds the mean CCC over targets, ``WA`` the mean RMSE.

    The loop keeps its two score slots (``UA``: what selects the epoch; ``WA``: the second log column), named
    :data:`SCORE_NAMES` in the log; ``CCC`` and ``RMSE`` hold the same numbers under their own names.
    """
    if not len(setup.valid_set):
        return {"UA": float("nan"), "WA": float("nan")}, float("nan")
    pred, true, loss = predictions(setup, model, setup.valid_set, loss_fn)
    ccc, rmse = mean_scores(true, pred)
    return {"UA": ccc, "WA": rmse, "CCC": ccc, "RMSE": rmse}, loss


def mean_scores(true: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """The mean over targets of the CCC and of the RMSE of ``pred`` against ``true`` (N, K); NaN CCC counts as 0."""
    scores = [regression_scores(true[:, k], pred[:, k]) for k in range(true.shape[1])]
    ccc = float(np.mean([s["CCC"] if s["CCC"] == s["CCC"] else 0.0 for s in scores]))
    return ccc, float(np.mean([s["RMSE"] for s in scores]))


def regression_matrix(dataset) -> tuple[np.ndarray, np.ndarray]:
    """``X`` (N, D) float32 and standardised targets ``y`` (N, K) float64 of an utterance-level dataset."""
    x, _ = utterance_matrix(dataset)
    y = np.asarray(dataset.labels, np.float64).reshape(len(dataset.labels), -1)
    return x, y


def write_fit_log(path, field: str, rows: list[tuple[float, float, float]]) -> None:
    """``train_log.csv`` of a classic regressor: one row per value of ``field`` (C or alpha) tried."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([field, "valid_CCC", "valid_RMSE_standardised"])
        w.writerows([[f"{v:g}", f"{ccc:.4f}", f"{rmse:.4f}"] for v, ccc, rmse in rows])


def fit_fold(setup: FoldSetup) -> FoldResult:
    """Fit a classic regressor (svr, ridge) on one fold and write its ``checkpoint.pt``.

    Returns
    -------
    FoldResult
        ``valid_ua`` holds the chosen value's mean validation CCC; ``best_epoch`` and ``epochs_run`` are 0.
    """
    begin = time.monotonic()
    (x, y), (xv, yv) = regression_matrix(setup.train_set), regression_matrix(setup.valid_set)
    spec = model_spec(setup.model_name)
    field = spec.cls.config_field
    config, state_dict, rows = spec.cls.fit(x, y, xv, yv, config=setup.model_config,
                                            num_classes=len(setup.labels), log=setup.log)
    value = getattr(config, field)
    ccc = {r[0]: r[1] for r in rows}.get(value, float("nan"))
    write_fit_log(setup.log_path, field, rows)
    model = spec.cls(config, input_dim=setup.info["input_dim"], num_classes=len(setup.labels))
    model.load_state_dict(state_dict)  # checks every array has the shape the config implies
    metrics = {"valid_CCC": ccc, "valid_UA": ccc, field: value, "best_epoch": 0, "epochs_run": 0}
    write_checkpoint(setup, "checkpoint.pt", model, metrics, model_config=config)
    save_state(setup.state_path, {"epoch": 0, "best_ua": ccc, "best_epoch": 0}, setup.fingerprint, finished=True)
    setup.log(f"fold {setup.fold.index}: {setup.model_name} {field}={value:g} (valid CCC {ccc:.3f})")
    return FoldResult(setup.fold, setup.out_dir, 0, ccc, 0, time.monotonic() - begin, False, score_name="CCC")
