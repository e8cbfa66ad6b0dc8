"""training/trainer.py: the store a run trains on must suit the model, and a run folder keeps its store."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.errors import ConfigError, SertoolError
from sertool.extraction.pipeline import extract_manifest
from sertool.training.trainer import TrainConfig, train_run
from tests.conftest import FAST_TRAINING


def test_kind_of_store_must_match_the_model(pitch_corpus, tmp_path):
    _, manifest, frames, vectors = pitch_corpus
    for model, store, hint in (("light_sernet", vectors, "svm"), ("svm", frames, "light_sernet")):
        result = CliRunner().invoke(cli, ["train", str(manifest), str(store), "-m", model, "-o",
                                          str(tmp_path / model), "--protocol", "loso", "--valid-speakers", "1"])
        assert result.exit_code == 1
        assert "-level store" in result.output and hint in result.output, result.output
    with pytest.raises(ConfigError, match="frame-level store"):
        train_run(manifest, vectors, model="mlp", output=tmp_path / "u", protocol="loso",
                  valid_speakers=1, train_config=TrainConfig(**FAST_TRAINING, norm="utterance"))


def test_a_run_folder_refuses_another_store(pitch_corpus, tmp_path):
    _, manifest, frames, _ = pitch_corpus
    other = extract_manifest(manifest, features="mfcc", output=tmp_path / "feats").store_path
    one_epoch = TrainConfig(**{**FAST_TRAINING, "epochs": 1})
    common = dict(model="light_sernet", output=tmp_path / "r", protocol="loso", fold=0, valid_speakers=1,
                  train_config=one_epoch)
    train_run(manifest, frames, **common)
    before = (tmp_path / "r" / "run.json").read_text()
    with pytest.raises(SertoolError, match="another store"):
        train_run(manifest, other, **common)
    assert (tmp_path / "r" / "run.json").read_text() == before  # evaluate still reads the right store
    (tmp_path / "r" / "run.json").unlink()  # even without run.json, the fold's fingerprint knows its features
    with pytest.raises(SertoolError, match="other settings, features or data"):
        train_run(manifest, other, **common)
