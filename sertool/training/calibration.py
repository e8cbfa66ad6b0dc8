"""Calibrated confidence: one softmax temperature per fold, fitted on the fold's validation speakers.

A network trained to high accuracy is often over-confident: its largest
probability is higher than the share of its predictions that are right.
Temperature scaling (Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017, section 4.2) divides the logits by one number
``T > 0`` before the softmax. It changes no prediction (the argmax stays),
only how sure the probabilities say the model is.

Per fold, after the fold's checkpoints are chosen, :func:`fold_calibration`
scores the fold's validation speakers (never its test speakers) with the
checkpoint's weights and fits ``T`` minimising their negative
log-likelihood: a bounded 1-D search (scipy's bounded Brent method) over
``log T`` in ``[-3, 3]`` (``T`` from 0.05 to 20), deterministic. The result
is stored in the checkpoint's ``calibration`` field::

    {"method": "temperature", "temperature": T, "valid_utterances": N,
     "valid_nll_before": ..., "valid_nll_after": ...,
     "valid_ece_before": ..., "valid_ece_after": ...}

and every scoring path (predict, evaluate, stream, fuse, exported graphs)
uses ``softmax(logits / T)``. ``T = 1`` (method ``none``) when the fold has
no validation speakers, or when the model was refit on them (``refit=true``
of the classic models: their validation scores would be in-sample).
Classic ``svm`` models keep their own softmax temperature (part of their
logits, fitted on a training-only fit); the fold's ``T`` is fitted on top
of those logits, so it stays near 1 for them.
"""

from __future__ import annotations

import math

import numpy as np

from sertool.metrics import expected_calibration_error

#: Bounds of the search over log T (T from about 0.05 to 20).
LOG_T_BOUNDS = (-3.0, 3.0)
#: The least NLL gain (nats) for which a temperature other than 1 is kept.
NLL_GAIN = 1e-6
#: Calibration of a model without one (T = 1): old checkpoints, folds without validation speakers.
IDENTITY = {"method": "none", "temperature": 1.0}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax of ``logits`` ``(N, C)`` over the classes, float64."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(logits / temperature)`` of ``logits`` ``(N, C)``: ``(N, C)`` float64 probabilities."""
    return np.exp(log_softmax(np.asarray(logits, np.float64) / temperature))


def negative_log_likelihood(logits: np.ndarray, true: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of class indices ``true`` ``(N,)`` under ``softmax(logits / T)``.

    Parameters
    ----------
    logits
        ``(N, C)`` scores before the softmax.
    true
        ``(N,)`` class indices.
    temperature
        ``T > 0``.

    Returns
    -------
    float
    """
    logp = log_softmax(np.asarray(logits, np.float64) / temperature)
    return float(-logp[np.arange(len(true)), np.asarray(true)].mean())


def fit_temperature(logits: np.ndarray, true: np.ndarray) -> float:
    """The temperature ``T`` minimising the NLL of ``softmax(logits / T)``: bounded Brent search on ``log T``.

    Parameters
    ----------
    logits
        ``(N, C)`` validation scores before the softmax (N >= 1).
    true
        ``(N,)`` validation class indices.

    Returns
    -------
    float
        ``T`` in ``[exp(-3), exp(3)]``; deterministic for the same inputs.
    """
    from scipy.optimize import minimize_scalar  # scipy: heavy, loaded only when a fold is calibrated

    logits, true = np.asarray(logits, np.float64), np.asarray(true)
    found = minimize_scalar(lambda log_t: negative_log_likelihood(logits, true, math.exp(log_t)),
                            bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-5})
    best = float(found.x)
    # keep T = 1 unless the search found a clearly lower NLL (not a rounding-level one, e.g. all near 0)
    if negative_log_likelihood(logits, true) <= negative_log_likelihood(logits, true, math.exp(best)) + NLL_GAIN:
        return 1.0
    return math.exp(best)


def calibrate(logits: np.ndarray, true: np.ndarray) -> dict:
    """Fit a temperature on ``logits`` ``(N, C)`` and class indices ``true`` ``(N,)``, with NLL and ECE before/after.

    Returns
    -------
    dict
        ``method`` (``temperature``, or ``none`` with ``T = 1`` when N is 0), ``temperature``,
        ``valid_utterances``, ``valid_nll_before`` / ``valid_nll_after`` (nats) and
        ``valid_ece_before`` / ``valid_ece_after`` (10 equal-width bins).
    """
    logits, true = np.asarray(logits, np.float64), np.asarray(true)
    if len(true) == 0:
        return {**IDENTITY, "valid_utterances": 0}
    temperature = fit_temperature(logits, true)
    return {"method": "temperature", "temperature": temperature, "valid_utterances": int(len(true)),
            "valid_nll_before": negative_log_likelihood(logits, true),
            "valid_nll_after": negative_log_likelihood(logits, true, temperature),
            "valid_ece_before": expected_calibration_error(softmax(logits), true),
            "valid_ece_after": expected_calibration_error(softmax(logits, temperature), true)}


def validation_logits(setup, model) -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``model`` on the fold's validation speakers, as training's validation scores them.

    Parameters
    ----------
    setup : sertool.training.folds.FoldSetup
        Its ``valid_set`` (whole utterances, the fold's normaliser) and batch size.
    model : torch.nn.Module
        Run on the device its weights are on, in evaluation mode.

    Returns
    -------
    logits : numpy.ndarray
        ``(N, C)`` float32.
    labels : numpy.ndarray
        ``(N,)`` int64 class indices.
    """
    import torch  # torch: heavy, loaded only when a model trains

    from sertool.inference.runner import forward  # torch: heavy (through the runner), loaded when a model trains
    from sertool.training.data import collate  # torch: heavy, loaded only when a model trains

    tensors = list(model.parameters()) + list(model.buffers())
    device = tensors[0].device if tensors else torch.device("cpu")
    loader = torch.utils.data.DataLoader(setup.valid_set, batch_size=setup.train_config.batch_size,
                                         collate_fn=collate, num_workers=setup.train_config.workers)
    model.eval()
    logits, labels = [], []
    for feats, lengths, y in loader:
        logits.append(forward(model, feats, lengths, device).cpu().numpy())
        labels.append(y.numpy())
    if not logits:
        return np.zeros((0, len(setup.labels)), np.float32), np.zeros(0, np.int64)
    return np.concatenate(logits), np.concatenate(labels)


def fold_calibration(setup, model, *, model_config=None) -> dict:
    """The calibration of one fold's checkpoint: :func:`calibrate` on its validation speakers' logits.

    Parameters
    ----------
    setup : sertool.training.folds.FoldSetup
        The fold (its validation speakers).
    model : torch.nn.Module
        The checkpoint's model, with the weights it is saved with.
    model_config : dataclass, optional
        The stored config when it differs from the fold's (a classic model's chosen C, ``refit``).

    Returns
    -------
    dict
        The checkpoint's ``calibration`` field (module docstring); ``T = 1`` without validation speakers or
        for a model refit on them.
    """
    if getattr(setup, "regression", None) is not None:
        return {**IDENTITY, "valid_utterances": 0, "reason": "regression (values, not probabilities)"}
    if getattr(model_config or setup.model_config, "refit", False):
        return {**IDENTITY, "valid_utterances": 0, "reason": "refit on the validation speakers"}
    if not len(setup.valid_set):
        return {**IDENTITY, "valid_utterances": 0, "reason": "no validation speakers"}
    return calibrate(*validation_logits(setup, model))


def describe(calibration: dict) -> str:
    """One line: ``T 1.84, valid NLL 0.912 -> 0.803, ECE 0.121 -> 0.043`` (or why there is none)."""
    if calibration.get("method") != "temperature":
        return f"T 1 ({calibration.get('reason', 'not calibrated')})"
    return (f"T {calibration['temperature']:.3g}, valid NLL {calibration['valid_nll_before']:.3f} -> "
            f"{calibration['valid_nll_after']:.3f}, ECE {calibration['valid_ece_before']:.3f} -> "
            f"{calibration['valid_ece_after']:.3f}")
