"""The one scoring engine: the pure window planner, and evaluate scoring clips exactly as predict scores them."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sertool.inference.windows import (FramePlan, SlidingWindows, audio_slices, frame_windows, stream_frame_windows,
                                       window_starts)
from tests.conftest import write_pitch_corpus

#: 10 frames a second, each covering 0.025 s from its start (LIGHT-SERNET-like timing, rounder numbers)
TIMING = (0.1, 0.025, 0.0)


def test_window_starts_cover_the_end_exactly_once():
    assert window_starts(10, 4, 2) == [0, 2, 4, 6]  # 6 + 4 == 10: no extra window
    assert window_starts(11, 4, 2) == [0, 2, 4, 6, 7]  # the last one ends at the last row
    assert window_starts(4, 4, 3) == [0]


def test_short_clips_are_one_centre_cropped_window_and_long_ones_are_windowed():
    plan = FramePlan.for_model(TIMING, model_frames=10, window_s=None, hop_s=None, crop_tolerance=0.5)
    assert (plan.window, plan.hop, plan.one_window) == (10, 5, 15.0)
    feats = np.arange(15 * 2, dtype=np.float32).reshape(15, 2)
    (span, window), = frame_windows(feats, 1.5, plan)
    assert window.shape == (15, 2)  # the model gets all 15 frames and centre-crops 10
    assert span == pytest.approx((0.2, 1.125))  # the crop's frames 2..11
    planned = frame_windows(np.zeros((16, 2), np.float32), 1.6, plan)
    assert [w.shape[0] for _, w in planned] == [10, 10, 10]  # starts 0, 5 and 6 (the end)
    np.testing.assert_allclose([s for s, _ in planned], [(0.0, 0.925), (0.5, 1.425), (0.6, 1.525)])
    given = FramePlan.for_model(TIMING, model_frames=10, window_s=0.4, hop_s=0.2, crop_tolerance=0.5)
    assert (given.window, given.hop, given.crop_tolerance) == (4, 2, 0.0)  # windows a user chose: as given
    anything = FramePlan.for_model(TIMING, model_frames=None, window_s=None, hop_s=None, crop_tolerance=0.5)
    (span, window), = frame_windows(np.zeros((500, 2), np.float32), 50.0, anything)
    assert window.shape[0] == 500 and span == pytest.approx((0.0, 49.925))


@pytest.mark.parametrize("total", [1, 9, 10, 15, 16, 37, 200])
def test_sliding_windows_equal_the_whole_plan_for_any_split(total):
    plan = FramePlan.for_model(TIMING, model_frames=10, window_s=None, hop_s=None, crop_tolerance=0.5)
    rng = np.random.default_rng(total)
    feats = rng.standard_normal((total, 3)).astype(np.float32)
    for _ in range(3):
        cuts = np.sort(rng.choice(np.arange(1, total), size=min(total - 1, 4), replace=False)) if total > 1 else []
        blocks = [(piece, 1600 * end) for piece, end in zip(np.split(feats, cuts), [*cuts, total])]
        got = list(stream_frame_windows(iter(blocks), plan, sr=16000))
        want = frame_windows(feats, total / 10, plan)
        assert [s for s, _ in got] == [s for s, _ in want]
        assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(got, want))


def test_sliding_windows_hold_about_one_window():
    sliding = SlidingWindows(window=100, hop=50, whole_up_to=99)
    firsts = []
    for _ in range(40):
        firsts += [first for first, _ in sliding.push(np.zeros(30, np.float32))]
        assert sliding.buffer.shape[0] <= 100 + 30
    assert firsts == list(range(0, 1200 - 100 + 1, 50))
    assert sliding.finish() is None  # 1100 + 100 == 1200: the end is covered
    short = SlidingWindows(window=100, hop=50, whole_up_to=99)
    assert list(short.push(np.ones(60, np.float32))) == [] and short.short
    first, rows = short.finish()
    assert first == 0 and rows.shape == (60,)


def test_audio_slices_of_utterance_level_models():
    assert audio_slices(16000, 16000, None, None) == [(0, 16000)]
    assert audio_slices(16000, 16000, 2.0, None) == [(0, 16000)]  # shorter than the window: one slice
    assert audio_slices(40000, 16000, 1.0, 0.5) == [(0, 16000), (8000, 24000), (16000, 32000), (24000, 40000)]
    assert audio_slices(36000, 16000, 1.0, None)[-1] == (20000, 36000)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """3 speakers x 2 classes x 5 clips and a lightsernet store; half the clips are 4.8 s whose pitch changes.

    predict scores the long clips in windows (they exceed 1.5 x the model's 2.944 s input), and their windows
    differ, so scoring them whole would give other probabilities.
    """
    import soundfile as sf

    from sertool.corpora import folder
    from sertool.extraction.pipeline import extract_manifest
    from sertool.io.manifest import write_manifest
    from sertool.io.report import RunReport
    from tests.conftest import tone

    root = tmp_path_factory.mktemp("engine")
    write_pitch_corpus(root / "audio", speakers=3, clips=5, seconds=1.2, speaker_step=15, clip_step=4)
    for k, path in enumerate(sorted((root / "audio").rglob("*.wav"))[1::2]):
        base = 140.0 if "low" in path.parts else 330.0
        sf.write(path, np.concatenate([tone(2.4, freq=base + k, seed=k), tone(2.4, freq=470.0 - base, seed=k)]),
                 16000)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    manifest = write_manifest(rows, root / "m.csv")
    store = extract_manifest(manifest, features="lightsernet_mfcc", output=root / "feats").store_path
    return root, manifest, store


@pytest.mark.parametrize("norm", ["global", "speaker"])
def test_evaluate_scores_each_clip_as_predict_does(corpus, tmp_path, norm):
    """evaluate (stored features) and predict (audio) give every test clip the same probabilities, by construction."""
    from sertool.inference.predict import predict_audio
    from sertool.io.manifest import read_manifest
    from sertool.models.checkpoint import Checkpoint
    from sertool.scoring.evaluate import evaluate_run, score_ids
    from sertool.training.runs import read_split
    from sertool.training.trainer import TrainConfig, train_run

    _, manifest, store = corpus
    run = tmp_path / "run"
    train_run(manifest, store, output=run, model="light_sernet", protocol="loso", fold=0, valid_speakers=1,
              train_config=TrainConfig(epochs=6, batch_size=8, lr=3e-3, norm=norm))
    checkpoint = Checkpoint.load(run / "fold-0" / "checkpoint.pt")
    utterances = read_manifest(manifest)
    by_id = {u.id: u for u in utterances}
    test_ids = read_split(run / "fold-0" / "split.csv")["test"]
    assert len(test_ids) == 10 and sum(by_id[i].duration > 4.5 for i in test_ids) >= 4
    stored = score_ids(checkpoint, test_ids, utterances=utterances, stores=[(store, None)], batch_size=7)
    paths = [by_id[i].path for i in test_ids]
    speakers = [by_id[i].speaker for i in test_ids] if norm == "speaker" else None
    predicted = predict_audio(checkpoint, paths, speakers=speakers)
    assert max(len(w) for w in predicted.windows) >= 2  # the long clips were windowed, by both
    np.testing.assert_allclose(stored, predicted.probabilities, atol=1e-4)
    whole = predict_audio(checkpoint, paths, speakers=speakers, crop_tolerance=10.0)  # each clip one window
    assert np.abs(whole.probabilities - stored).max() > 1e-3  # the comparison sees how clips are windowed
    result = evaluate_run(run)
    rows = {r["id"]: r for r in csv.DictReader(open(result.out_dir / "predictions.csv"))}
    assert list(next(iter(rows.values())))[:5] == ["path", "id", "speaker", "label", "predicted"]
    for k, utt_id in enumerate(test_ids):
        row = rows[utt_id]
        assert row["fold"] == "0" and row["predicted"] == predicted.labels[k] and not row["error"]
        written = [float(row[f"p_{c}"]) for c in predicted.classes]
        np.testing.assert_allclose(written, predicted.probabilities[k], atol=1e-4)  # 5 decimals in the CSV
