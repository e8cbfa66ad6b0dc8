"""ssl features from local transformers folders (tiny random models built here) and the ssl_head model."""

from __future__ import annotations

import csv
import hashlib
import re

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
import torch  # noqa: E402

from sertool.errors import ConfigError  # noqa: E402
from sertool.features import build_extractor  # noqa: E402
from tests.conftest import SSL_KINDS, make_tiny_ssl, tone  # noqa: E402


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("ssl")
    return {kind: make_tiny_ssl(root / kind, kind) for kind in (*SSL_KINDS, "whisper")}


def direct(folder, samples):
    """Hidden states of the transformers model called directly (normalised input, as the extractor does)."""
    model = transformers.AutoModel.from_pretrained(folder, local_files_only=True).eval()
    x = (samples - samples.mean()) / np.sqrt(samples.var() + 1e-7)
    with torch.no_grad():
        return [h[0].numpy() for h in model(torch.from_numpy(x)[None], output_hidden_states=True).hidden_states]


@pytest.mark.parametrize("kind", SSL_KINDS)
def test_hidden_states_equal_the_model_called_directly(folders, kind):
    samples = tone(1.5, 16000, freq=210.0) * 0.5
    states = direct(folders[kind], samples)
    last = build_extractor("ssl", {"model": str(folders[kind])})
    first = build_extractor("ssl", {"model": str(folders[kind]), "layer": 0})
    every = build_extractor("ssl", {"model": str(folders[kind]), "layers": "all"})
    np.testing.assert_allclose(last.extract(samples, 16000), states[-1], atol=1e-5)
    np.testing.assert_allclose(first.extract(samples, 16000), states[0], atol=1e-5)
    np.testing.assert_allclose(every.extract(samples, 16000), np.concatenate(states, axis=1), atol=1e-5)
    assert every.dim == 3 * 32 == len(every.feature_names) and every.hidden_states == 3
    shift, span, _ = last.frame_timing
    assert (shift, span) == (0.02, 0.025) and abs(states[-1].shape[0] - 1.5 / shift) <= 2


def test_pooling_dtype_and_chunks(folders):
    folder = str(folders["wav2vec2"])
    samples = tone(3.0, 16000, freq=180.0) * 0.5
    frames = build_extractor("ssl", {"model": folder}).extract(samples, 16000)
    mean = build_extractor("ssl", {"model": folder, "pooling": "mean"})
    both = build_extractor("ssl", {"model": folder, "pooling": "mean_std"})
    assert mean.level == both.level == "utterance"
    np.testing.assert_allclose(mean.extract(samples, 16000)[0], frames.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(both.extract(samples, 16000)[0, 32:], frames.std(axis=0), atol=1e-5)
    half = build_extractor("ssl", {"model": folder, "dtype": "float16"}).extract(samples, 16000)
    assert half.dtype == np.float16 and np.allclose(half, frames, atol=2e-2 * np.abs(frames).max())
    chunked = build_extractor("ssl", {"model": folder, "chunk_seconds": 1.0}).extract(samples, 16000)
    assert abs(chunked.shape[0] - frames.shape[0]) <= 3  # three independent 1 s chunks, same frame rate


def test_the_folder_identity_is_part_of_the_config(folders, tmp_path):
    folder = make_tiny_ssl(tmp_path / "m", "wav2vec2", seed=1)
    config = build_extractor("ssl", {"model": str(folder)}).config
    weights = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()[:16]
    assert re.fullmatch(f"[0-9a-f]{{16}}-{weights}", config.model_id)  # <configs' sha256>-<weights' sha256>
    assert config.to_dict()["model_id"] == config.model_id
    make_tiny_ssl(folder, "wav2vec2", seed=2)  # other weights at the same path
    other = build_extractor("ssl", {"model": str(folder)}).config
    assert other.model_id != config.model_id and other.config_hash() != config.config_hash()
    with pytest.raises(ConfigError, match="model folder changed"):
        build_extractor(config.to_dict())
    with pytest.raises(ConfigError, match="model=PATH"):
        build_extractor("ssl")
    with pytest.raises(ConfigError, match="config.json"):
        build_extractor("ssl", {"model": str(tmp_path)})
    with pytest.raises(ConfigError, match="outside"):
        build_extractor("ssl", {"model": str(folders["hubert"]), "layer": 7}).extract(tone(1.0), 16000)


@pytest.mark.parametrize("kind", ["wavlm", "whisper"])
def test_extract_train_evaluate_predict_with_ssl_head(folders, tmp_path, kind):
    from sertool.models.checkpoint import Checkpoint
    from sertool.corpora import folder as folder_corpus
    from sertool.scoring.evaluate import evaluate_run
    from sertool.extraction.pipeline import extract_manifest
    from sertool.io.manifest import write_manifest
    from sertool.inference.predict import predict_files
    from sertool.io.report import RunReport
    from sertool.store.reader import FeatureStore
    from sertool.training.trainer import TrainConfig, train_run
    from tests.conftest import assert_evaluation_consistent, write_pitch_corpus

    write_pitch_corpus(tmp_path / "audio", speakers=3, clips=4, seconds=1.0, speaker_step=12, clip_step=3)
    rows = folder_corpus.prepare(tmp_path / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    manifest = write_manifest(rows, tmp_path / "m.csv")
    overrides = {"model": str(folders[kind]), "layers": "all", "dtype": "float16"}
    store = extract_manifest(manifest, features="ssl", output=tmp_path / "feats", settings=overrides).store_path
    with FeatureStore(store) as s:
        assert len(s) == 24 and s[s.keys()[0]].dtype == np.float16 and s.dim == 96
    train_run(manifest, store, model="ssl_head", output=tmp_path / "run", protocol="loso", fold=0,
              valid_speakers=1, train_config=TrainConfig(epochs=3, batch_size=8, lr=3e-3, specaugment=False))
    checkpoint = Checkpoint.load(tmp_path / "run" / "fold-0" / "checkpoint.pt")
    assert checkpoint.model_config["layers"] == 3  # set from the store: 3 hidden states
    model = checkpoint.build_model()
    assert torch.isclose(model.layer_mixture().sum(), torch.tensor(1.0))
    assert_evaluation_consistent(tmp_path / "run", evaluate_run(tmp_path / "run"))
    report = predict_files(tmp_path / "run" / "fold-0" / "checkpoint.pt", [tmp_path / "audio"], tmp_path / "p.csv",
                           trust_code=True)  # an ssl checkpoint names its encoder folder: loaded only when trusted
    assert report.ok == 24 and report.failed == 0
    assert {r["error"] for r in csv.DictReader(open(tmp_path / "p.csv"))} == {""}


def test_whisper_encoder_hidden_states_equal_the_model_called_directly(folders):
    """Whisper: log-mel of each chunk padded to the encoder's input (2 s here), frames of real audio kept."""
    folder = folders["whisper"]
    samples = tone(3.3, 16000, freq=230.0) * 0.5
    fe = transformers.WhisperFeatureExtractor.from_pretrained(folder)
    encoder = transformers.WhisperModel.from_pretrained(folder).get_encoder().eval()
    expected = []
    for piece in (samples[:32000], samples[32000:]):  # the 2 s chunks the extractor makes
        mel = fe(piece, sampling_rate=16000, return_tensors="pt", padding="max_length", max_length=32000)
        with torch.no_grad():
            states = encoder(mel.input_features, output_hidden_states=True).hidden_states
        expected.append([h[0, :-(-piece.shape[0] // 320)].numpy() for h in states])
    every = build_extractor("ssl", {"model": str(folder), "layers": "all"})
    got = every.extract(samples, 16000)
    want = np.concatenate([np.concatenate(states, axis=1) for states in expected])
    assert got.shape == (100 + 65, 3 * 32) and every.hidden_states == 3 and every.dim == 96
    np.testing.assert_allclose(got, want, atol=1e-5)
    shift, span, lead = every.frame_timing
    assert (shift, span, lead) == (0.02, 0.065, 0.0325)
    pooled = build_extractor("ssl", {"model": str(folder), "pooling": "mean", "layer": 1}).extract(samples, 16000)
    np.testing.assert_allclose(pooled[0], want[:, 32:64].mean(axis=0), atol=1e-5)


@pytest.mark.parametrize("kind", ["wav2vec2", "whisper"])
def test_chunks_batched_per_forward_pass_equal_one_at_a_time(folders, kind):
    samples = tone(5.3, 16000, freq=170.0) * 0.5  # 1 s chunks: five of one length, then a shorter tail
    one = build_extractor("ssl", {"model": str(folders[kind]), "chunk_seconds": 1.0, "layers": "all"})
    batched = build_extractor("ssl", {"model": str(folders[kind]), "chunk_seconds": 1.0, "layers": "all",
                                      "batch": 4})
    assert len(list(batched._batches([samples[i:i + 16000] for i in range(0, samples.shape[0], 16000)]))) == \
        (2 if kind == "whisper" else 3)  # whisper pads every chunk, so the tail joins the second batch
    np.testing.assert_allclose(batched.extract(samples, 16000), one.extract(samples, 16000), atol=1e-5)
    with pytest.raises(ConfigError, match="batch 0"):
        build_extractor("ssl", {"model": str(folders[kind]), "batch": 0})
