"""The public Python API (``import sertool``): lazy names, one call per command, in-memory predict, process state."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import sertool
from tests.conftest import tone, write_audio, write_pitch_corpus

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ravdess"
CLIPS = sorted(EXAMPLES.glob("*/*.flac"))


def test_import_is_cheap_and_every_public_name_resolves():
    code = ("import sys, sertool\n"
            "heavy = [m for m in ('numpy', 'torch', 'h5py', 'librosa', 'sertool.api') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    for name in sertool.__all__:
        assert getattr(sertool, name) is not None, name
    assert set(sertool.__all__) <= set(dir(sertool))
    with pytest.raises(AttributeError):
        sertool.no_such_name  # noqa: B018


def test_command_names_stay_functions_after_the_modules_are_imported():
    import sertool.corpora.augment  # noqa: F401
    import sertool.scoring.compare  # noqa: F401
    import sertool.scoring.evaluate  # noqa: F401
    import sertool.extraction.pipeline  # noqa: F401
    import sertool.inference.predict  # noqa: F401
    import sertool.training.trainer  # noqa: F401

    from sertool.api import COMMANDS

    assert {"prepare", "extract", "train", "predict_files", "store_describe", "store_merge"} <= set(COMMANDS)
    for name in COMMANDS:
        assert callable(getattr(sertool, name)) and getattr(sertool, name).__module__.startswith("sertool.api."), name


def test_registries_are_listed():
    assert {"light_sernet", "svm", "drn_mhsa"} <= set(sertool.model_names())
    assert {"lightsernet_mfcc", "egemaps_functionals"} <= set(sertool.feature_names())
    from sertool.corpora import PREPARERS

    assert sertool.corpus_names() == sorted(PREPARERS)
    assert {"ased", "baved", "crema-d", "emodb", "folder", "iemocap", "ravdess"} <= set(sertool.corpus_names())


@pytest.mark.skipif(not CLIPS, reason="examples/ravdess missing")
def test_predict_in_memory_equals_predict_into_csv(tmp_path):
    result = sertool.predict("ravdess", [str(c) for c in CLIPS])
    assert len(result) == len(CLIPS) and result.probabilities.shape == (len(CLIPS), 8)
    assert result.probabilities.dtype == np.float32
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert result.labels == [result.classes[k] for k in result.probabilities.argmax(axis=1)]
    report = sertool.predict_files("ravdess", EXAMPLES, output=tmp_path / "p.csv")
    assert report.ok == len(CLIPS)
    rows = {r["path"]: r for r in csv.DictReader(open(tmp_path / "p.csv"))}
    for name, label, probs in zip(result.names, result.labels, result.probabilities):
        assert rows[name]["predicted"] == label
        np.testing.assert_allclose([float(rows[name][f"p_{c}"]) for c in result.classes], probs, atol=1e-4)


@pytest.mark.skipif(not CLIPS, reason="examples/ravdess missing")
def test_predict_takes_samples_in_memory_at_any_rate_and_channel_count():
    samples, sr = sf.read(CLIPS[0], dtype="float32")
    from_file = sertool.predict("ravdess", CLIPS[0])
    pair = sertool.predict("ravdess", (samples, sr))
    assert pair.names == ["<array 0>"]
    np.testing.assert_allclose(pair.probabilities, from_file.probabilities, atol=1e-6)
    stereo = sertool.predict("ravdess", (np.stack([samples, samples], axis=1), sr))
    np.testing.assert_allclose(stereo.probabilities, from_file.probabilities, atol=1e-5)
    import soxr

    resampled = sertool.predict("ravdess", (soxr.resample(samples, sr, 44100).astype(np.float32), 44100))
    assert resampled.labels == from_file.labels  # 16 kHz -> 44.1 kHz -> 16 kHz: nearly the same audio
    mixed = sertool.predict("ravdess", [(samples, sr), str(CLIPS[1])])
    assert mixed.names == ["<array 0>", str(CLIPS[1])] and mixed.durations.shape == (2,)
    assert all(start < end for start, end, _ in mixed.windows[0])


def test_predict_in_memory_errors_are_sertool_errors(tmp_path):
    with pytest.raises(sertool.ConfigError, match="path, a list of paths"):
        sertool.predict("ravdess", 42)
    with pytest.raises(sertool.AudioError, match="missing.wav"):
        sertool.predict("ravdess", tmp_path / "missing.wav")
    with pytest.raises(sertool.AudioError, match="NaN"):
        sertool.predict("ravdess", (np.full(16000, np.nan, dtype=np.float32), 16000))
    with pytest.raises(sertool.AudioError, match=r"<array 0>.*shape"):
        sertool.predict("ravdess", (np.zeros((2, 2, 2), dtype=np.float32), 16000))


def test_speaker_normalised_predict_in_memory_needs_and_uses_speakers(tmp_path):
    clips = [tone(2.0, freq=150 + 15 * i, seed=i) for i in range(10)]
    with pytest.raises(sertool.ConfigError, match="speakers="):
        sertool.predict("speaker", [(c, 16000) for c in clips])
    with pytest.raises(sertool.ConfigError, match="one per input"):
        sertool.predict("speaker", [(c, 16000) for c in clips], speakers=["a"])
    result = sertool.predict("speaker", [(c, 16000) for c in clips], speakers=["a"] * 10)
    for i, c in enumerate(clips):
        write_audio(tmp_path / "spk_a" / f"{i:02d}.wav", seconds=2.0, freq=150 + 15 * i, seed=i)
    report = sertool.predict_files("speaker", tmp_path / "spk_a", output=tmp_path / "p.csv",
                                   speaker_regex=r"(spk_\w)/")
    assert report.ok == 10
    rows = sorted(csv.DictReader(open(tmp_path / "p.csv")), key=lambda r: r["path"])
    csv_probs = np.array([[float(r[f"p_{c}"]) for c in result.classes] for r in rows])
    np.testing.assert_allclose(result.probabilities, csv_probs, atol=2e-4)
    with pytest.raises(sertool.SertoolError, match="at least 10"):
        sertool.predict("speaker", [(c, 16000) for c in clips[:3]], speakers=["a"] * 3)


def _thread_state():
    import torch
    from threadpoolctl import threadpool_info

    return torch.get_num_threads(), {i["filepath"]: i["num_threads"] for i in threadpool_info()}


@pytest.mark.skipif(not CLIPS, reason="examples/ravdess missing")
def test_library_calls_leave_thread_settings_and_the_plot_backend_as_they_were(tmp_path):
    import matplotlib
    import torch

    import sertool.scoring.evaluate  # noqa: F401  (its imports load their BLAS pools before the snapshot)

    matplotlib.use("svg")
    torch.set_num_threads(1)
    try:
        before = _thread_state()
        sertool.predict("ravdess", CLIPS[:2])
        manifest = sertool.prepare("ravdess", EXAMPLES, output=tmp_path / "m.csv").manifest
        sertool.extract(manifest, features="mfcc_stats", output=tmp_path / "feats")
        sertool.scoring.plots.plot_confusion(np.eye(2, dtype=int), ["a", "b"], tmp_path / "c.png", title="t")
        threads, pools = _thread_state()
        assert threads == before[0]
        assert {k: v for k, v in pools.items() if k in before[1]} == before[1]
        assert matplotlib.get_backend() == "svg" and (tmp_path / "c.png").stat().st_size > 1000
    finally:
        torch.set_num_threads(max(1, __import__("os").cpu_count() or 1))


def test_prepare_checks_its_options_in_the_library(tiny_corpus, tmp_path):
    with pytest.raises(sertool.ConfigError, match="--label-set do"):
        sertool.prepare("folder", tiny_corpus, label_set="4")
    with pytest.raises(sertool.ConfigError, match="unknown corpus"):
        sertool.prepare("nope", tiny_corpus)
    result = sertool.prepare("folder", tiny_corpus)  # no output: rows only
    assert len(result.rows) == 6 and result.manifest is None and result.label_counts() == {"angry": 3, "calm": 3}
    written = sertool.prepare("folder", tiny_corpus, output=tmp_path / "m.csv", per_speaker=None)
    assert written.manifest.exists()


def test_augment_writes_its_failures_file_in_the_library(tiny_corpus, tmp_path):
    manifest = sertool.prepare("folder", tiny_corpus, output=tmp_path / "m.csv").manifest
    (tiny_corpus / "calm" / "clip0.wav").write_bytes(b"not audio")
    report = sertool.augment(manifest, output=tmp_path / "aug.csv", audio_dir=tmp_path / "aug", gain=[-6.0],
                             max_failures=5)
    assert report.ok == 5 and report.failed == 1
    assert report.failures_path == tmp_path / "aug.failures.csv" and report.failures_path.exists()
    with pytest.raises(sertool.ConfigError, match="no augmentation"):
        sertool.augment(manifest, output=tmp_path / "x.csv", audio_dir=tmp_path / "x")


def test_train_evaluate_and_compare_from_python(tmp_path):
    root = write_pitch_corpus(tmp_path / "audio", speakers=4, clips=3, seconds=0.8, speaker_step=12, clip_step=3,
                              seed_step=1)
    manifest = sertool.prepare("folder", root, speaker_regex=r"/(spk\d)_", output=tmp_path / "m.csv").manifest
    store = sertool.extract(manifest, features="mfcc_stats", output=tmp_path / "feats").store_path
    X, y, ids, lengths = sertool.FeatureStore(store).to_arrays()
    assert X.shape == (24, 80) and len(y) == len(ids) == 24 and (lengths == 1).all()
    lines = []
    folds = sertool.train(manifest, store, model="logreg", output=tmp_path / "run", protocol="loso",
                          valid_speakers=1, settings={"norm": "global"}, log=lines.append)
    assert len(folds) == 4 and lines
    result = sertool.evaluate(tmp_path / "run")
    assert result.folds["pooled"]["UA"] > 0.75 and set(result.labels) == {"high", "low"}
    assert (tmp_path / "run" / "confusion_folds.png").exists()
    rows = sertool.compare([tmp_path / "run", tmp_path / "run"])
    assert len(rows) == 2
    with pytest.raises(sertool.ConfigError, match="label_map goes with"):
        sertool.evaluate(tmp_path / "run", label_map={"a": "b"})


def _section(doc: str, title: str) -> list[str]:
    """The lines of numpydoc section ``title`` of ``doc`` (dedented), up to the next section or the end."""
    import inspect

    lines = inspect.cleandoc(doc).splitlines()
    start = lines.index(title) + 2  # the title and its underline
    end = next((i for i in range(start, len(lines) - 1) if set(lines[i + 1]) == {"-"}), len(lines))
    return lines[start:end]


def test_every_api_call_names_the_error_kinds_it_raises():
    import sertool.api
    from sertool.errors import ERROR_KINDS

    calls = [*sertool.api.COMMANDS, "feature_config", "train_setup"]
    for name in calls:
        doc = getattr(sertool.api, name).__doc__
        assert "\nRaises\n" in __import__("inspect").cleandoc(doc), f"{name}: no Raises section"
        kinds = [line.strip() for line in _section(doc, "Raises") if line and not line.startswith(" ")]
        assert kinds and set(kinds) <= set(ERROR_KINDS), (name, kinds)
    assert set(ERROR_KINDS) <= set(sertool.__all__)
    assert sertool.CheckpointError is __import__("sertool.models.checkpoint").models.checkpoint.CheckpointError
    assert issubclass(sertool.ExportError, sertool.SertoolError)


def test_every_result_type_is_an_exported_dataclass():
    import dataclasses

    import sertool.api

    for name in [*sertool.api.COMMANDS, "train_setup"]:
        returns = _section(getattr(sertool.api, name).__doc__, "Returns")[0]
        type_name = returns.split()[-1].rsplit(".", 1)[-1]  # "list of sertool.x.FoldResult" -> FoldResult
        assert type_name in sertool.__all__, (name, type_name)
        assert dataclasses.is_dataclass(getattr(sertool, type_name)), type_name


@pytest.mark.skipif(not CLIPS, reason="examples/ravdess missing")
def test_extract_shards_merge_describe_and_export_csv(tmp_path):
    manifest = sertool.prepare("ravdess", EXAMPLES, output=tmp_path / "m.csv").manifest
    parts = [sertool.extract(manifest, features="mfcc_stats", output=tmp_path / "f", shard=shard, jobs=1)
             for shard in ("0/2", (1, 2))]
    assert [p.report.ok for p in parts] == [3, 3] and all(".shard-" in p.store_path.name for p in parts)
    with pytest.raises(sertool.ConfigError, match="K/N"):
        sertool.extract(manifest, features="mfcc_stats", output=tmp_path / "f", shard="2")
    merged = sertool.store_merge([p.store_path for p in parts], output=tmp_path / "all.h5")
    assert merged.entries == 6 and merged.stores == [p.store_path for p in parts]
    [description] = sertool.store_describe(merged.output, max_rows=2)
    assert "6 entries, feature set mfcc_stats" in str(description) and description.text.endswith("... 4 more")
    full = sertool.extract(manifest, features="mfcc_stats", output=tmp_path / "f", export_csv=tmp_path / "x.csv")
    assert full.merged == 6 and full.report.ok == 0 and full.csv_rows == 6
    rows = list(csv.DictReader(open(tmp_path / "x.csv")))
    assert len(rows) == 6 and list(rows[0])[:3] == ["id", "label", "speaker"]
    assert sertool.extract(manifest, features="mfcc_stats", output=tmp_path / "f").csv_rows is None


def test_config_views_match_what_the_runs_use(tmp_path):
    config = sertool.feature_config("mfcc", settings={"n_mfcc": 13})
    assert config.n_mfcc == 13 and "n_mfcc = 13" in config.to_toml()
    (tmp_path / "t.toml").write_text("[train]\nepochs = 3\n[model]\nC = 2.0\n")
    setup = sertool.train_setup("svm", config=tmp_path / "t.toml", settings={"lr": 0.5})
    assert setup.train_config.epochs == 3 and setup.train_config.lr == 0.5 and setup.model_config.C == 2.0
    assert setup.to_toml().startswith("# svm: utterance-level features") and "[train]\n" in setup.to_toml()
    with pytest.raises(sertool.ConfigError, match="recipe"):
        sertool.train_setup("svm", recipe="fast")
    assert "egemaps_functionals" in sertool.feature_presets() and sertool.feature_names() == sorted(
        sertool.feature_presets())


@pytest.mark.skipif(not CLIPS, reason="examples/ravdess missing")
def test_predict_files_reads_stdin_and_uses_workers(tmp_path):
    import io

    raw = (sertool.load_audio(CLIPS[0], sr=16000) * 32767).astype("<i2").tobytes()
    report = sertool.predict_files("ravdess", ["-", CLIPS[1]], output=tmp_path / "p.csv", stdin=io.BytesIO(raw),
                                   rate=16000, jobs=2)
    assert report.ok == 2
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["path"] for r in rows] == ["-", str(CLIPS[1])]
    expected = sertool.predict("ravdess", CLIPS[0])
    assert rows[0]["predicted"] == expected.labels[0]
    with pytest.raises(sertool.ConfigError, match="rate describes raw PCM"):
        sertool.predict_files("ravdess", CLIPS[0], output=tmp_path / "q.csv", rate=16000)


@pytest.mark.skipif(not CLIPS, reason="examples/ravdess missing")
def test_prepare_vad_split_writes_one_row_per_region(tmp_path):
    pytest.importorskip("silero_vad")
    silence = np.zeros(16000, dtype=np.float32)
    speech = [sertool.load_audio(c, sr=16000) for c in CLIPS[:2]]
    (tmp_path / "calls" / "neutral").mkdir(parents=True)
    sf.write(tmp_path / "calls" / "neutral" / "call1.wav", np.concatenate([silence, speech[0], silence, silence,
                                                                           speech[1], silence]), 16000)
    result = sertool.prepare("folder", tmp_path / "calls", output=tmp_path / "m.csv",
                             vad_split=tmp_path / "segments")
    assert len(result.rows) >= 2 and all(r.extra["parent_id"] == "neutral__call1.wav" for r in result.rows)
    assert all(r.path.parent == tmp_path / "segments" and r.path.is_file() for r in result.rows)
