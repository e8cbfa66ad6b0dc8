"""predict across files: windows of several files batched together, feature workers (--jobs), input order kept."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sertool.inference.predict import checkpoint_path, predict_files
from tests.conftest import REPO, write_audio


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The example clips, a 7 s file (windowed), a 130 s one (streamed), a broken file and a 0.3 s clip."""
    out = tmp_path_factory.mktemp("pipeline")
    (out / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    return [*sorted((REPO / "examples").rglob("*.flac")), write_audio(out / "seven.wav", seconds=7.0, freq=190.0),
            out / "broken.wav", write_audio(out / "long.wav", seconds=130.0, freq=150.0),
            write_audio(out / "short.wav", seconds=0.3, freq=320.0)]


def scores(path):
    rows = list(csv.DictReader(open(path)))
    probs = np.array([[float(v) if v else np.nan for k, v in r.items() if k.startswith("p_")] for r in rows])
    return [r["path"] for r in rows], [r["error"] for r in rows], probs


@pytest.mark.parametrize("options", [{"jobs": 2}, {"batch_size": 1}, {"jobs": 3, "batch_size": 5}, {"segments": True}])
def test_batched_and_parallel_scoring_equals_file_by_file(inputs, tmp_path, options):
    segments = options.get("segments", False)
    reference = predict_files(checkpoint_path("default"), inputs, tmp_path / "one.csv", batch_size=1, segments=segments)
    report = predict_files(checkpoint_path("default"), inputs, tmp_path / "many.csv", **options)
    assert report.ok == reference.ok == len(inputs) - 1 and report.failed == 1
    paths, errors, probs = scores(tmp_path / "many.csv")
    ref_paths, ref_errors, ref_probs = scores(tmp_path / "one.csv")
    assert paths == ref_paths  # input order, also with workers
    assert [bool(e) for e in errors] == [bool(e) for e in ref_errors] and "broken.wav" in errors[paths.index(
        str(inputs[-3]))]
    np.testing.assert_allclose(probs, ref_probs, atol=1.5e-4)  # 4-decimal CSV, float noise of batch make-up


def test_resume_with_workers_scores_only_the_rest(inputs, tmp_path):
    first = predict_files(checkpoint_path("default"), inputs[:3], tmp_path / "p.csv", jobs=2)
    assert first.ok == 3
    again = predict_files(checkpoint_path("default"), inputs, tmp_path / "p.csv", jobs=2)
    assert again.skipped == 3 and again.ok == len(inputs) - 4 and again.failed == 1
    paths, _, _ = scores(tmp_path / "p.csv")
    assert sorted(paths) == sorted(str(p) for p in inputs) and len(paths) == len(set(paths))
