"""Manifest CSV: round trip, relative paths, validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sertool.errors import ManifestError
from sertool.io.manifest import Utterance, read_manifest, write_manifest


def test_round_trip_keeps_every_field_and_extra_columns(tmp_path, make_audio):
    audio = make_audio("corpus/a.wav")
    rows = [Utterance(id="a", path=audio, label="angry", speaker="s1", gender="f", session="2", duration=1.0,
                      corpus="folder", source_id="", extra={"split": "train"})]
    path = write_manifest(rows, tmp_path / "m.csv")
    assert "corpus/a.wav" in path.read_text()  # relative to the manifest's folder
    back = read_manifest(path)
    assert back == rows and back[0].extra == {"split": "train"}


def test_manifest_and_corpus_move_together(tmp_path, make_audio):
    audio = make_audio("proj/corpus/a.wav")
    write_manifest([Utterance(id="a", path=audio)], tmp_path / "proj" / "m.csv")
    shutil.move(tmp_path / "proj", tmp_path / "moved")
    (row,) = read_manifest(tmp_path / "moved" / "m.csv")
    assert row.path == tmp_path / "moved" / "corpus" / "a.wav" and row.path.is_file()


def test_validation_errors(tmp_path):
    with pytest.raises(ManifestError, match="duplicate utterance ids"):
        write_manifest([Utterance(id="a", path=Path("x")), Utterance(id="a", path=Path("y"))], tmp_path / "m.csv")
    with pytest.raises(ManifestError, match="contain no '/'"):
        write_manifest([Utterance(id="a/b", path=Path("x"))], tmp_path / "m.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("name,file\nx,y\n")
    with pytest.raises(ManifestError, match="missing column\\(s\\) id, path"):
        read_manifest(bad)
    bad.write_text("id,path,duration\nx,y,long\n")
    with pytest.raises(ManifestError, match="line 2: duration 'long' is not a number"):
        read_manifest(bad)
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")


def test_subset_keeps_evenly_spaced_rows_per_speaker():
    from sertool.io.manifest import subset

    rows = [Utterance(id=f"{s}_{i}", path=Path("x"), speaker=s, label=str(i % 4)) for s in "ab" for i in range(12)]
    picked = subset(rows, speakers=["b"], per_speaker=4)
    assert [u.id for u in picked] == ["b_0", "b_3", "b_6", "b_9"] and {u.label for u in picked} == {"0", "1", "2", "3"}
    with pytest.raises(ManifestError, match="--speakers: c not found"):
        subset(rows, speakers=["c"])
