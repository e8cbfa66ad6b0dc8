"""BAVED preparer: the generated tree, speakers_info.json checks, layout errors, and the shared real copy."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from sertool.corpora import baved
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import SHARED_DATA, write_audio

BAVED = SHARED_DATA / "baved"
needs_baved = pytest.mark.skipif(not BAVED.is_dir(), reason="../shared/data/baved not available")


def test_generated_tree_gives_levels_words_speakers_and_genders(tmp_path):
    root = baved.fake_tree(tmp_path / "baved")
    report = RunReport()
    rows = baved.prepare(root, report=report)
    assert len(rows) == 18 and report.ok == 18 and not report.warnings and not report.failures
    assert Counter(r.label for r in rows) == {"low": 6, "neutral": 6, "high": 6}
    assert {(r.extra["code"], r.label) for r in rows} == {("0", "low"), ("1", "neutral"), ("2", "high")}
    assert {r.speaker: r.gender for r in rows} == {"0": "m", "3": "f"}
    assert Counter(r.extra["word"] for r in rows) == {"0": 6, "1": 6, "2": 6}
    first = rows[0]
    assert first.id == "0-m-21-0-0-101" and first.label == "low" and first.corpus == "baved"
    assert first.extra == {"code": "0", "level": "0", "word": "0", "age": "21"}


def test_speakers_info_disagreeing_with_a_name_is_a_warning(tmp_path):
    root = baved.fake_tree(tmp_path / "baved")
    (root / "speakers_info.json").write_text(json.dumps({"0": {"age": 21, "gender": "f"}, "3": {"age": 30,
                                                                                                "gender": "f"}}))
    report = RunReport()
    rows = baved.prepare(root, report=report)
    assert {r.speaker: r.gender for r in rows} == {"0": "m", "3": "f"}  # the name wins
    assert Counter(w.error.split(":")[0] for w in report.warnings) == {"BAVED speaker 0": 9, "BAVED speaker 3": 9}
    assert "gender m in the file name but f in speakers_info.json" in report.warnings[0].error
    (root / "speakers_info.json").unlink()  # optional
    report = RunReport()
    assert len(baved.prepare(root, report=report)) == 18 and not report.warnings
    (root / "speakers_info.json").write_text("{not json")
    with pytest.raises(CorpusError, match=r"speakers_info\.json: not valid JSON"):
        baved.prepare(root, report=RunReport())


@pytest.mark.parametrize("folder, name, message", [
    ("0", "clip.wav", r"clip\.wav: file name is not <speaker>-<m\|f>-<age>-<w>-<level>-<record>"),
    ("0", "5-m-20-1-1-7.wav", r"5-m-20-1-1-7\.wav: word 1 in the name but folder 0"),
    ("1", "5-m-20-1-3-7.wav", r"5-m-20-1-3-7\.wav: unknown level code '3'"),
    ("2", "5-x-20-2-1-7.wav", r"5-x-20-2-1-7\.wav: file name is not"),
])
def test_bad_names_are_errors_naming_the_file_and_the_layout(tmp_path, folder, name, message):
    write_audio(tmp_path / "0" / "5-m-20-0-1-1.wav", seconds=0.2)
    write_audio(tmp_path / folder / name, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        baved.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {baved.EXPECTED}")


def test_audio_outside_the_word_folders_is_not_baved(tmp_path):
    write_audio(tmp_path / "low" / "5-m-20-0-0-1.wav", seconds=0.2)
    with pytest.raises(CorpusError, match="no word folders 0-6; expected .*the BAVED layout"):
        baved.prepare(tmp_path, report=RunReport())


@needs_baved
def test_a_few_real_files_copied_with_the_speaker_table(tmp_path):
    names = ["0/0-m-21-0-1-105.flac", "2/0-m-21-2-1-661.flac", "6/1-m-20-6-1-1699.flac"]
    for name in names + ["speakers_info.json", "naming.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BAVED / name, tmp_path / name)
    report = RunReport()
    rows = baved.prepare(tmp_path, report=report)
    assert [(r.id, r.label, r.speaker, r.gender, r.extra["word"]) for r in rows] == [
        ("0-m-21-0-1-105", "neutral", "0", "m", "0"), ("0-m-21-2-1-661", "neutral", "0", "m", "2"),
        ("1-m-20-6-1-1699", "neutral", "1", "m", "6")]
    assert not report.warnings and all(r.duration > 0.5 for r in rows)


@needs_baved
def test_the_shared_copy_prepares_whole_and_agrees_with_its_speaker_table():
    report = RunReport()
    rows = baved.prepare(BAVED, report=report)
    assert len(rows) == 1407 and report.ok == 1407 and not report.failures and not report.warnings
    assert len({r.speaker for r in rows}) == 37
    assert Counter(r.label for r in rows) == {"low": 449, "neutral": 480, "high": 478}
    info = json.loads((BAVED / "speakers_info.json").read_text())
    assert all(info[r.speaker]["gender"] == r.gender for r in rows)
    assert all(r.path.parent.name == r.extra["word"] for r in rows)  # the folder is the word, not the label
