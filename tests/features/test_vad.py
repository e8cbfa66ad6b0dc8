"""predict --vad: Silero VAD regions of a file made of example clips joined by known silences."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("silero_vad")

import sertool  # noqa: E402
from sertool.inference.predict import predict_files  # noqa: E402
from tests.conftest import REPO  # noqa: E402

SR = 16000


@pytest.fixture(scope="module")
def joined(tmp_path_factory):
    """Three example clips, trimmed of their own silence, with 1.5 s of silence between: (path, speech intervals)."""
    import librosa

    out = tmp_path_factory.mktemp("vad") / "joined.wav"
    clips = sorted((REPO / "examples").rglob("*.flac"))[:3]
    pieces, truth, cursor = [], [], 0
    for clip in clips:
        speech, _ = librosa.effects.trim(sertool.load_audio(clip, sr=SR), top_db=30)
        pieces += [np.zeros(int(1.5 * SR), np.float32), speech]
        cursor += int(1.5 * SR)
        truth.append((cursor / SR, (cursor + speech.shape[0]) / SR))
        cursor += speech.shape[0]
    pieces.append(np.zeros(int(1.5 * SR), np.float32))
    sf.write(out, np.concatenate(pieces), SR)
    return out, truth


def test_regions_follow_the_speech(joined, tmp_path):
    path, truth = joined
    report = predict_files(REPO / "sertool/models/default/light_sernet_ravdess.pt", [path], tmp_path / "s.csv",
                           segments=True, vad=True)
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert report.ok == 1 and len(truth) <= len(rows) <= len(truth) + 2
    spans = [(float(r["start"]), float(r["end"])) for r in rows]
    for start, end in spans:  # every region lies in a clip's speech, give or take 0.35 s
        assert any(a - 0.35 <= start and end <= b + 0.35 for a, b in truth), (start, end, truth)
    for a, b in truth:  # every clip's speech is found
        assert any(min(b, end) - max(a, start) > 0.5 * (b - a) for start, end in spans)
    whole = sertool.predict("ravdess", path, vad=True)
    assert len(whole.windows[0]) == len(rows)
    np.testing.assert_allclose(whole.probabilities[0], np.mean([w[2] for w in whole.windows[0]], axis=0), atol=1e-6)


def test_silence_is_an_error_row_and_speaker_models_are_refused(tmp_path):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(3 * SR, np.float32), SR)
    report = predict_files(REPO / "sertool/models/default/light_sernet_ravdess.pt", [silent], tmp_path / "p.csv", vad=True)
    row = next(csv.DictReader(open(tmp_path / "p.csv")))
    assert report.failed == 1 and "no speech" in row["error"]
    with pytest.raises(sertool.SertoolError, match="--vad"):
        predict_files(REPO / "sertool/models/default/light_sernet_ravdess_speaker.pt", [silent], tmp_path / "q.csv",
                      vad=True, speaker_regex="(silent)")


def test_prepare_vad_split_cuts_recordings_into_region_rows(joined, tmp_path):
    import shutil

    from click.testing import CliRunner

    from sertool.cli.main import cli
    from sertool.extraction.pipeline import extract_manifest
    from sertool.io.manifest import read_manifest

    path, truth = joined
    (tmp_path / "calls" / "neutral").mkdir(parents=True)
    shutil.copy(path, tmp_path / "calls" / "neutral" / "call1.wav")
    args = ["prepare", "folder", str(tmp_path / "calls"), "-o", str(tmp_path / "m.csv"), "--speaker-regex",
            r"(call\d)", "--vad-split", str(tmp_path / "segments")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    rows = read_manifest(tmp_path / "m.csv")
    assert len(truth) <= len(rows) <= len(truth) + 2
    for row in rows:
        assert row.extra["parent_id"] == "neutral__call1.wav" and row.speaker == "call1" and row.label == "neutral"
        assert not row.source_id and row.path.is_file()
        start, end = float(row.extra["start"]), float(row.extra["end"])
        assert abs(row.duration - (end - start)) < 0.01
        assert any(a - 0.35 <= start and end <= b + 0.35 for a, b in truth)
    stamp = [r.path.stat().st_mtime_ns for r in rows]
    assert CliRunner().invoke(cli, args).exit_code == 0  # rerun: the region files are reused
    assert [r.path.stat().st_mtime_ns for r in read_manifest(tmp_path / "m.csv")] == stamp
    assert extract_manifest(tmp_path / "m.csv", features="mfcc", output=tmp_path / "f").report.ok == len(rows)
