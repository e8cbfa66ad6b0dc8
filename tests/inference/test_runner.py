"""inference/runner.py: the torch runner scores softmax(logits / T) with the checkpoint's calibrated temperature."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import sertool
from sertool.inference.predict import default_checkpoint
from sertool.inference.runner import TorchRunner, build_runner, forward
from sertool.models.checkpoint import Checkpoint
from tests.conftest import REPO

EXAMPLES = sorted((REPO / "examples").rglob("*.flac"))


def _with_temperature(checkpoint: Checkpoint, temperature: float | None) -> Checkpoint:
    calibration = {} if temperature is None else {"method": "temperature", "temperature": temperature}
    return dataclasses.replace(checkpoint, calibration=calibration)


def _tempered(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log(probs) / T): the same as softmax(logits / T), since log(probs) = logits - a constant per row."""
    z = np.log(np.asarray(probs, np.float64)) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def test_runner_divides_the_logits_by_the_temperature():
    import torch

    checkpoint = Checkpoint.load(default_checkpoint("ravdess"))
    rng = np.random.default_rng(0)
    windows = [rng.standard_normal((n, len(checkpoint.norm_mean))).astype(np.float32) for n in (150, 300, 90)]
    plain = build_runner(checkpoint)
    assert isinstance(plain, TorchRunner) and plain.temperature == 1.0
    hot = build_runner(_with_temperature(checkpoint, 2.5))
    assert hot.temperature == 2.5
    p1, p25 = plain.probabilities(windows), hot.probabilities(windows)
    np.testing.assert_allclose(p25, _tempered(p1, 2.5), atol=1e-5)
    assert (p25.argmax(1) == p1.argmax(1)).all() and p25.max(1).min() < p1.max(1).min() + 1e-9
    # T = 1: exactly the untempered softmax of the logits, as before calibration existed
    batch = torch.from_numpy(windows[1][None])
    logits = forward(plain.model, batch, torch.tensor([300]), plain.device)
    assert np.array_equal(plain.batch_probabilities(batch.numpy(), np.array([300])),
                          torch.softmax(logits, dim=-1).numpy())


@pytest.mark.skipif(not EXAMPLES, reason="no example clips")
def test_predict_with_t_one_is_unchanged_and_t_scales_every_window():
    checkpoint = Checkpoint.load(default_checkpoint("ravdess"))
    before = sertool.predict(_with_temperature(checkpoint, None), EXAMPLES)
    same = sertool.predict(_with_temperature(checkpoint, 1.0), EXAMPLES)
    assert np.array_equal(before.probabilities, same.probabilities) and before.labels == same.labels
    soft = sertool.predict(_with_temperature(checkpoint, 3.0), EXAMPLES)
    if all(len(w) == 1 for w in before.windows):  # one window each: a temperature never changes the label
        assert soft.labels == before.labels
    for windows, soft_windows in zip(before.windows, soft.windows):
        for (start, end, p), (start3, end3, p3) in zip(windows, soft_windows):
            assert (start, end) == (start3, end3)
            np.testing.assert_allclose(p3, _tempered(p, 3.0), atol=1e-5)
