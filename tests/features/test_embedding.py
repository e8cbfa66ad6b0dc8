"""Speaker-embedding hooks: TorchScript (waveform and fbank), Python entry point, resemblyzer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sertool.errors import ConfigError, FeatureError
from sertool.features import build_extractor
from tests.conftest import tone


class _WaveNet(torch.nn.Module):
    def forward(self, wav):  # (1, N) -> (1, 3)
        return torch.stack([wav.mean(), wav.abs().max(), wav.std()]).unsqueeze(0)


class _FbankNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(80, 8)

    def forward(self, fbank):  # (1, T, 80) -> (1, 8)
        return self.proj(fbank.mean(dim=1))


def test_torchscript_waveform_hook(tmp_path):
    path = tmp_path / "wave.pt"
    torch.jit.script(_WaveNet()).save(str(path))
    extractor = build_extractor("embedding", {"provider": "torchscript", "path": str(path)})
    y = tone(1.0)
    out = extractor.extract(y, 16000)
    assert extractor.dim == 3 and out.shape == (1, 3)
    np.testing.assert_allclose(out[0], [y.mean(), np.abs(y).max(), y.std(ddof=1)], rtol=1e-4, atol=1e-6)


def test_torchscript_fbank_hook_and_normalisation(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "fbank.pt"
    torch.jit.script(_FbankNet()).save(str(path))
    extractor = build_extractor("embedding", {"provider": "torchscript", "path": str(path), "input": "fbank",
                                              "normalize": True})
    out = extractor.extract(tone(1.0), 16000)
    assert out.shape == (1, 8) and abs(np.linalg.norm(out) - 1) < 1e-5
    fbank = build_extractor("logmel", {"n_mels": 80, "n_fft": 512}).extract(tone(1.0), 16000)
    with torch.no_grad():
        expected = torch.jit.load(str(path))(torch.from_numpy(fbank[None])).numpy()[0]
    np.testing.assert_allclose(out[0], expected / np.linalg.norm(expected), rtol=1e-4)


def test_python_entry_point_hook():
    extractor = build_extractor("embedding", {"provider": "python", "path": "tests.embedding_hook:energy_profile"})
    y = tone(1.0)
    np.testing.assert_allclose(extractor.extract(y, 16000)[0],
                               [np.sqrt(np.mean(q ** 2)) for q in np.array_split(y, 4)], rtol=1e-5)
    failing = build_extractor("embedding", {"provider": "python", "path": "tests.embedding_hook:broken"})
    with pytest.raises(FeatureError, match="this hook always fails"):
        failing.extract(y, 16000)


def test_hook_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs path"):
        build_extractor("embedding", {"provider": "torchscript"})
    with pytest.raises(ConfigError, match="must be package.module:function"):
        build_extractor("embedding", {"provider": "python", "path": "nocolon"}).dim
    (tmp_path / "junk.pt").write_text("not a model")
    with pytest.raises(ConfigError, match="not a loadable TorchScript model"):
        build_extractor("embedding", {"provider": "torchscript", "path": str(tmp_path / "junk.pt")}).dim


def test_resemblyzer_speaker_encoder():
    pytest.importorskip("resemblyzer")
    extractor = build_extractor("resemblyzer")
    a = extractor.extract(tone(2.0, freq=120), 16000)
    b = extractor.extract(tone(2.0, freq=300), 16000)
    assert a.shape == (1, 256) and abs(np.linalg.norm(a) - 1) < 1e-3
    assert not np.allclose(a, b)
