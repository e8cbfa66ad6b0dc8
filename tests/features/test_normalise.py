"""features/normalise.py: speaker statistics, and every normalisation mode through train, evaluate and predict."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import Utterance, read_manifest, write_manifest
from sertool.models.checkpoint import Checkpoint
from sertool.scoring.evaluate import evaluate_run
from sertool.training.trainer import TrainConfig, build_train_config, train_run
from tests.conftest import FAST_TRAINING, write_audio


def _probabilities(path, labels) -> dict[str, np.ndarray]:
    """path -> class probabilities (columns ``p_<label>``) of a predictions CSV."""
    with open(path, newline="") as fh:
        return {r["path"]: np.array([float(r[f"p_{c}"]) for c in labels]) for r in csv.DictReader(fh)}


def test_speaker_statistics_use_only_that_speakers_own_unaugmented_data(pitch_corpus, tmp_path):
    from sertool.features.normalise import fit_normaliser
    from sertool.training.data import JoinedStore  # torch: heavy, loaded only when datasets are built

    rows = read_manifest(pitch_corpus.manifest)
    ids = [u.id for u in rows]
    base = fit_normaliser("speaker", JoinedStore(pitch_corpus.vectors), rows, train_ids=ids)
    own = np.stack([JoinedStore(pitch_corpus.vectors)[u.id][0] for u in rows if u.speaker == "spk0"])
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
    store2 = extract_manifest(manifest2, features="mfcc_stats", output=tmp_path / "feats").store_path
    again = fit_normaliser("speaker", JoinedStore(store2), read_manifest(manifest2),
                           train_ids=[u.id for u in changed])
    for k in (0, 1):
        np.testing.assert_array_equal(again.speaker_stats["spk0"][k], base.speaker_stats["spk0"][k])
        assert not np.allclose(again.speaker_stats["spk1"][k], base.speaker_stats["spk1"][k])


@pytest.mark.parametrize("mode", ["global", "speaker", "utterance"])
def test_norm_round_trips_through_checkpoint_evaluate_and_predict(pitch_corpus, tmp_path, mode):
    from sertool.inference.predict import predict_files

    train_run(pitch_corpus.manifest, pitch_corpus.frames, model="light_sernet", output=tmp_path / "r",
              protocol="loso", fold=0, valid_speakers=1, train_config=TrainConfig(**FAST_TRAINING, norm=mode))
    ckpt = Checkpoint.load(tmp_path / "r" / "fold-0" / "checkpoint.pt")
    assert ckpt.norm_mode == mode
    assert bool(ckpt.norm_mean.abs().sum() > 0) == (mode == "global")
    evaluate_run(tmp_path / "r")
    evaluated = _probabilities(tmp_path / "r" / "predictions.csv", ckpt.labels)
    spk0 = [u for u in read_manifest(pitch_corpus.manifest) if u.speaker == "spk0"]
    test_manifest = write_manifest(spk0, tmp_path / "t.csv")
    report = predict_files(tmp_path / "r" / "fold-0" / "checkpoint.pt", [test_manifest], tmp_path / "p.csv")
    assert report.ok == 12 and report.failed == 0
    predicted = _probabilities(tmp_path / "p.csv", ckpt.labels)
    assert set(predicted) == set(evaluated) == {str(u.path) for u in spk0}
    for path, probs in predicted.items():
        np.testing.assert_allclose(probs, evaluated[path], atol=2e-4)


def test_speaker_normalised_predict_needs_speaker_groups(pitch_corpus, tmp_path):
    root, manifest, _, vectors = pitch_corpus
    train_run(manifest, vectors, model="logreg", output=tmp_path / "r", protocol="loso", fold=0,
              valid_speakers=1, train_config=build_train_config(model="logreg"))
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
    rows = list(csv.DictReader(open(tmp_path / "c.csv")))
    assert len(rows) == 36 and {r["error"] for r in rows} == {""}
