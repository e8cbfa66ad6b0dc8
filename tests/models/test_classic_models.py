"""models/classic.py: svm and logreg reproduce scikit-learn, choose C on validation, and save code-free checkpoints."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from sertool.models import build_model_config
from sertool.models.checkpoint import Checkpoint
from sertool.scoring.evaluate import evaluate_run
from sertool.training.trainer import build_train_config, train_run
from tests.conftest import assert_evaluation_consistent


@pytest.mark.parametrize("overrides", [{}, {"kernel": "rbf"}], ids=["linear", "rbf"])
def test_svm_module_reproduces_sklearn_decisions(overrides):
    from sertool.models.classic import Svm

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 0.8)
    config = build_model_config("svm", {**overrides, "C": 1.0})
    reference = Svm._estimator(config, 3).fit(x, y)
    config, state, _ = Svm.fit(x, y, x[:0], y[:0], config=config, num_classes=3)
    model = Svm(config, input_dim=5, num_classes=3)
    model.load_state_dict(state)
    with torch.no_grad():
        ours = model.decision(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours, Svm._decision(reference, x, 3), atol=1e-4)


@pytest.mark.parametrize("name,overrides", [("svm", {}), ("svm", {"kernel": "rbf"}), ("logreg", {})],
                         ids=["svm-linear", "svm-rbf", "logreg"])
def test_classic_checkpoints_are_code_free_and_round_trip(pitch_corpus, tmp_path, name, overrides):
    train_run(pitch_corpus.manifest, pitch_corpus.vectors, model=name, output=tmp_path / "r", protocol="loso",
              fold=1, valid_speakers=1, model_settings=overrides,
              train_config=build_train_config({"norm": "global"}, model=name))
    path = tmp_path / "r" / "fold-1" / "checkpoint.pt"
    raw = torch.load(path, weights_only=True)  # tensors and plain data only
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())
    # one log row per C of the grid; the checkpoint keeps the first C with the best validation UA
    log = list(csv.DictReader(open(tmp_path / "r" / "fold-1" / "train_log.csv")))
    assert [float(r["C"]) for r in log] == pytest.approx(list(build_model_config(name, overrides).grid), rel=1e-5)
    best = max(float(r["valid_UA"]) for r in log)
    chosen = next(float(r["C"]) for r in log if float(r["valid_UA"]) == best)
    assert raw["model_config"]["C"] == pytest.approx(chosen, rel=1e-5)
    first = Checkpoint.load(path)
    first.save(tmp_path / "again.pt")
    second = Checkpoint.load(tmp_path / "again.pt")
    x = torch.randn(7, 1, len(first.norm_mean))
    with torch.no_grad():
        a = torch.softmax(first.build_model()(x, torch.ones(7, dtype=torch.long)), -1)
        b = torch.softmax(second.build_model()(x, torch.ones(7, dtype=torch.long)), -1)
    assert torch.equal(a, b)
    result = evaluate_run(tmp_path / "r")
    assert_evaluation_consistent(tmp_path / "r", result)
