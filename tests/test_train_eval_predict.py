"""train -> evaluate -> predict end to end on a small generated corpus with speakers."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from sertool.models.checkpoint import Checkpoint, CheckpointError
from sertool.cli.main import cli
from sertool.errors import ConfigError, StoreError
from sertool.scoring.evaluate import evaluate_run
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import write_manifest
from sertool.corpora import folder
from sertool.metrics import confusion, scores
from sertool.io.report import RunReport
from sertool.training.trainer import TrainConfig, train_run
from tests.conftest import assert_evaluation_consistent, preset_overrides, tone, write_audio, write_pitch_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """4 speakers x 2 classes (low vs high pitch) x 4 clips of 1 s; manifest + lightsernet store."""
    root = tmp_path_factory.mktemp("synth")
    write_pitch_corpus(root / "audio", speakers=4, clips=4, seconds=1.0, speaker_step=12, clip_step=3)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    rows = [type(r)(**{**r.__dict__, "gender": "mf"[int(r.speaker[-1]) % 2]}) for r in rows]
    manifest = write_manifest(rows, root / "m.csv")
    store = extract_manifest(manifest, features="lightsernet_mfcc", output=root / "feats").store_path
    return root, manifest, store


@pytest.fixture(scope="module")
def utterance_store(corpus):
    """An utterance-level store (mfcc_stats, 80 values per clip) of the same corpus."""
    root, manifest, _ = corpus
    return extract_manifest(manifest, features="mfcc_stats", output=root / "feats").store_path


FAST = dict(epochs=6, batch_size=8, lr=3e-3, patience=10)


@pytest.mark.slow
def test_train_evaluate_predict_cli(corpus, tmp_path):
    root, manifest, store = corpus
    run = tmp_path / "run"
    args = ["train", manifest, store, "-o", run, "--protocol", "loso", "--valid-speakers", "1",
            "--epochs", "6", "--batch-size", "8", "--lr", "3e-3", "--norm", "global"]
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    for k in range(4):
        fold = run / f"fold-{k}"
        assert {p.name for p in fold.iterdir()} >= {"checkpoint.pt", "train_log.csv", "split.csv", "config.json"}
        log = list(csv.DictReader(open(fold / "train_log.csv")))
        assert [int(r["epoch"]) for r in log] == list(range(1, 7))
        assert set(log[0]) == {"epoch", "train_loss", "valid_loss", "valid_UA", "valid_WA", "lr", "seconds"}
        roles = {}
        for row in csv.DictReader(open(fold / "split.csv")):
            roles.setdefault(row["role"], set()).add(row["speaker"])
        assert roles["test"] == {f"spk{k}"} and not (roles["train"] | roles["valid"]) & roles["test"]
        assert len(roles["valid"]) == 1 and not roles["valid"] & roles["train"]
    # a finished run is skipped on rerun
    again = CliRunner().invoke(cli, [str(a) for a in args])
    assert again.exit_code == 0 and again.output.count("already finished") == 4

    ev = CliRunner().invoke(cli, ["evaluate", str(run)])
    assert ev.exit_code == 0, ev.output
    assert {"metrics.csv", "confusion.csv", "predictions.csv", "confusion.png"} <= {p.name for p in run.iterdir()}
    metrics = {(r["fold"], r["metric"]): float(r["value"]) for r in csv.DictReader(open(run / "metrics.csv"))}
    preds = list(csv.DictReader(open(run / "predictions.csv")))
    assert len(preds) == 32 and {r["fold"] for r in preds} == {"0", "1", "2", "3"}
    labels = ["high", "low"]
    truth = [labels.index(r["label"]) for r in preds]
    guess = [labels.index(r["predicted"]) for r in preds]
    pooled = scores(confusion(np.array(truth), np.array(guess), 2))
    assert metrics[("pooled", "UA")] == pytest.approx(pooled["UA"], abs=1e-6)
    assert metrics[("pooled", "WA")] == pytest.approx(pooled["WA"], abs=1e-6)
    assert pooled["UA"] > 0.75  # pitch classes are easy: a model that learned nothing scores 0.5

    out = tmp_path / "pred.csv"
    pr = CliRunner().invoke(cli, ["predict", str(run / "fold-0" / "checkpoint.pt"), str(root / "audio" / "low"),
                                  "-o", str(out)])
    assert pr.exit_code == 0, pr.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 16 and all(r["error"] == "" for r in rows)
    assert set(rows[0]) == {"path", "predicted", "confidence", "p_high", "p_low", "duration", "flags", "error"}
    assert all(abs(float(r["p_high"]) + float(r["p_low"]) - 1) < 1e-3 for r in rows)


@pytest.mark.slow
def test_interrupted_training_resumes_to_the_same_model(corpus, tmp_path):
    _, manifest, store = corpus
    config = TrainConfig(**FAST, seed=5)
    common = dict(model="light_sernet", protocol="loso", fold=0, valid_speakers=1, train_config=config)
    train_run(manifest, store, output=tmp_path / "whole", **common)

    def interrupt_after_epoch_3(message):
        if "epoch 3:" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(manifest, store, output=tmp_path / "cut", log=interrupt_after_epoch_3, **common)
    assert not (tmp_path / "cut" / "fold-0" / "checkpoint.pt").exists()
    messages = []
    train_run(manifest, store, output=tmp_path / "cut", log=messages.append, **common)
    assert any("resuming after epoch 3" in m for m in messages)
    epochs = [int(r["epoch"]) for r in csv.DictReader(open(tmp_path / "cut" / "fold-0" / "train_log.csv"))]
    assert epochs == list(range(1, 7))
    a = Checkpoint.load(tmp_path / "whole" / "fold-0" / "checkpoint.pt")
    b = Checkpoint.load(tmp_path / "cut" / "fold-0" / "checkpoint.pt")
    for key in a.state_dict:
        torch.testing.assert_close(a.state_dict[key], b.state_dict[key])
    assert a.metrics == b.metrics


def test_normalisation_uses_training_utterances_only(corpus, tmp_path):
    _, manifest, store = corpus
    from sertool.training.data import normalisation_stats
    from sertool.store.reader import FeatureStore
    from sertool.training.runs import read_split

    train_run(manifest, store, output=tmp_path / "r", model="light_sernet", protocol="loso", fold=1,
              valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1}))
    ckpt = Checkpoint.load(tmp_path / "r" / "fold-1" / "checkpoint.pt")
    with FeatureStore(store) as s:
        mean, std = normalisation_stats(s, read_split(tmp_path / "r" / "fold-1" / "split.csv")["train"])
        everything, _ = normalisation_stats(s, s.keys())
    np.testing.assert_allclose(ckpt.norm_mean.numpy(), mean, rtol=1e-6)
    assert not np.allclose(mean, everything)


def test_checkpoint_refuses_code_and_incomplete_files(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "sertool-checkpoint", "x": Payload()}, evil, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="refused to load"):
        Checkpoint.load(evil)
    partial = tmp_path / "partial.pt"
    torch.save({"format": "sertool-checkpoint", "format_version": 1, "model": "light_sernet"}, partial)
    with pytest.raises(CheckpointError, match="lacks field\\(s\\) model_config"):
        Checkpoint.load(partial)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        Checkpoint.load(tmp_path / "none.pt")


def test_evaluate_refuses_a_store_with_other_features(corpus, tmp_path):
    _, manifest, store = corpus
    train_run(manifest, store, output=tmp_path / "r", model="light_sernet", protocol="loso", fold=0,
              valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1}))
    other = extract_manifest(manifest, features="lightsernet_mfcc", output=tmp_path / "f2",
                             settings={"hop_ms": 10.0}).store_path
    with pytest.raises(StoreError, match=r"differ from the checkpoint's lightsernet_mfcc"):
        evaluate_run(tmp_path / "r", manifest, other)


def test_predict_on_a_messy_folder(corpus, tmp_path):
    root, manifest, store = corpus
    train_run(manifest, store, output=tmp_path / "r", model="light_sernet", protocol="loso", fold=0,
              valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1}))
    ckpt = str(tmp_path / "r" / "fold-0" / "checkpoint.pt")
    messy = tmp_path / "messy"
    write_audio(messy / "good1.wav", seconds=1.0)
    write_audio(messy / "sub" / "good2.flac", seconds=2.5, freq=300)
    sf.write(messy / "stereo44k.wav", tone(2.0, 44100, channels=2), 44100)
    sf.write(messy / "long30s.wav", np.tile(tone(1.0), 30), 16000)
    (messy / "empty.wav").write_bytes(b"")
    (messy / "text.wav").write_text("just text, renamed\n" * 10)
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(cli, ["predict", ckpt, str(messy), "-o", str(out)])
    assert result.exit_code == 3, result.output
    rows = {Path(r["path"]).name: r for r in csv.DictReader(open(out))}
    assert set(rows) == {"good1.wav", "good2.flac", "stereo44k.wav", "long30s.wav", "empty.wav", "text.wav"}
    for name in ("good1.wav", "good2.flac", "stereo44k.wav", "long30s.wav"):
        assert rows[name]["error"] == "" and rows[name]["predicted"] in ("high", "low")
    assert float(rows["long30s.wav"]["duration"]) == pytest.approx(30.0)
    assert float(rows["stereo44k.wav"]["duration"]) == pytest.approx(2.0, abs=1e-3)
    assert "empty file" in rows["empty.wav"]["error"] and rows["empty.wav"]["predicted"] == ""
    assert "cannot decode audio" in rows["text.wav"]["error"]
    assert CliRunner().invoke(cli, ["predict", ckpt, str(messy), "-o", str(out), "--max-failures", "2"]).exit_code == 0

    # a torn last line (killed mid-write) is dropped and that file scored again
    text = out.read_text().splitlines()
    good = [line for line in text[1:] if line.split(",")[-1] == ""]
    out.write_text("\n".join([text[0], *good[:-1], good[-1][:15]]) + "\n")
    again = CliRunner().invoke(cli, ["predict", ckpt, str(messy), "-o", str(out), "--max-failures", "2"])
    assert "1 scored, 3 already" in again.output
    assert len(list(csv.DictReader(open(out)))) == 6

    seg = CliRunner().invoke(cli, ["predict", ckpt, str(messy / "long30s.wav"), "--segments", "-o", "-"])
    lines = list(csv.DictReader(seg.stdout.splitlines()))
    assert len(lines) > 10 and float(lines[0]["start"]) == 0.0 and float(lines[-1]["end"]) == pytest.approx(30.0, abs=0.02)


def test_dataloader_workers_give_the_same_model(corpus, tmp_path):
    _, manifest, store = corpus
    results = []
    for workers in (0, 2):
        config = TrainConfig(**{**FAST, "epochs": 2, "workers": workers})
        train_run(manifest, store, output=tmp_path / f"w{workers}", model="light_sernet", protocol="loso",
                  fold=2, valid_speakers=1, train_config=config)
        results.append(Checkpoint.load(tmp_path / f"w{workers}" / "fold-2" / "checkpoint.pt"))
    for key in results[0].state_dict:
        torch.testing.assert_close(results[0].state_dict[key], results[1].state_dict[key])


@pytest.fixture(scope="module")
def preset_store(corpus):
    """``preset_store(name)``: the corpus's store for feature preset ``name``, extracted once."""
    root, manifest, _ = corpus
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = extract_manifest(manifest, features=name, output=root / "feats",
                                           settings=preset_overrides(name)).store_path
        return cache[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", __import__("sertool.models", fromlist=["model_names"]).model_names("classification"))
def test_every_model_on_its_own_features_trains_evaluates_and_predicts(corpus, preset_store, tmp_path, name):
    """Each registered model, on its registry's default feature preset, through train, evaluate and predict."""
    root, manifest, _ = corpus
    from sertool.models import MODELS
    from sertool.inference.predict import predict_files

    spec = MODELS[name]
    train_run(manifest, preset_store(spec.features), output=tmp_path / "r", model=name, protocol="loso",
              fold=0, valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1}))
    ckpt_path = tmp_path / "r" / "fold-0" / "checkpoint.pt"
    ckpt = Checkpoint.load(ckpt_path)
    assert ckpt.model == name and ckpt.feature_set == spec.features
    model = ckpt.build_model()
    frames = 90 if spec.level == "frame" else 1
    feats, lengths = torch.randn(2, frames, len(ckpt.norm_mean)), torch.tensor([frames, max(1, frames - 30)])
    with torch.no_grad():
        torch.testing.assert_close(model(feats, lengths), ckpt.build_model()(feats, lengths))  # weights restored
    assert_evaluation_consistent(tmp_path / "r", evaluate_run(tmp_path / "r"))
    trust = spec.features == "ssl"  # an ssl checkpoint names an encoder folder: loaded only when trusted
    report = predict_files(ckpt_path, [root / "audio" / "high" / "spk0_0.wav", root / "audio" / "low"],
                           tmp_path / "p.csv", trust_code=trust)
    assert report.ok == 17 and report.failed == 0
    report = predict_files(ckpt_path, [root / "audio" / "low" / "spk1_0.wav"], tmp_path / "s.csv", segments=True,
                           window=0.5, hop=0.25, trust_code=trust)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert report.ok == 1 and len(rows) >= 3
    starts, ends = [float(r["start"]) for r in rows], [float(r["end"]) for r in rows]
    assert starts == sorted(starts) and starts[0] == 0 and 0.9 <= ends[-1] <= 1.0 + 1e-6
    assert all(0.4 <= e - s_ <= 0.6 for s_, e in zip(starts, ends))
    pytest.importorskip("onnxruntime")
    from tests.inference.test_export import check_exports

    files = [root / "audio" / "high" / "spk0_0.wav", root / "audio" / "low" / "spk1_1.wav",
             write_audio(tmp_path / "long.wav", seconds=4.0, freq=200.0)]
    formats = check_exports(ckpt_path, files, tmp_path)  # TorchScript always, ONNX unless the model's onnx_unsupported says why not
    assert "model.pt" in formats


def test_mscnn_spu_with_an_utterance_level_store(corpus, tmp_path):
    root, manifest, store = corpus
    stats = extract_manifest(manifest, features="mfcc_stats", output=tmp_path / "f").store_path
    train_run(manifest, store, output=tmp_path / "r", model="mscnn_spu", protocol="loso", fold=0,
              valid_speakers=1, utterance_store=stats, train_config=TrainConfig(**{**FAST, "epochs": 1}))
    ckpt = Checkpoint.load(tmp_path / "r" / "fold-0" / "checkpoint.pt")
    assert ckpt.model_config["speaker_dim"] == 80 and ckpt.norm_mean.shape == (40 + 80,)
    assert ckpt.utterance_feature_config["type"] == "mfcc_stats"
    assert_evaluation_consistent(tmp_path / "r", evaluate_run(tmp_path / "r"))
    from sertool.inference.predict import predict_files

    from threadpoolctl import threadpool_info

    before = [(p["internal_api"], p["num_threads"]) for p in threadpool_info()]
    assert predict_files(tmp_path / "r" / "fold-0" / "checkpoint.pt", [root / "audio" / "low"], tmp_path / "p.csv").ok == 16
    assert [(p["internal_api"], p["num_threads"]) for p in threadpool_info()] == before  # BLAS limit lifted after
    with pytest.raises(ConfigError, match="takes no utterance-level vector"):
        train_run(manifest, store, output=tmp_path / "r2", model="light_sernet", protocol="loso", fold=0,
                  valid_speakers=1, utterance_store=stats, train_config=TrainConfig(**{**FAST, "epochs": 1}))


def test_specaugment_training_runs_and_changes_the_model(corpus, tmp_path):
    _, manifest, store = corpus
    common = dict(model="mscnn_spu", protocol="loso", fold=0, valid_speakers=1)
    train_run(manifest, store, output=tmp_path / "plain", train_config=TrainConfig(**{**FAST, "epochs": 1}), **common)
    result = CliRunner().invoke(cli, ["train", str(manifest), str(store), "--model", "mscnn_spu", "--protocol", "loso",
                                      "--fold", "0", "--valid-speakers", "1", "--epochs", "1", "--batch-size", "8",
                                      "--lr", "3e-3", "--patience", "10", "--augment", "-o", str(tmp_path / "aug")])
    assert result.exit_code == 0, result.output
    a = Checkpoint.load(tmp_path / "plain" / "fold-0" / "checkpoint.pt")
    b = Checkpoint.load(tmp_path / "aug" / "fold-0" / "checkpoint.pt")
    assert b.train_config["specaugment"] is True
    assert any(not torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)


def test_predict_without_a_model_uses_the_bundled_multi_corpus_one(tmp_path):
    from sertool.inference.predict import BUNDLED

    if not BUNDLED["default"].is_file():
        pytest.skip("no bundled model in this checkout")
    checkpoint = Checkpoint.load(BUNDLED["default"])
    assert checkpoint.norm_mode == "set" and set(checkpoint.norm["sets"]) == {"ravdess", "emodb", "ased"}
    assert len(checkpoint.labels) == 9 and checkpoint.feature_config["gain"] == "speech_rms"
    write_audio(tmp_path / "clip.wav", seconds=2.0)
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "clip.wav")])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(result.stdout.splitlines()))
    assert len(rows) == 1 and rows[0]["predicted"] in checkpoint.labels
    assert "fewer than 20); the training statistics were used" in result.output  # one file is no set


def _presets_to_score():
    from sertool.features import PRESETS

    names = []
    for name in sorted(PRESETS):
        if name == "embedding":  # needs a provider (a model file or a Python hook): tests/test_embedding.py
            continue
        if name == "resemblyzer" and __import__("importlib").util.find_spec("resemblyzer") is None:
            continue
        names.append(name)
    return names


@pytest.mark.slow
@pytest.mark.parametrize("name", _presets_to_score())
def test_predict_works_for_a_checkpoint_of_every_feature_set(corpus, preset_store, tmp_path, name):
    """Every registered feature preset: a model of its level trains on it and predict scores files with it."""
    root, manifest, _ = corpus
    from sertool.features import build_extractor
    from sertool.inference.predict import predict_files

    level = build_extractor(name, preset_overrides(name)).level
    model = "light_sernet" if level == "frame" else "logreg"
    train_run(manifest, preset_store(name), output=tmp_path / "r", model=model, protocol="loso", fold=0,
              valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1, "norm": "global"}))
    ckpt = tmp_path / "r" / "fold-0" / "checkpoint.pt"
    assert Checkpoint.load(ckpt).feature_set == name
    trust = name == "ssl"  # an ssl checkpoint names an encoder folder: loaded only when trusted
    report = predict_files(ckpt, [root / "audio" / "low"], tmp_path / "p.csv", trust_code=trust)
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert report.ok == 16 and len(rows) == 16 and all(not r["error"] for r in rows)
    assert all(abs(float(r["p_high"]) + float(r["p_low"]) - 1) < 1e-3 for r in rows)
    report = predict_files(ckpt, [root / "audio" / "low" / "spk0_0.wav"], tmp_path / "s.csv", segments=True,
                           window=0.5, hop=0.25, trust_code=trust)
    segments = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert report.ok == 1 and len(segments) >= 3 and float(segments[-1]["end"]) <= 1.0 + 1e-6


def test_long_files_are_streamed_with_the_same_scores(tmp_path, monkeypatch):
    """A file over sertool.io.audio.STREAM_SECONDS is decoded block by block; its windows score as the whole file's."""
    import sertool
    import sertool.io.audio as audio

    path = write_audio(tmp_path / "long.wav", seconds=30.0, freq=180.0)
    whole = sertool.predict("ravdess", path)
    monkeypatch.setattr(audio, "STREAM_SECONDS", 10.0)
    calls = []
    original = audio.stream_audio
    monkeypatch.setattr(audio, "stream_audio", lambda *a, **k: calls.append(1) or original(*a, **k))
    streamed = sertool.predict("ravdess", path)
    assert calls, "the long file was not streamed"
    assert streamed.durations[0] == whole.durations[0] == pytest.approx(30.0)
    assert [w[:2] for w in streamed.windows[0]] == [w[:2] for w in whole.windows[0]]
    np.testing.assert_allclose(np.stack([w[2] for w in streamed.windows[0]]),
                               np.stack([w[2] for w in whole.windows[0]]), atol=1e-5)


def test_clips_a_little_longer_than_the_input_are_one_centre_cropped_window(tmp_path):
    """As training crops them: up to (1 + crop_tolerance) x the input length one window, longer files windowed."""
    import sertool
    from sertool.inference.predict import CROP_TOLERANCE

    input_s = 184 * 0.016  # the bundled LIGHT-SERNET's 184 frames of 16 ms
    near = write_audio(tmp_path / "near.wav", seconds=input_s * (1 + CROP_TOLERANCE * 0.8))
    far = write_audio(tmp_path / "far.wav", seconds=input_s * (1 + CROP_TOLERANCE * 1.5))
    one, many = sertool.predict("ravdess", [near, far]).windows
    assert len(one) == 1 and len(many) >= 2
    start, end, _ = one[0]
    duration = input_s * (1 + CROP_TOLERANCE * 0.8)
    assert abs((start + end) / 2 - duration / 2) < 0.05 and abs((end - start) - input_s) < 0.05  # the centre crop
    assert len(sertool.predict("ravdess", near, crop_tolerance=0).windows[0]) == 2  # the old overlapping windows
    assert len(sertool.predict("ravdess", near, window=1.0).windows[0]) >= 3  # a window the user chose: as given


def test_batch_size_changes_nothing_but_memory_and_a_missing_device_is_an_error(tmp_path):
    import sertool

    path = write_audio(tmp_path / "long.wav", seconds=20.0, freq=200.0)
    one = sertool.predict("ravdess", path, batch_size=1)
    many = sertool.predict("ravdess", path, batch_size=64)
    assert len(one.windows[0]) > 5
    np.testing.assert_allclose(np.stack([w[2] for w in one.windows[0]]), np.stack([w[2] for w in many.windows[0]]),
                               atol=1e-5)
    with pytest.raises(ConfigError, match="batch size"):
        sertool.predict("ravdess", path, batch_size=0)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            sertool.predict("ravdess", path, device="cuda")


def test_bf16_precision_trains_a_float32_checkpoint(corpus, tmp_path):
    _, manifest, store = corpus
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig(precision="fp8")
    config = TrainConfig(**{**FAST, "epochs": 3, "precision": "bf16"})
    train_run(manifest, store, output=tmp_path / "bf16", model="light_sernet", protocol="loso", fold=0,
              valid_speakers=1, train_config=config)
    ckpt = Checkpoint.load(tmp_path / "bf16" / "fold-0" / "checkpoint.pt")
    assert ckpt.train_config["precision"] == "bf16" and ckpt.metrics["precision"] == "bf16"
    assert all(v.dtype in (torch.float32, torch.int64) for v in ckpt.state_dict.values())
    rows = list(csv.DictReader(open(tmp_path / "bf16" / "fold-0" / "train_log.csv")))
    assert len(rows) == 3 and float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
