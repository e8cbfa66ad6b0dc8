"""Shared fixtures: generated audio, fake corpus trees, and the real shared corpora.

Tests that need ``../shared/data`` skip cleanly when it is absent, so the
suite passes on a user's machine.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__import__("os").environ.get("SERTOOL_SHARED_DATA", REPO.parent / "shared" / "data"))
RAVDESS = SHARED_DATA / "ravdess"
EMODB = SHARED_DATA / "emodb-2s"

needs_ravdess = pytest.mark.skipif(not RAVDESS.is_dir(), reason="../shared/data/ravdess not available")
needs_emodb = pytest.mark.skipif(not EMODB.is_dir(), reason="../shared/data/emodb-2s not available")


#: A wait that sees no progress for this long is a hang: the test fails instead of waiting forever. Only a guard:
#: no test asserts how fast something happens, so a loaded machine makes the tests slower, never red.
HANG_SECONDS = 600


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen | None = None, *, what: str = "progress",
             poll_seconds: float = 0.01) -> bool:
    """Poll until ``ready()`` is true, or until ``proc`` has exited; wait on events, never on wall-clock estimates.

    Parameters
    ----------
    ready
        The event: a file appearing, a row written, an entry stored.
    proc
        The process doing the work; None to wait on ``ready`` alone.
    what
        Names the event in the failure message.
    poll_seconds
        Pause between two looks.

    Returns
    -------
    bool
        True once ``ready()`` is true; False when ``proc`` exited without it.

    Raises
    ------
    AssertionError
        ``ready()`` stayed false for :data:`HANG_SECONDS` while ``proc`` ran: a hang.
    """
    deadline = time.monotonic() + HANG_SECONDS
    while not ready():
        if proc is not None and proc.poll() is not None:
            return bool(ready())  # a last look: the event may have come just before the exit
        assert time.monotonic() < deadline, f"no {what} in {HANG_SECONDS} s: a hang"
        time.sleep(poll_seconds)
    return True


def stored_entries(folder: Path) -> int | None:
    """Entries in the feature store of ``folder`` as of its last checkpoint (0 before there is one).

    Checkpoints rename a finished copy over the store, so a reader sees a whole
    store; None when a rename raced with the open (look again at the next poll).
    """
    from sertool.errors import StoreError
    from sertool.store.reader import FeatureStore

    for path in folder.glob("*.h5") if folder.exists() else ():
        try:
            with FeatureStore(path) as store:
                return len(store)
        except (StoreError, OSError):
            return None
    return 0


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 220.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A harmonic tone plus a little noise, float32 (num_samples,) or (num_samples, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = sum(0.3 / k * np.sin(2 * np.pi * freq * k * t) for k in range(1, 5)) + 0.01 * rng.standard_normal(t.size)
    y = y.astype(np.float32)
    if channels > 1:
        y = np.stack([y * (0.5 + 0.5 * c) for c in range(channels)], axis=1)
    return y


def write_audio(path: Path, seconds: float = 1.0, sr: int = 16000, subtype: str | None = None, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, sr, **kw), sr, subtype=subtype)
    return path


def write_pitch_corpus(audio_dir: Path, *, speakers: int, clips: int, seconds: float, speaker_step: float,
                       clip_step: float, shift: float = 0.0, seed_step: int = 10) -> Path:
    """``speakers`` x 2 classes (``low`` 140 Hz, ``high`` 330 Hz) x ``clips`` tones as ``DIR/<label>/spk<s>_<i>.wav``.

    Clip ``i`` of speaker ``s`` sits ``speaker_step * s + clip_step * i + shift`` Hz above its class's base
    (seed ``seed_step * s + i``): an easy corpus with speakers, for ``folder`` with ``speaker_regex=r"/(spk\\d)_"``.
    """
    for s in range(speakers):
        for label, base in (("low", 140.0), ("high", 330.0)):
            for i in range(clips):
                write_audio(audio_dir / label / f"spk{s}_{i}.wav", seconds=seconds,
                            freq=base + speaker_step * s + clip_step * i + shift, seed=seed_step * s + i)
    return audio_dir


@pytest.fixture
def make_audio(tmp_path):
    """``make_audio("a/b.wav", seconds=1.0, sr=16000, subtype=None, ...)`` writes a tone file."""

    def make(rel: str, **kw) -> Path:
        return write_audio(tmp_path / rel, **kw)

    return make


@pytest.fixture
def ravdess_subset(tmp_path) -> Path:
    """Actors 01 and 02 of the shared RAVDESS copy (120 files), copied to a temp folder."""
    if not RAVDESS.is_dir():
        pytest.skip("../shared/data/ravdess not available")
    out = tmp_path / "ravdess"
    for actor in ("Actor_01", "Actor_02"):
        shutil.copytree(RAVDESS / actor, out / actor)
    return out


@pytest.fixture
def tiny_corpus(tmp_path) -> Path:
    """A folder corpus: 2 labels x 3 short generated clips, as DIR/<label>/<name>.wav."""
    root = tmp_path / "tiny"
    for i, label in enumerate(("angry", "calm")):
        for j in range(3):
            write_audio(root / label / f"clip{j}.wav", seconds=0.6 + 0.1 * j, freq=150 + 100 * i + 10 * j, seed=j)
    return root


def assert_evaluation_consistent(run_dir: Path, result) -> None:
    """``result`` (an EvaluationResult of ``run_dir``) agrees with the files it wrote and with the run's splits.

    Every fold's test utterances appear exactly once in predictions.csv, and the
    pooled UA / WA recomputed from those rows equal the reported ones.
    """
    import csv

    from sertool.metrics import confusion, scores

    out = Path(result.out_dir)
    rows = list(csv.DictReader(open(out / "predictions.csv")))
    tests = [r["id"] for split in sorted(Path(run_dir).glob("fold-*/split.csv"))
             for r in csv.DictReader(open(split)) if r["role"] == "test"]
    assert sorted(r["id"] for r in rows) == sorted(tests)
    labels = list(result.labels)
    truth = np.array([labels.index(r["label"]) for r in rows])
    guess = np.array([labels.index(r["predicted"]) for r in rows])
    pooled = scores(confusion(truth, guess, len(labels)))
    assert abs(pooled["UA"] - result.folds["pooled"]["UA"]) < 1e-9
    assert abs(pooled["WA"] - result.folds["pooled"]["WA"]) < 1e-9


#: Tiny randomly initialised encoders (2 layers, hidden size 32) for the ``ssl`` extractor tests.
SSL_KINDS = ("wav2vec2", "hubert", "wavlm", "data2vec-audio")


def make_tiny_ssl(folder: Path, kind: str = "wav2vec2", seed: int = 0) -> Path:
    """Save a tiny ``transformers`` encoder of ``kind`` to ``folder`` (config.json + model.safetensors)."""
    import torch
    import transformers

    classes = {"wav2vec2": (transformers.Wav2Vec2Config, transformers.Wav2Vec2Model),
               "hubert": (transformers.HubertConfig, transformers.HubertModel),
               "wavlm": (transformers.WavLMConfig, transformers.WavLMModel),
               "data2vec-audio": (transformers.Data2VecAudioConfig, transformers.Data2VecAudioModel)}
    if kind == "whisper":  # 2 encoder layers of width 32; 100 positions: a 2 s input instead of 30 s
        config = transformers.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
                                            num_mel_bins=80, max_source_positions=100, max_target_positions=16,
                                            vocab_size=64, pad_token_id=1, bos_token_id=2, eos_token_id=3,
                                            decoder_start_token_id=2)
        torch.manual_seed(seed)
        transformers.WhisperModel(config).eval().save_pretrained(folder)
        transformers.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
        return folder
    config_cls, model_cls = classes[kind]
    config = config_cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                        **({"num_buckets": 32, "max_bucket_distance": 80} if kind == "wavlm" else {}))
    torch.manual_seed(seed)
    model_cls(config).eval().save_pretrained(folder)
    return folder


_TINY_SSL: list[Path] = []


def preset_overrides(name: str) -> dict:
    """Overrides a preset needs to build: ``ssl`` gets a tiny wav2vec2 folder (skips without transformers)."""
    if name != "ssl":
        return {}
    pytest.importorskip("transformers")
    if not _TINY_SSL:
        import tempfile

        _TINY_SSL.append(make_tiny_ssl(Path(tempfile.mkdtemp(prefix="sertool-tiny-ssl-")) / "wav2vec2"))
    return {"model": str(_TINY_SSL[0])}


#: Short training settings for the tests that train networks on :func:`pitch_corpus` (2 epochs, no SpecAugment).
FAST_TRAINING = dict(epochs=2, batch_size=8, lr=3e-3, specaugment=False)


class PitchCorpus(NamedTuple):
    """The corpus of :func:`pitch_corpus`: its folder, manifest and two feature stores."""

    root: Path  # the folder holding audio/, m.csv and feats/
    manifest: Path  # 3 speakers x 2 labels x 6 clips of 0.5 s
    frames: Path  # frame-level store (lightsernet_mfcc)
    vectors: Path  # utterance-level store (mfcc_stats)


@pytest.fixture(scope="module")
def pitch_corpus(tmp_path_factory) -> PitchCorpus:
    """3 speakers (spk0..spk2) x 2 labels (low, high) x 6 clips of 0.5 s, extracted frame- and utterance-level."""
    from sertool.corpora import folder
    from sertool.extraction.pipeline import extract_manifest
    from sertool.io.manifest import write_manifest
    from sertool.io.report import RunReport

    root = tmp_path_factory.mktemp("pitch")
    write_pitch_corpus(root / "audio", speakers=3, clips=6, seconds=0.5, speaker_step=15, clip_step=4)
    rows = folder.prepare(root / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    manifest = write_manifest(rows, root / "m.csv")
    frames = extract_manifest(manifest, features="lightsernet_mfcc", output=root / "feats").store_path
    vectors = extract_manifest(manifest, features="mfcc_stats", output=root / "feats").store_path
    return PitchCorpus(root, manifest, frames, vectors)
