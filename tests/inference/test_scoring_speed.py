"""The scoring path's speed-ups keep its scores: folded batch norms, the bundled model's ONNX export, BLAS threads."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from sertool.inference.bundled import BUNDLED, bundled_export, default_checkpoint
from sertool.inference.export import ExportedModel, fit_length, load_scoring_model
from sertool.inference.folding import fold_batch_norms
from sertool.models.checkpoint import Checkpoint
from sertool.models.common import fix_length
from sertool.runtime.process import blas_threads
from tests.conftest import REPO

pytest.importorskip("onnxruntime")


def test_folded_batch_norms_score_as_the_model_did():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 3, 1), nn.BatchNorm2d(3))
    for norm in (model[1], model[4]):
        norm.running_mean.uniform_(-1, 1)
        norm.running_var.uniform_(0.5, 2)
        norm.weight.data.uniform_(0.5, 2)
        norm.bias.data.uniform_(-1, 1)
    model.eval()
    x = torch.randn(2, 1, 8, 9)
    expected = model(x)
    folded = fold_batch_norms(model)
    assert [type(m).__name__ for m in folded].count("BatchNorm2d") == 0
    torch.testing.assert_close(folded(x), expected, atol=1e-5, rtol=1e-5)


def test_a_training_batch_norm_is_not_folded():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    assert isinstance(fold_batch_norms(model)[1], nn.BatchNorm2d)


@pytest.mark.parametrize("total", [50, 184, 300, 301])
def test_fit_length_is_the_models_fix_length(total):
    window = np.random.default_rng(total).standard_normal((total, 5)).astype(np.float32)
    expected = fix_length(torch.from_numpy(window)[None], torch.tensor([total]), 184)[0].numpy()
    np.testing.assert_array_equal(fit_length(window, 184), expected)


def test_the_bundled_model_scores_through_its_export_as_through_torch():
    checkpoint = default_checkpoint("ravdess")
    fast = load_scoring_model(checkpoint, device="cpu")
    assert isinstance(fast, ExportedModel) and fast.input_frames == 184
    assert not isinstance(load_scoring_model(checkpoint, device="auto"), ExportedModel)  # a GPU may be asked for
    import sertool

    clips = sorted((REPO / "examples").rglob("*.flac"))[:4]
    slow = sertool.predict(Checkpoint.load(checkpoint), clips)
    quick = sertool.predict("ravdess", clips)
    np.testing.assert_allclose(quick.probabilities, slow.probabilities, atol=1e-5)


def test_a_stale_export_is_not_used(tmp_path, monkeypatch):
    copy = tmp_path / "light_sernet_ravdess.pt"
    shutil.copy(BUNDLED["ravdess"], copy)
    shutil.copy(BUNDLED["ravdess"].with_suffix(".onnx"), copy.with_suffix(".onnx"))
    assert bundled_export(copy) is None  # not a bundled file
    with open(copy, "ab") as fh:
        fh.write(b"\0")  # another checkpoint than the export was written from
    monkeypatch.setitem(BUNDLED, "ravdess", copy.resolve())
    assert bundled_export(copy) == copy.with_suffix(".onnx")
    assert not isinstance(load_scoring_model(copy, device="cpu"), ExportedModel)


def test_predict_with_the_bundled_model_does_not_import_torch(tmp_path):
    clip = sorted((REPO / "examples").rglob("*.flac"))[0]
    code = ("import sys; from sertool.inference.predict import predict_files, checkpoint_path; "
            f"predict_files(checkpoint_path('default'), [{str(clip)!r}], {str(tmp_path / 'p.csv')!r}); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-500:]
    assert (tmp_path / "p.csv").read_text().count("\n") == 2


def test_blas_threads_limits_numpys_openblas():
    from threadpoolctl import threadpool_info

    def openblas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["internal_api"] == "openblas"]

    if not openblas_threads():
        pytest.skip("numpy does not use OpenBLAS here")
    with blas_threads(1):
        assert openblas_threads() == [1] * len(openblas_threads())
