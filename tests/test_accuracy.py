"""Normalisation modes, classic models, recipes and schedules, store-kind checks, fusion."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from sertool.models.checkpoint import Checkpoint
from sertool.cli.main import cli
from sertool.corpora import folder
from sertool.errors import ConfigError, SertoolError
from sertool.scoring.evaluate import evaluate_run
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import Utterance, read_manifest, write_manifest
from sertool.io.report import RunReport
from sertool.training.trainer import TrainConfig, build_train_config, train_run
from tests.conftest import assert_evaluation_consistent, write_audio, write_pitch_corpus

FAST = dict(epochs=2, batch_size=8, lr=3e-3, specaugment=False)


def _corpus(root, speakers=3, per_class=6, shift=0.0):
    """``speakers`` x 2 classes x ``per_class`` clips of 0.5 s; manifest path."""
    write_pitch_corpus(root / "audio", speakers=speakers, clips=per_class, seconds=0.5, speaker_step=15, clip_step=4,
                       shift=shift)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    return write_manifest(rows, root / "m.csv")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """3 speakers x 12 clips: manifest, frame-level (lightsernet_mfcc) and utterance-level (mfcc_stats) stores."""
    root = tmp_path_factory.mktemp("acc")
    manifest = _corpus(root)
    frames = extract_manifest(manifest, feature_set="lightsernet_mfcc", out_dir=root / "feats").store_path
    vectors = extract_manifest(manifest, feature_set="mfcc_stats", out_dir=root / "feats").store_path
    return root, manifest, frames, vectors


# --------------------------------------------------------------------------- normalisation
def test_speaker_statistics_use_only_that_speakers_own_unaugmented_data(corpus, tmp_path):
    from sertool.training.data import JoinedStore
    from sertool.features.normalise import fit_normaliser

    root, manifest, _, vectors = corpus
    rows = read_manifest(manifest)
    ids = [u.id for u in rows]
    base = fit_normaliser("speaker", JoinedStore(vectors), rows, train_ids=ids)
    own = np.stack([JoinedStore(vectors)[u.id][0] for u in rows if u.speaker == "spk0"])
    np.testing.assert_allclose(base.speaker_stats["spk0"][0], own.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(base.speaker_stats["spk0"][1], own.std(0), rtol=1e-4, atol=1e-5)

    # Other speakers' audio changed, every label changed, and an augmented copy of spk0 with other audio added:
    other = tmp_path / "other"
    for u in rows:
        if u.speaker != "spk0":
            write_audio(other / f"{u.id}.wav", seconds=0.9, freq=600.0, seed=99)
    copy = write_audio(other / "aug.wav", seconds=0.5, freq=900.0, seed=7)
    changed = [Utterance(**{**u.__dict__, "label": "x" if u.label == "low" else "y",
                            "path": u.path if u.speaker == "spk0" else other / f"{u.id}.wav"}) for u in rows]
    changed.append(Utterance(**{**rows[0].__dict__, "id": rows[0].id + "+aug", "path": copy,
                                "source_id": rows[0].id}))
    manifest2 = write_manifest(changed, tmp_path / "m2.csv")
    store2 = extract_manifest(manifest2, feature_set="mfcc_stats", out_dir=tmp_path / "feats").store_path
    again = fit_normaliser("speaker", JoinedStore(store2), read_manifest(manifest2),
                           train_ids=[u.id for u in changed])
    for k in (0, 1):
        np.testing.assert_array_equal(again.speaker_stats["spk0"][k], base.speaker_stats["spk0"][k])
        assert not np.allclose(again.speaker_stats["spk1"][k], base.speaker_stats["spk1"][k])


@pytest.mark.parametrize("mode", ["global", "speaker", "utterance"])
def test_norm_round_trips_through_checkpoint_evaluate_and_predict(corpus, tmp_path, mode):
    from sertool.inference.predict import predict_files

    root, manifest, frames, _ = corpus
    train_run(manifest, frames, model_name="light_sernet", out_dir=tmp_path / "r", protocol="loso", fold=0,
              valid_speakers=1, train_config=TrainConfig(**FAST, norm=mode))
    ckpt = Checkpoint.load(tmp_path / "r" / "fold-0" / "checkpoint.pt")
    assert ckpt.norm_mode == mode
    assert bool(ckpt.norm_mean.abs().sum() > 0) == (mode == "global")
    evaluate_run(tmp_path / "r")
    evaluated = {r["path"]: np.array([float(r[f"p_{c}"]) for c in ckpt.labels])
                 for r in csv.DictReader(open(tmp_path / "r" / "predictions.csv"))}
    test_manifest = write_manifest([u for u in read_manifest(manifest) if u.speaker == "spk0"], tmp_path / "t.csv")
    report = predict_files(tmp_path / "r" / "fold-0" / "checkpoint.pt", [test_manifest], tmp_path / "p.csv")
    assert report.ok == 12 and report.failed == 0
    predicted = {r["path"]: np.array([float(r[f"p_{c}"]) for c in ckpt.labels])
                 for r in csv.DictReader(open(tmp_path / "p.csv"))}
    assert set(predicted) == set(evaluated)
    for path, probs in predicted.items():
        np.testing.assert_allclose(probs, evaluated[path], atol=2e-4)


def test_speaker_normalised_predict_needs_speaker_groups(corpus, tmp_path):
    root, manifest, _, vectors = corpus
    train_run(manifest, vectors, model_name="logreg", out_dir=tmp_path / "r", protocol="loso", fold=0,
              valid_speakers=1, train_config=build_train_config(model_name="logreg"))
    ckpt = tmp_path / "r" / "fold-0" / "checkpoint.pt"
    assert Checkpoint.load(ckpt).norm_mode == "speaker"
    folder_in = str(root / "audio" / "low")
    result = CliRunner().invoke(cli, ["predict", str(ckpt), folder_in, "-o", str(tmp_path / "a.csv")])
    assert result.exit_code == 1 and "--speaker-regex" in result.output and "manifest" in result.output
    # spk0..spk2 each have 6 low clips: fewer than the minimum of 10, so every row is an error row
    result = CliRunner().invoke(cli, ["predict", str(ckpt), folder_in, "-o", str(tmp_path / "b.csv"),
                                      "--speaker-regex", r"(spk\d)_"])
    assert result.exit_code == 3
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert len(rows) == 18 and all("at least 10" in r["error"] for r in rows)
    result = CliRunner().invoke(cli, ["predict", str(ckpt), str(root / "audio"), "-o", str(tmp_path / "c.csv"),
                                      "--speaker-regex", r"(spk\d)_"])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader(open(tmp_path / "c.csv")))) == 36


# --------------------------------------------------------------------------- classic models
@pytest.mark.parametrize("overrides", [{}, {"kernel": "rbf"}], ids=["linear", "rbf"])
def test_svm_module_reproduces_sklearn_decisions(overrides):
    from sertool.models import build_model_config
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


@pytest.mark.parametrize("name,overrides", [("svm", []), ("svm", ["kernel=rbf"]), ("logreg", [])],
                         ids=["svm-linear", "svm-rbf", "logreg"])
def test_classic_checkpoints_are_code_free_and_round_trip(corpus, tmp_path, name, overrides):
    root, manifest, _, vectors = corpus
    train_run(manifest, vectors, model_name=name, out_dir=tmp_path / "r", protocol="loso", fold=1, valid_speakers=1,
              model_overrides=dict(o.split("=") for o in overrides),
              train_config=build_train_config({"norm": "global"}, model_name=name))
    path = tmp_path / "r" / "fold-1" / "checkpoint.pt"
    raw = torch.load(path, weights_only=True)  # tensors and plain data only
    assert all(isinstance(v, torch.Tensor) for v in raw["state_dict"].values())
    assert raw["model_config"]["C"] > 0  # chosen on the validation speaker
    log = list(csv.DictReader(open(tmp_path / "r" / "fold-1" / "train_log.csv")))
    assert [float(r["C"]) for r in log] and all(0 <= float(r["valid_UA"]) <= 1 for r in log)
    assert len({r["C"] for r in log}) == len(log) > 1  # one row per C tried
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


def test_kind_of_store_must_match_the_model(corpus, tmp_path):
    root, manifest, frames, vectors = corpus
    for model, store, hint in (("light_sernet", vectors, "svm"), ("svm", frames, "light_sernet")):
        result = CliRunner().invoke(cli, ["train", str(manifest), str(store), "-m", model, "-o",
                                          str(tmp_path / model), "--protocol", "loso", "--valid-speakers", "1"])
        assert result.exit_code == 1
        assert "-level store" in result.output and hint in result.output, result.output
    with pytest.raises(ConfigError, match="frame-level store"):
        train_run(manifest, vectors, model_name="mlp", out_dir=tmp_path / "u", protocol="loso",
                  valid_speakers=1, train_config=TrainConfig(**FAST, norm="utterance"))


# --------------------------------------------------------------------------- recipes and the training loop
def test_recipes_and_schedules():
    paper = build_train_config(model_name="light_sernet", recipe="paper")
    assert (paper.lr, paper.schedule, paper.epochs, paper.specaugment) == (1e-4, "step", 300, False)
    assert paper.lr_at(49) == 1e-4 and math.isclose(paper.lr_at(50), 1e-4 * math.exp(-0.15))
    default = build_train_config(model_name="light_sernet")
    assert default.epochs <= 60 and default.specaugment and default.norm == "speaker"
    assert build_train_config({"lr": 0.5}, model_name="light_sernet").lr == 0.5  # options beat the recipe
    one = TrainConfig(epochs=10, lr=1.0, schedule="onecycle")
    assert math.isclose(one.lr_at(1), 1 / 25) and math.isclose(one.lr_at(4), 1.0)
    assert one.lr_at(10, 0.99) < 0.01 and one.lr_at(6) < one.lr_at(5)
    cosine = TrainConfig(epochs=10, lr=1.0, schedule="cosine", warmup_epochs=2)
    assert cosine.lr_at(1) < cosine.lr_at(2) < cosine.lr_at(3) and cosine.lr_at(10, 0.99) < 0.01
    with pytest.raises(ConfigError):
        TrainConfig(schedule="weird")
    result = CliRunner().invoke(cli, ["train", "--print-config", "-m", "light_sernet", "--recipe", "paper"])
    assert result.exit_code == 0 and 'schedule = "step"' in result.output and "lightsernet_mfcc" in result.output


def test_mixup_balanced_sampling_and_checkpoint_selections(corpus, tmp_path):
    root, manifest, frames, _ = corpus
    config = TrainConfig(epochs=3, batch_size=8, lr=3e-3, mixup=0.4, balance="sampler", label_smoothing=0.1,
                         selection="average", average_last=2, norm="global")
    train_run(manifest, frames, model_name="light_sernet", out_dir=tmp_path / "r", protocol="loso", fold=0,
              valid_speakers=1, train_config=config)
    fold = tmp_path / "r" / "fold-0"
    names = {p.name for p in fold.glob("checkpoint*.pt")}
    assert names == {"checkpoint.pt", "checkpoint-best.pt", "checkpoint-last.pt", "checkpoint-average.pt"}
    chosen, average, last = (Checkpoint.load(fold / n) for n in ("checkpoint.pt", "checkpoint-average.pt",
                                                                  "checkpoint-last.pt"))
    assert chosen.metrics["selection"] == "average"
    key = next(k for k, v in last.state_dict.items() if v.is_floating_point() and "weight" in k)
    assert torch.equal(chosen.state_dict[key], average.state_dict[key])
    assert not torch.equal(average.state_dict[key], last.state_dict[key])
    for selection in ("best", "average", "last"):
        assert_evaluation_consistent(tmp_path / "r", evaluate_run(tmp_path / "r", selection=selection))


# --------------------------------------------------------------------------- fusion
def test_fused_runs_evaluate_and_predict(corpus, tmp_path):
    from sertool.scoring.fuse import fuse_runs
    from sertool.inference.predict import predict_files

    root, manifest, frames, vectors = corpus
    common = dict(protocol="loso", valid_speakers=1)
    train_run(manifest, vectors, model_name="logreg", out_dir=tmp_path / "a",
              train_config=build_train_config({"norm": "global"}, model_name="logreg"), **common)
    train_run(manifest, frames, model_name="light_sernet", out_dir=tmp_path / "b",
              train_config=TrainConfig(**FAST, norm="global"), **common)
    result = fuse_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "f")
    assert len(result.weights) == 3 and all(math.isclose(sum(w), 1.0) for w in result.weights)
    fused = evaluate_run(tmp_path / "f")
    members = [evaluate_run(tmp_path / m, out_dir=tmp_path / f"ev-{m}") for m in "ab"]
    rows = {name: {r["id"]: np.array([float(r[f"p_{c}"]) for c in fused.labels])
                   for r in csv.DictReader(open(d / "predictions.csv"))}
            for name, d in (("f", tmp_path / "f"), ("a", tmp_path / "ev-a"), ("b", tmp_path / "ev-b"))}
    splits = {k: [r["id"] for r in csv.DictReader(open(tmp_path / "f" / f"fold-{k}" / "split.csv"))
                  if r["role"] == "test"] for k in range(3)}
    for k, ids in splits.items():
        wa, wb = result.weights[k]
        for i in ids:
            np.testing.assert_allclose(rows["f"][i], wa * rows["a"][i] + wb * rows["b"][i], atol=2e-5)
    assert members[0].folds["pooled"]["UA"] >= 0
    report = predict_files(tmp_path / "f" / "fold-0" / "checkpoint.pt", [manifest], tmp_path / "p.csv")
    assert report.ok == 36 and report.failed == 0
    # runs on other folds cannot be fused
    train_run(manifest, vectors, model_name="logreg", out_dir=tmp_path / "c", protocol="holdout",
              test_speakers=["spk0"], valid_speakers=1,
              train_config=build_train_config({"norm": "global"}, model_name="logreg"))
    with pytest.raises(SertoolError, match="differ"):
        fuse_runs([tmp_path / "a", tmp_path / "c"], tmp_path / "g")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "f" / "fold-0" / "checkpoint.pt"), str(manifest),
                                      "--segments", "-o", str(tmp_path / "s.csv")])
    assert result.exit_code == 1 and "--segments" in result.output


# --------------------------------------------------------------------------- no code from a checkpoint
def test_checkpoint_naming_code_is_refused_without_trust_code(tmp_path):
    import sys

    wav = write_audio(tmp_path / "x.wav", seconds=1.0)
    ckpt = Checkpoint(model="logreg", model_config={"C": 1.0}, feature_set="embedding",
                      feature_config={"type": "embedding", "provider": "python", "path": "antigravity:geohash"},
                      labels=["a", "b"], norm_mean=torch.zeros(4), norm_std=torch.ones(4), train_config={},
                      state_dict={"temperature": torch.tensor(1.0), "coef": torch.zeros(2, 4),
                                  "intercept": torch.zeros(2)})
    ckpt.save(tmp_path / "evil.pt")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "evil.pt"), str(wav), "-o", str(tmp_path / "p.csv")])
    assert result.exit_code == 1 and "antigravity:geohash" in result.output and "--trust-code" in result.output
    assert "antigravity" not in sys.modules
    fused = Checkpoint(model="fusion", model_config={"weights": [1.0]}, feature_set="fusion", feature_config={},
                       labels=["a", "b"], norm_mean=torch.zeros(0), norm_std=torch.zeros(0), train_config={},
                       state_dict={}, members=[Checkpoint.load(tmp_path / "evil.pt").payload()])
    fused.save(tmp_path / "fused.pt")
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "fused.pt"), str(wav), "-o", str(tmp_path / "q.csv")])
    assert result.exit_code == 1 and "member 0" in result.output and "antigravity" not in sys.modules
    for provider in ("torchscript", "onnx"):
        ckpt.feature_config = {"type": "embedding", "provider": provider, "path": str(tmp_path / "m.bin")}
        assert f"{provider} " in ckpt.code_references()[0]
        with pytest.raises(SertoolError, match="--trust-code"):
            ckpt.check_no_code("c.pt")
        ckpt.check_no_code("c.pt", trust_code=True)


def test_a_run_folder_refuses_another_store(corpus, tmp_path):
    root, manifest, frames, _ = corpus
    other = extract_manifest(manifest, feature_set="mfcc", out_dir=tmp_path / "feats").store_path
    train_run(manifest, frames, model_name="light_sernet", out_dir=tmp_path / "r", protocol="loso", fold=0,
              valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1}))
    before = (tmp_path / "r" / "run.json").read_text()
    with pytest.raises(SertoolError, match="another store"):
        train_run(manifest, other, model_name="light_sernet", out_dir=tmp_path / "r", protocol="loso", fold=0,
                  valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1}))
    assert (tmp_path / "r" / "run.json").read_text() == before  # evaluate still reads the right store
    (tmp_path / "r" / "run.json").unlink()  # even without run.json, the fold's fingerprint knows its features
    with pytest.raises(SertoolError, match="other settings, features or data"):
        train_run(manifest, other, model_name="light_sernet", out_dir=tmp_path / "r", protocol="loso", fold=0,
                  valid_speakers=1, train_config=TrainConfig(**{**FAST, "epochs": 1}))


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "predict"])
def test_sigterm_on_train_and_predict_is_a_clean_exit(corpus, tmp_path, command):
    import signal
    import subprocess
    import sys
    import time

    root, manifest, frames, _ = corpus
    if command == "train":
        args = ["train", str(manifest), str(frames), "-o", str(tmp_path / "r"), "--protocol", "loso",
                "--valid-speakers", "1", "--epochs", "200", "--batch-size", "4", "--norm", "global"]
        ready = lambda: (tmp_path / "r" / "fold-0" / "state.pt").exists()  # noqa: E731
    else:
        links = tmp_path / "links"  # distinct paths (predict scores each path once), rows written per block
        links.mkdir()
        for k in range(20):
            for u in read_manifest(manifest):
                (links / f"{k}-{u.id}.wav").symlink_to(Path(u.path).resolve())
        args = ["predict", str(links), "-o", str(tmp_path / "p.csv")]
        ready = lambda: (tmp_path / "p.csv").exists() and (tmp_path / "p.csv").stat().st_size > 2000  # noqa: E731
    proc = subprocess.Popen([sys.executable, "-m", "sertool", *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 143
    stderr = proc.stderr.read()
    assert "Terminated: finished work is saved" in stderr and "Traceback" not in stderr


def test_compare_runs_with_a_paired_bootstrap(corpus, tmp_path):
    from sertool.scoring.compare import compare_runs

    root, manifest, _, vectors = corpus
    for name, norm in (("g", "global"), ("s", "speaker")):
        train_run(manifest, vectors, model_name="logreg", out_dir=tmp_path / name, protocol="loso", valid_speakers=1,
                  train_config=build_train_config({"norm": norm}, model_name="logreg"))
    with pytest.raises(SertoolError, match="sertool evaluate"):
        compare_runs([tmp_path / "g"])
    results = {name: evaluate_run(tmp_path / name) for name in "gs"}
    rows = compare_runs([tmp_path / "g", tmp_path / "s"])
    assert [r["UA"] for r in rows] == pytest.approx([results[n].folds["pooled"]["UA"] for n in "gs"])
    assert rows[0]["UA_diff"] is None
    assert rows[1]["UA_diff"] == pytest.approx(rows[1]["UA"] - rows[0]["UA"])
    low, high = rows[1]["UA_diff_ci95"]
    assert low <= rows[1]["UA_diff"] <= high and 0 <= rows[1]["p_not_better"] <= 1
    result = CliRunner().invoke(cli, ["compare", str(tmp_path / "g"), str(tmp_path / "s"), "-o",
                                      str(tmp_path / "c.csv")])
    assert result.exit_code == 0 and result.output.startswith("| run |")
    assert len(list(csv.DictReader(open(tmp_path / "c.csv")))) == 2


def test_cross_corpus_evaluation_with_a_label_map(corpus, tmp_path):
    root, manifest, _, vectors = corpus
    train_run(manifest, vectors, model_name="logreg", out_dir=tmp_path / "r", protocol="loso", valid_speakers=1,
              train_config=build_train_config({"norm": "global"}, model_name="logreg"))
    rows = read_manifest(manifest)
    renamed = [Utterance(**{**u.__dict__, "label": {"low": "grave", "high": "high"}[u.label]}) for u in rows]
    renamed[0] = Utterance(**{**renamed[0].__dict__, "label": "whisper"})  # a label the model does not know
    other = write_manifest(renamed, tmp_path / "other.csv")
    (tmp_path / "map.csv").write_text("from,to\ngrave,low\n")
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "r"), "--on", str(other), str(vectors),
                                      "--label-map", str(tmp_path / "map.csv")])
    assert result.exit_code == 0, result.output
    assert "left out" in result.output and "whisper (1)" in result.output
    predictions = list(csv.DictReader(open(tmp_path / "r" / "cross-other" / "predictions.csv")))
    assert len(predictions) == len(rows) - 1 and {p["label"] for p in predictions} == {"low", "high"}
    metrics = {(m["fold"], m["metric"]) for m in csv.DictReader(open(tmp_path / "r" / "cross-other" / "metrics.csv"))}
    assert {("0", "UA"), ("2", "UA"), ("pooled", "UA"), ("pooled", "UA_ci95_low"), ("std", "UA")} <= metrics
    result = CliRunner().invoke(cli, ["evaluate", str(tmp_path / "r"), "--label-map", str(tmp_path / "map.csv")])
    assert result.exit_code == 2
