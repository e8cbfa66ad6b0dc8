"""Regression targets (``train --target``): every family learns numeric manifest columns, checked and resumable."""

from __future__ import annotations

import csv
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from sertool.errors import ConfigError, ManifestError
from sertool.io.manifest import read_manifest, write_manifest
from sertool.models.checkpoint import Checkpoint
from sertool.training.splits import balanced_groups, make_folds
from sertool.training.targets import parse_targets
from sertool.training.trainer import build_train_config, train_run


def pitch_of(path) -> float:
    """The tone frequency of a pitch-corpus clip (tests/conftest.py ``write_pitch_corpus``: steps 15 and 4 Hz)."""
    s, i = map(int, re.search(r"spk(\d)_(\d)", str(path)).groups())
    return (140.0 if "/low/" in str(path) else 330.0) + 15 * s + 4 * i


def with_targets(manifest: Path, out: Path, **columns) -> Path:
    """``manifest`` with extra columns: name -> function of the utterance (text)."""
    rows = [replace(u, extra={**u.extra, **{k: f(u) for k, f in columns.items()}}) for u in read_manifest(manifest)]
    return write_manifest(rows, out)


@pytest.fixture(scope="module")
def pitched(pitch_corpus, tmp_path_factory) -> Path:
    """The pitch corpus's manifest with ``pitch`` (the tone's Hz) and ``minus`` (-2 x pitch + 1000) columns."""
    return with_targets(pitch_corpus.manifest, tmp_path_factory.mktemp("reg") / "m.csv",
                        pitch=lambda u: f"{pitch_of(u.path):.1f}", minus=lambda u: f"{1000 - 2 * pitch_of(u.path):.1f}")


@pytest.fixture(scope="module")
def cue_frames(pitch_corpus, pitched) -> Path:
    """A frame-level store like the pitch corpus's whose 8 lowest columns are the clip's scaled pitch plus noise."""
    from sertool.store.identity import SourceIdentity
    from sertool.store.reader import FeatureStore
    from sertool.store.writer import StoreWriter

    rng = np.random.default_rng(0)
    path = pitch_corpus.frames.with_name("cue.h5")
    with FeatureStore(pitch_corpus.frames) as real:
        attrs = {k: v for k, v in real.attrs.items() if k not in ("format", "format_version", "sertool_version")}
        with StoreWriter(path, attrs, overwrite=True) as writer:
            for u in read_manifest(pitched):
                x = rng.standard_normal(real[u.id].shape).astype(np.float32)
                x[:, :8] += (pitch_of(u.path) - 250) / 40  # the lowest bands carry the cue
                writer.add(u.id, x, SourceIdentity(1, 1, str(u.path)))
    return path


def _train(manifest, store, model, out, targets=("pitch",), settings=None, **kw):
    config = build_train_config({"norm": "global", "loss": "ccc", **(settings or {})}, model=model)
    return train_run(manifest, store, model=model, output=out, protocol="loso", valid_speakers=1,
                     targets=list(targets), train_config=config, **kw)


def _pooled_ccc(run) -> dict[str, float]:
    from sertool.scoring.regression import evaluate_regression_run

    result = evaluate_regression_run(run)
    return {t: result.folds["pooled"][f"CCC_{t}"] for t in result.labels}


@pytest.mark.parametrize("model,settings,overrides", [("ridge", {}, {}), ("svr", {}, {"kernel": "linear"}),
                                                      ("mlp", {"epochs": 30, "lr": 3e-3}, {})],
                         ids=["ridge", "svr", "mlp"])
def test_utterance_level_models_learn_a_target(pitch_corpus, pitched, tmp_path, model, settings, overrides):
    results = _train(pitched, pitch_corpus.vectors, model, tmp_path / "r", settings=settings,
                     model_settings=overrides)
    assert all(r.score_name == "CCC" for r in results)
    ckpt = Checkpoint.load(tmp_path / "r" / "fold-0" / "checkpoint.pt")
    assert ckpt.is_regression and ckpt.targets == ["pitch"] and ckpt.labels == []
    raw = torch.load(tmp_path / "r" / "fold-0" / "checkpoint.pt", weights_only=True)  # tensors and plain data only
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())
    assert _pooled_ccc(tmp_path / "r")["pitch"] > 0.8


@pytest.mark.parametrize("kernel", ["linear", "rbf"])
def test_the_svr_module_reproduces_sklearn(kernel):
    from sklearn.svm import SVR

    from sertool.models import build_model_config
    from sertool.models.regressors import Svr

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5)).astype(np.float32)
    y = np.stack([x[:, 0] + 0.3 * x[:, 1] ** 2, -x[:, 2]], axis=1)
    config = build_model_config("svr", {"kernel": kernel, "C": 2.0})
    config, state, rows = Svr.fit(x, y, x[:0], y[:0], config=config, num_classes=2)
    model = Svr(config, input_dim=5, num_classes=2)
    model.load_state_dict(state)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)[:, None], torch.ones(60, dtype=torch.long)).numpy()
    reference = [SVR(kernel=kernel, C=2.0, gamma="scale").fit(x, y[:, k]).predict(x) for k in range(2)]
    np.testing.assert_allclose(ours, np.stack(reference, axis=1), atol=1e-4)
    assert rows == []  # C given: nothing chosen on validation


def test_the_logreg_mean_module_reproduces_sklearns_expected_value():
    from sklearn.linear_model import LogisticRegression

    from sertool.models import build_model_config
    from sertool.models.regressors import LogregMean

    rng = np.random.default_rng(1)
    x = rng.standard_normal((90, 4)).astype(np.float32)
    y = np.stack([np.digitize(x[:, 0], [-0.5, 0.5]) * 1.0, (x[:, 1] > 0) * 2.0 - 1], axis=1)  # 3 and 2 levels
    config = build_model_config("logreg_mean", {"C": 1.0})
    config, state, _ = LogregMean.fit(x, y, x[:0], y[:0], config=config, num_classes=2)
    assert config.levels == 3
    model = LogregMean(config, input_dim=4, num_classes=2)
    model.load_state_dict(state)
    with torch.no_grad():
        ours = model(torch.from_numpy(x)[:, None], torch.ones(90, dtype=torch.long)).numpy()
    reference = [LogisticRegression(C=1.0, max_iter=2000).fit(x, y[:, k]) for k in range(2)]
    expected = np.stack([m.predict_proba(x) @ m.classes_ for m in reference], axis=1)
    np.testing.assert_allclose(ours, expected, atol=1e-4)


@pytest.mark.parametrize("name", ["svr", "ridge", "logreg_mean"])
def test_the_output_map_gives_validation_predictions_the_training_spread(name):
    from sertool.models import build_model_config, model_spec

    rng = np.random.default_rng(2)
    x = rng.standard_normal((160, 6)).astype(np.float32)
    y = np.digitize(x[:, :1] + 0.8 * rng.standard_normal((160, 1)), [-0.6, 0.6]).astype(np.float64)
    y = (y - y[:120].mean()) / y[:120].std()  # standardised on the training rows, as train does
    cls = model_spec(name).cls

    def outputs(**settings):
        config = build_model_config(name, settings)
        config, state, _ = cls.fit(x[:120], y[:120], x[120:], y[120:], config=config, num_classes=1)
        model = cls(config, input_dim=6, num_classes=1)
        model.load_state_dict(state)
        with torch.no_grad():
            return model(torch.from_numpy(x)[:, None], torch.ones(160, dtype=torch.long)).numpy()[:, 0]

    raw, mapped = outputs(rescale=False), outputs()
    assert raw[120:].std() < 0.9  # a least-squares or probability-mean fit shrinks its spread
    assert mapped[120:].mean() == pytest.approx(0, abs=1e-4) and mapped[120:].std() == pytest.approx(1, rel=1e-3)
    np.testing.assert_allclose(mapped, (raw - raw[120:].mean()) / raw[120:].std(), atol=1e-4)  # one affine map
    refit = outputs(refit=True)
    assert not np.allclose(refit, mapped, atol=1e-3)  # fitted again with the validation rows


def test_logreg_mean_refuses_a_continuous_target(pitch_corpus, pitched, tmp_path):
    with pytest.raises(ConfigError, match="logreg_mean: target 1 has .* distinct values .* use svr or ridge"):
        _train(pitched, pitch_corpus.vectors, "logreg_mean", tmp_path / "r", fold=0, model_settings={"max_values": 4})


def test_logreg_mean_learns_ordinal_levels(pitch_corpus, pitched, tmp_path):
    levels = with_targets(pitched, tmp_path / "levels.csv", level=lambda u: "0" if "/low/" in str(u.path) else "2")
    _train(levels, pitch_corpus.vectors, "logreg_mean", tmp_path / "r", targets=("level",))
    assert _pooled_ccc(tmp_path / "r")["level"] > 0.8


def test_a_frame_level_network_learns_a_target(cue_frames, pitched, tmp_path):
    settings = {"epochs": 12, "batch_size": 4, "lr": 3e-3, "selection": "best", "specaugment": False}
    _train(pitched, cue_frames, "light_sernet", tmp_path / "r", settings=settings, fold=0)
    log = list(csv.DictReader(open(tmp_path / "r" / "fold-0" / "train_log.csv")))
    assert "valid_CCC" in log[0] and "valid_UA" not in log[0] and len(log) == 12
    best = max(range(12), key=lambda k: float(log[k]["valid_CCC"]))  # the first epoch of the highest valid CCC
    assert Checkpoint.load(tmp_path / "r" / "fold-0" / "checkpoint.pt").metrics["epoch"] == best + 1
    assert _pooled_ccc(tmp_path / "r")["pitch"] > 0.8


def test_classic_regressors_choose_their_value_on_validation_ccc(pitch_corpus, pitched, tmp_path):
    _train(pitched, pitch_corpus.vectors, "ridge", tmp_path / "r", fold=1)
    log = list(csv.DictReader(open(tmp_path / "r" / "fold-1" / "train_log.csv")))
    best = max(float(r["valid_CCC"]) for r in log)
    chosen = next(float(r["alpha"]) for r in log if float(r["valid_CCC"]) == best)
    assert Checkpoint.load(tmp_path / "r" / "fold-1" / "checkpoint.pt").model_config["alpha"] == pytest.approx(chosen)


def test_two_targets_are_learnt_and_stored_with_their_scale(pitch_corpus, pitched, tmp_path):
    _train(pitched, pitch_corpus.vectors, "ridge", tmp_path / "r", targets=("pitch", "minus"))
    ckpt = Checkpoint.load(tmp_path / "r" / "fold-0" / "checkpoint.pt")
    assert ckpt.targets == ["pitch", "minus"] and len(ckpt.target_mean) == 2
    split = [r["id"] for r in csv.DictReader(open(tmp_path / "r" / "fold-0" / "split.csv")) if r["role"] == "train"]
    train_pitch = [pitch_of(u.path) for u in read_manifest(pitched) if u.id in split]
    assert ckpt.target_mean[0] == pytest.approx(np.mean(train_pitch))  # the fold's training rows' statistics
    assert ckpt.target_std[1] == pytest.approx(2 * np.std(train_pitch))
    ccc = _pooled_ccc(tmp_path / "r")
    assert ccc["pitch"] > 0.8 and ccc["minus"] > 0.8


def test_a_regression_network_resumes_to_the_same_weights(pitch_corpus, pitched, tmp_path):
    settings = {"epochs": 4, "selection": "last"}
    _train(pitched, pitch_corpus.vectors, "mlp", tmp_path / "whole", settings=settings, fold=0)

    def interrupt_after_epoch_2(message):
        if "epoch 2:" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _train(pitched, pitch_corpus.vectors, "mlp", tmp_path / "cut", settings=settings, fold=0,
               log=interrupt_after_epoch_2)
    lines = []
    _train(pitched, pitch_corpus.vectors, "mlp", tmp_path / "cut", settings=settings, fold=0, log=lines.append)
    assert any("resuming after epoch 2" in line for line in lines)
    a = Checkpoint.load(tmp_path / "whole" / "fold-0" / "checkpoint.pt")
    b = Checkpoint.load(tmp_path / "cut" / "fold-0" / "checkpoint.pt")
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert (a.target_mean, a.target_std) == (b.target_mean, b.target_std)
    log = list(csv.DictReader(open(tmp_path / "cut" / "fold-0" / "train_log.csv")))
    assert [r["epoch"] for r in log] == ["1", "2", "3", "4"] and "valid_CCC" in log[0]


def test_changed_target_values_are_another_run(pitch_corpus, pitched, tmp_path):
    _train(pitched, pitch_corpus.vectors, "ridge", tmp_path / "r", fold=0)
    other = with_targets(pitched, tmp_path / "other.csv", pitch=lambda u: f"{pitch_of(u.path) + 1:.1f}")
    with pytest.raises(Exception, match="another|other settings"):
        _train(other, pitch_corpus.vectors, "ridge", tmp_path / "r", fold=0)


@pytest.mark.parametrize("cell,message", [("", "column 'pitch' is empty"), ("loud", "holds 'loud', not a number"),
                                          ("nan", "not a number")])
def test_a_row_without_a_number_is_named(pitch_corpus, pitched, tmp_path, cell, message):
    rows = read_manifest(pitched)
    rows[4] = replace(rows[4], extra={**rows[4].extra, "pitch": cell})
    bad = write_manifest(rows, tmp_path / "bad.csv")
    with pytest.raises(ManifestError, match=rf"bad.csv: row 5 \(id '{re.escape(rows[4].id)}', line 6\).*{message}"):
        _train(bad, pitch_corpus.vectors, "ridge", tmp_path / "r")
    assert not (tmp_path / "r").exists()  # nothing written before the check


def test_bad_regression_settings_are_one_line_errors(pitch_corpus, pitched, tmp_path):
    with pytest.raises(ManifestError, match="no column 'arousal' for --target .*extra columns: minus, pitch"):
        _train(pitched, pitch_corpus.vectors, "ridge", tmp_path / "a", targets=("arousal",))
    with pytest.raises(ConfigError, match="model 'svm' does not do regression.*mlp.*ridge.*svr"):
        _train(pitched, pitch_corpus.vectors, "svm", tmp_path / "b")
    with pytest.raises(ConfigError, match="--loss ce is a loss of classes"):
        _train(pitched, pitch_corpus.vectors, "mlp", tmp_path / "c", settings={"loss": "ce"})
    with pytest.raises(ConfigError, match="--balance sampler balances classes"):
        _train(pitched, pitch_corpus.vectors, "mlp", tmp_path / "d", settings={"balance": "sampler"})
    with pytest.raises(ConfigError, match="model 'ridge' does not do classification.*logreg"):
        _train(pitched, pitch_corpus.vectors, "ridge", tmp_path / "e", targets=())  # no --target: classes
    with pytest.raises(ConfigError, match="--loss ccc is a loss of numeric targets: add --target"):
        _train(pitched, pitch_corpus.vectors, "mlp", tmp_path / "f", targets=())
    with pytest.raises(ConfigError, match="given twice"):
        parse_targets(["a,b", "a"])
    assert parse_targets(["arousal,valence", "dominance"]) == ["arousal", "valence", "dominance"]


def test_a_constant_target_is_refused_before_training(pitch_corpus, pitched, tmp_path):
    flat = with_targets(pitched, tmp_path / "flat.csv", pitch=lambda u: "3")
    with pytest.raises(ConfigError, match="target pitch has one value in every training row"):
        _train(flat, pitch_corpus.vectors, "ridge", tmp_path / "r")


def test_the_api_defaults_a_regression_loss_to_ccc(pitch_corpus, pitched, tmp_path):
    from sertool import api

    assert api.train_setup("mlp", regression=True).train_config.loss == "ccc"
    assert api.train_setup("mlp", regression=True, settings={"loss": "mse"}).train_config.loss == "mse"
    results = api.train(pitched, pitch_corpus.vectors, output=tmp_path / "r", model="ridge", protocol="loso",
                        fold=0, valid_speakers=1, targets="pitch", settings={"norm": "global"})
    assert results[0].score_name == "CCC"
    assert api.train_setup("mlp").train_config.loss == "ce"


# --------------------------------------------------------------------------- speaker-kfold balance
def test_equal_counts_keep_the_round_robin_folds():
    names = [f"s{k}" for k in range(10)]
    for folds in (2, 3, 4, 5):
        assert balanced_groups(names, dict.fromkeys(names, 12), folds) == [sorted(names[i::folds]) for i in range(folds)]


def test_speaker_kfold_balances_file_counts():
    counts = {"a": 50, "b": 10, "c": 10, "d": 10, "e": 10, "f": 10}
    groups = balanced_groups(list(counts), counts, 2)
    assert groups == [["a"], ["b", "c", "d", "e", "f"]]  # round robin would give 70 against 30 files
    utts = [read_like(s, k) for s, n in counts.items() for k in range(n)]
    folds = make_folds(utts, "speaker-kfold", folds=2, valid_speakers=0)
    assert sorted(len(f.test) for f in folds) == [50, 50]


def read_like(speaker: str, k: int):
    from sertool.io.manifest import Utterance

    return Utterance(id=f"{speaker}{k}", path=Path(f"/x/{speaker}{k}.wav"), label="a" if k % 2 else "b",
                     speaker=speaker)
