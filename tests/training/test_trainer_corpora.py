"""training/trainer.py with several manifests: speakers named per corpus, --protocol loco, --norm set, --labels."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.corpora import folder
from sertool.errors import ConfigError
from sertool.extraction.pipeline import extract_manifest
from sertool.features.normalise import MIN_SET_UTTERANCES
from sertool.io.manifest import read_manifest, write_manifest
from sertool.io.report import RunReport
from sertool.models.checkpoint import Checkpoint
from sertool.training.trainer import TrainConfig, train_run
from tests.conftest import write_pitch_corpus


def _corpus(root, name, shift):
    """A pitch corpus named ``name`` (3 speakers spk0-2, like every other one) whose tones sit ``shift`` Hz higher."""
    write_pitch_corpus(root / name, speakers=3, clips=4, seconds=0.4, speaker_step=15, clip_step=4, shift=shift)
    rows = folder.prepare(root / name, report=RunReport(), speaker_regex=r"/(spk\d)_")
    rows = [replace(u, id=f"{name}-{u.id}", corpus=name) for u in rows]
    return write_manifest(rows, root / f"{name}.csv")


def test_two_corpora_train_together_leave_one_corpus_out_with_set_statistics(tmp_path):
    manifests = [_corpus(tmp_path, "north", 0.0), _corpus(tmp_path, "south", 40.0)]
    stores = [extract_manifest(m, features="mfcc_stats", output=tmp_path / "feats").store_path for m in manifests]
    runner = CliRunner()
    merged = tmp_path / "feats" / "both.h5"
    assert runner.invoke(cli, ["store", "merge", *map(str, stores), "-o", str(merged)]).exit_code == 0
    run = tmp_path / "run"
    result = runner.invoke(cli, ["train", *map(str, manifests), str(merged), "-m", "logreg", "-o", str(run),
                                 "--protocol", "loco", "--valid-speakers", "1", "--norm", "set"])
    assert result.exit_code == 0, result.output
    info = json.loads((run / "run.json").read_text())
    assert info["folds"] == 2 and len(info["manifests"]) == 2 and info["manifest"] == str(run / "manifest.csv")
    rows = read_manifest(run / "manifest.csv")
    assert {u.speaker for u in rows} == {f"{c}:spk{s}" for c in ("north", "south") for s in range(3)}
    for index, test_corpus in enumerate(("north", "south")):
        split = list(csv.DictReader(open(run / f"fold-{index}" / "split.csv")))
        roles = {(r["role"], r["speaker"].split(":")[0]) for r in split}
        assert ("test", test_corpus) in roles and ("train", test_corpus) not in roles
        assert ("valid", test_corpus) not in roles
        checkpoint = Checkpoint.load(run / f"fold-{index}" / "checkpoint.pt")
        assert checkpoint.norm["mode"] == "set" and set(checkpoint.norm["sets"]) == {"north", "south"} - {test_corpus}
    result = runner.invoke(cli, ["evaluate", str(run)])
    assert result.exit_code == 0, result.output
    # predict on the other corpus's folder: the files scored together are one set with its own statistics
    checkpoint = str(run / "fold-1" / "checkpoint.pt")
    out = tmp_path / "p.csv"
    result = runner.invoke(cli, ["predict", str(tmp_path / "south"), "-m", checkpoint, "-o", str(out)])
    assert result.exit_code == 0, result.output
    scored = {r["path"]: r for r in csv.DictReader(open(out))}
    assert len(scored) == 24 >= MIN_SET_UTTERANCES and all(r["predicted"] for r in scored.values())
    assert not (tmp_path / "p.warnings.csv").exists()
    few = sorted((tmp_path / "south" / "low").glob("*.wav"))[:3]
    result = runner.invoke(cli, ["predict", *map(str, few), "-m", checkpoint, "-o", str(tmp_path / "few.csv")])
    assert result.exit_code == 0, result.output
    assert f"fewer than {MIN_SET_UTTERANCES}); the training statistics were used" in \
        (tmp_path / "few.warnings.csv").read_text()
    alone = {r["path"]: r for r in csv.DictReader(open(tmp_path / "few.csv"))}
    key = next(iter(alone))
    assert alone[key]["confidence"] != scored[key]["confidence"]  # other statistics, other probabilities


def test_labels_and_map_leave_rows_out_and_the_run_keeps_its_rows(tmp_path):
    manifest = _corpus(tmp_path, "north", 0.0)
    store = extract_manifest(manifest, features="mfcc_stats", output=tmp_path / "feats").store_path
    run = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", str(manifest), str(store), "-m", "logreg", "-o", str(run),
                                      "--protocol", "loso", "--valid-speakers", "1", "--map", "low=sad",
                                      "--map", "high=angry", "--labels", "big4"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["labels"] == ["angry", "sad"]
    assert {u.label for u in read_manifest(run / "manifest.csv")} == {"angry", "sad"}
    result = CliRunner().invoke(cli, ["train", str(manifest), str(store), "-m", "logreg", "-o", str(run),
                                      "--protocol", "loso", "--valid-speakers", "1", "--map", "low=happy",
                                      "--map", "high=angry", "--labels", "big4"])
    assert result.exit_code == 1 and "another" in result.output  # another label selection: another run
    result = CliRunner().invoke(cli, ["train", str(manifest), str(store), "-m", "logreg", "-o", str(run),
                                      "--protocol", "loso", "--valid-speakers", "1", "--labels", "big4"])
    assert result.exit_code == 1 and "(none)" in result.output  # no class left: refused before the folder


def test_a_fold_without_training_utterances_of_a_class_is_an_error(tmp_path):
    manifest = _corpus(tmp_path, "north", 0.0)
    rows = read_manifest(manifest)  # only speaker spk0 has the class "mid"
    rows = [replace(u, label="mid") if u.speaker == "spk0" and u.label == "low" else u for u in rows]
    manifest = write_manifest(rows, tmp_path / "mid.csv")
    store = extract_manifest(manifest, features="mfcc_stats", output=tmp_path / "feats").store_path
    with pytest.raises(ConfigError, match=r"fold 0 \(spk0\): no training utterance of class\(es\) mid"):
        train_run(manifest, store, model="logreg", output=tmp_path / "r", protocol="loso", valid_speakers=1,
                  train_config=TrainConfig(norm="global"))
    lines = []  # a network trains on, loudly
    train_run(manifest, store, model="mlp", output=tmp_path / "n", protocol="loso", fold=0, valid_speakers=1,
              train_config=TrainConfig(norm="global", epochs=1), log=lines.append)
    assert any(line.startswith("warning: fold 0 (spk0): no training utterance of class(es) mid") for line in lines)
    one = write_manifest([replace(u, label="low") for u in rows], tmp_path / "one.csv")
    store = extract_manifest(one, features="mfcc_stats", output=tmp_path / "feats").store_path
    with pytest.raises(ConfigError, match="every row is of class low"):
        train_run(one, store, model="logreg", output=tmp_path / "r1", protocol="loso", valid_speakers=1,
                  train_config=TrainConfig(norm="global"))


def test_balance_corpus_draws_every_corpus_and_class_equally_often(tmp_path):
    from sertool.training.loop import _sampling_weights

    class Setup:
        class train_set:  # noqa: N801 - a stand-in for the fold's dataset: labels and corpora per item
            labels = [0, 0, 0, 1, 0, 1]
            corpora = ["big", "big", "big", "big", "small", "small"]

    weights = _sampling_weights(Setup, by_corpus=True)
    share = {}
    for (corpus, label), w in zip(zip(Setup.train_set.corpora, Setup.train_set.labels), weights):
        share[corpus, label] = share.get((corpus, label), 0) + w
    assert set(share.values()) == {1.0}  # every (corpus, class) cell carries the same total weight
    assert _sampling_weights(Setup, by_corpus=False) == [0.25] * 3 + [0.5, 0.25, 0.5]
    manifest = _corpus(tmp_path, "north", 0.0)
    store = extract_manifest(manifest, features="mfcc_stats", output=tmp_path / "feats").store_path
    with pytest.raises(ConfigError, match="--balance corpus samples training batches; logreg"):
        train_run(manifest, store, model="logreg", output=tmp_path / "r", protocol="loso", valid_speakers=1,
                  train_config=TrainConfig(norm="global", balance="corpus"))
