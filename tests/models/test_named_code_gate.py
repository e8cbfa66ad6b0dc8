"""One rule for code named by a config or a checkpoint: nothing runs or loads without --trust-code.

``extract`` (a TOML ``--config`` or ``--set provider=python``), ``predict`` on an ssl checkpoint (its
Hugging Face folder), embedding functions of the wrong signature, and damaged encoder folders.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import sertool
from sertool.cli.main import cli
from sertool.errors import ConfigError, UntrustedCodeError
from sertool.features import build_extractor
from sertool.models.checkpoint import Checkpoint
from sertool.store.reader import FeatureStore
from tests.conftest import make_tiny_ssl, write_audio

HOOK = '''
from pathlib import Path
import numpy as np
Path(__file__).with_suffix(".imported").write_text("imported")

def embed(samples, sample_rate):
    return np.array([samples.mean(), samples.std(), float(sample_rate)])
'''


def error_line(result) -> str:
    """The one error line of a failed command (asserts there is exactly one and no traceback)."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


@pytest.fixture
def hook(tmp_path, monkeypatch) -> tuple[str, Path]:
    """A module of its own name (``pkg.mod:fn``) on sys.path whose import leaves a marker file."""
    name = f"sertool_hook_{tmp_path.name.replace('-', '_')}"
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / f"{name}.py").write_text(HOOK)
    monkeypatch.syspath_prepend(str(tmp_path / "hooks"))
    return f"{name}:embed", tmp_path / "hooks" / f"{name}.imported"


@pytest.fixture
def manifest(tmp_path) -> Path:
    rows = [(f"u{k}", write_audio(tmp_path / "audio" / f"u{k}.wav", seconds=0.5, freq=200 + 50 * k)) for k in range(2)]
    path = tmp_path / "m.csv"
    path.write_text("id,path,label,speaker\n" + "".join(f"{i},{p},a,s\n" for i, p in rows))
    return path


def test_extract_runs_a_function_named_by_a_config_only_with_trust_code(tmp_path, hook, manifest):
    spec, marker = hook
    config = tmp_path / "hook.toml"
    config.write_text(f'provider = "python"\npath = "{spec}"\n')
    for named in (["--config", str(config)], ["--set", "provider=python", "--set", f"path={spec}"]):
        args = ["extract", str(manifest), "-f", "embedding", "-o", str(tmp_path / "feats"), *named]
        line = error_line(CliRunner().invoke(cli, args))
        assert spec in line and "--trust-code" in line
        assert not marker.exists() and spec.split(":")[0] not in sys.modules  # never imported
        assert not list(tmp_path.glob("feats/*.h5"))  # no store
    with pytest.raises(UntrustedCodeError, match=spec):
        sertool.extract(manifest, features="embedding", output=tmp_path / "feats", config=config)
    result = CliRunner().invoke(cli, [*args, "--trust-code"])
    assert result.exit_code == 0, result.output
    assert marker.exists()
    with FeatureStore(result.stdout.strip().splitlines()[-1]) as store:
        assert len(store) == 2 and store.dim == 3


def test_an_ssl_checkpoint_loads_its_encoder_folder_only_with_trust_code(tmp_path):
    pytest.importorskip("transformers")
    folder = make_tiny_ssl(tmp_path / "encoder", "wav2vec2")
    features = build_extractor("ssl", {"model": str(folder), "pooling": "mean"}).config.to_dict()
    path = Checkpoint(model="logreg", model_config={"C": 1.0}, feature_set="ssl", feature_config=features,
                      labels=["a", "b"], norm_mean=torch.zeros(32), norm_std=torch.ones(32), train_config={},
                      state_dict={"temperature": torch.tensor(1.0), "coef": torch.randn(2, 32),
                                  "intercept": torch.zeros(2)}).save(tmp_path / "ssl.pt")
    wav = write_audio(tmp_path / "x.wav", seconds=1.0)
    line = error_line(CliRunner().invoke(cli, ["predict", str(path), str(wav)]))
    assert str(path) in line and str(folder) in line and "--trust-code" in line
    with pytest.raises(UntrustedCodeError, match="Hugging Face model folder"):
        sertool.predict(path, [wav])
    result = CliRunner().invoke(cli, ["predict", str(path), str(wav), "--trust-code", "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 0, result.output
    assert [r["error"] for r in csv.DictReader(open(tmp_path / "p.csv"))] == [""]


def _damaged_folder(tmp_path: Path, damage: str) -> Path:
    folder = tmp_path / damage
    if damage == "missing":
        return folder
    if damage == "a file":
        folder.write_text("not a folder")
        return folder
    make_tiny_ssl(folder, "wav2vec2")
    config = json.loads((folder / "config.json").read_text())
    text = {"broken json": "{\"model_type\": ", "a list": "[1, 2]",
            "remote code": json.dumps({**config, "auto_map": {"AutoModel": "evil.Model"}}),
            "unknown type": json.dumps({**config, "model_type": "evil"}),
            "bad size": json.dumps({**config, "hidden_size": "32"}),
            "bad kernels": json.dumps({**config, "conv_kernel": [10, "x"]})}[damage]
    (folder / "config.json").write_text(text)
    return folder


@pytest.mark.parametrize("damage, words", [
    ("missing", "model folder not found"), ("a file", "not a folder"), ("broken json", "not readable JSON"),
    ("a list", "not a JSON object"), ("remote code", "auto_map"), ("unknown type", "model_type 'evil'"),
    ("bad size", "'hidden_size'"), ("bad kernels", "'conv_kernel'"),
])
def test_a_damaged_encoder_folder_is_one_line_naming_it(tmp_path, manifest, damage, words):
    pytest.importorskip("transformers")
    folder = _damaged_folder(tmp_path, damage)
    with pytest.raises(ConfigError, match=words):
        build_extractor("ssl", {"model": str(folder)})
    line = error_line(CliRunner().invoke(cli, ["extract", str(manifest), "-f", "ssl", "-o", str(tmp_path / "feats"),
                                               "--set", f"model={folder}"]))
    assert str(folder) in line and words in line


@pytest.mark.parametrize("spec, words", [
    ("os.path:basename", "must take (samples, sample_rate)"),
    ("tests.embedding_hook:broken", "failed on a second of noise"),
    ("json:loads", "must take (samples, sample_rate)"),
])
def test_an_embedding_function_that_cannot_be_used_is_one_line(tmp_path, manifest, spec, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        build_extractor("embedding", {"provider": "python", "path": spec}).dim
    line = error_line(CliRunner().invoke(cli, ["extract", str(manifest), "-f", "embedding", "-o",
                                               str(tmp_path / "feats"), "--set", "provider=python",
                                               "--set", f"path={spec}", "--trust-code"]))
    assert spec in line and words in line
