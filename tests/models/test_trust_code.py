"""Checkpoints that name code (a Python hook, a TorchScript or ONNX file) are refused without --trust-code."""

from __future__ import annotations

import sys

import pytest
import torch
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.errors import SertoolError
from sertool.models.checkpoint import Checkpoint
from tests.conftest import write_audio


def _hooked_checkpoint(feature_config: dict) -> Checkpoint:
    """A logreg checkpoint over 4-dim embedding features described by ``feature_config``."""
    return Checkpoint(model="logreg", model_config={"C": 1.0}, feature_set="embedding", feature_config=feature_config,
                      labels=["a", "b"], norm_mean=torch.zeros(4), norm_std=torch.ones(4), train_config={},
                      state_dict={"temperature": torch.tensor(1.0), "coef": torch.zeros(2, 4),
                                  "intercept": torch.zeros(2)})


def test_a_python_hook_is_neither_imported_nor_run(tmp_path):
    wav = write_audio(tmp_path / "x.wav", seconds=1.0)
    evil = _hooked_checkpoint({"type": "embedding", "provider": "python", "path": "antigravity:geohash"})
    evil.save(tmp_path / "evil.pt")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "evil.pt"), str(wav), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and "antigravity:geohash" in result.output and "--trust-code" in result.output
    assert "antigravity" not in sys.modules
    fused = Checkpoint(model="fusion", model_config={"weights": [1.0]}, feature_set="fusion", feature_config={},
                       labels=["a", "b"], norm_mean=torch.zeros(0), norm_std=torch.zeros(0), train_config={},
                       state_dict={}, members=[Checkpoint.load(tmp_path / "evil.pt").payload()])
    fused.save(tmp_path / "fused.pt")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "fused.pt"), str(wav), "-o", str(tmp_path / "q.csv")])
    assert result.exit_code == 1 and "member 0" in result.output and "antigravity" not in sys.modules


@pytest.mark.parametrize("provider", ["torchscript", "onnx"])
def test_a_model_file_hook_needs_trust_code(tmp_path, provider):
    model_file = str(tmp_path / "m.bin")
    ckpt = _hooked_checkpoint({"type": "embedding", "provider": provider, "path": model_file})
    (reference,) = ckpt.code_references()
    assert reference.startswith(f"{provider} ") and model_file in reference
    with pytest.raises(SertoolError, match="--trust-code"):
        ckpt.check_no_code("c.pt")
    ckpt.check_no_code("c.pt", trust_code=True)  # trusted: no error
