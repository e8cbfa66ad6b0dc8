"""The bundled default model (multi-corpus, ``set`` normalisation, gain-levelled features) on shared clips."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

import sertool
from sertool.cli.main import cli
from sertool.inference.bundled import BUNDLED

RAVDESS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ravdess"


@pytest.mark.skipif(not RAVDESS.is_dir() or not BUNDLED["default"].is_file(), reason="shared RAVDESS or model absent")
def test_the_same_clip_at_any_gain_gets_the_same_label_in_a_scored_set(tmp_path):
    clips = sorted(RAVDESS.glob("Actor_1[56]/*.flac"))[:24]
    folder = tmp_path / "set"
    folder.mkdir()
    for clip in clips[1:]:
        shutil.copy(clip, folder / clip.name)
    samples, sr = sf.read(clips[0], dtype="float32")
    results = {}
    for db in (0, -20, -40, -60):  # float samples: the same clip, only its gain differs (16-bit files at -40 dB
        # would add real quantisation noise: a different recording)
        sf.write(folder / "probe.wav", samples * np.float32(10 ** (db / 20)), sr, subtype="FLOAT")
        out = tmp_path / f"p{db}.csv"
        result = CliRunner().invoke(cli, ["predict", str(folder), "-o", str(out)])
        assert result.exit_code == 0, result.output
        rows = {Path(r["path"]).name: r for r in csv.DictReader(open(out))}
        assert len(rows) == 24 and not (tmp_path / f"p{db}.warnings.csv").exists()  # 24 files: their own set
        results[db] = rows["probe.wav"]
    in_memory = sertool.predict("default", sorted(folder.iterdir()))  # the Python API scores the same set
    by_name = dict(zip(sorted(p.name for p in folder.iterdir()), in_memory.labels))
    assert by_name == {name: r["predicted"] for name, r in rows.items()}
    labels = {db: r["predicted"] for db, r in results.items()}
    assert len(set(labels.values())) == 1, labels
    confidences = [float(r["confidence"]) for r in results.values()]
    assert max(confidences) - min(confidences) < 0.005


def test_vad_with_the_set_normalised_default_is_refused_not_ignored(tmp_path):
    from tests.conftest import write_audio

    clip = write_audio(tmp_path / "talk.wav", seconds=2.0)
    result = CliRunner().invoke(cli, ["predict", str(clip), "--vad", "-o", str(tmp_path / "p.csv")])
    assert result.exit_code != 0 and "does not work with a speaker- or set-normalised model" in result.output
    with pytest.raises(sertool.SertoolError, match="set-normalised model"):
        sertool.predict("default", clip, vad=True)
