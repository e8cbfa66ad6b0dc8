"""ShEMO preparer: the generated tree (female/ and male/), the F of fear versus the F of female, and errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import shemo
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import write_audio


def test_generated_tree_gives_labels_codes_speakers_and_genders(tmp_path):
    root = shemo.fake_tree(tmp_path / "shemo")
    report = RunReport()
    rows = shemo.prepare(root, report=report)
    assert len(rows) == 14 and report.ok == 14 and not report.failures
    assert Counter(r.label for r in rows) == {**dict.fromkeys(shemo.LABELS, 2), "neutral": 4}
    assert {(r.extra["code"], r.label) for r in rows} == set(shemo.EMOTION_CODES.items())
    assert {r.speaker: r.gender for r in rows} == {"F01": "f", "M01": "m"}  # two people, not one speaker 01
    by_id = {r.id: r for r in rows}
    assert (by_id["F01F01"].label, by_id["F01F01"].gender) == ("fearful", "f")  # F: female first, fear fourth
    assert by_id["M01W01"].label == "surprised" and by_id["M01W01"].corpus == "shemo"


@pytest.mark.parametrize("relative, message", [
    ("female/F1A01.wav", r"F1A01\.wav: file name is not <F\|M><SS><E><UU>"),
    ("female/F02X01.wav", r"F02X01\.wav: unknown emotion code 'X'"),
    ("female/M02A01.wav", r"M02A01\.wav: speaker letter M in folder female"),
])
def test_bad_names_are_errors_naming_the_file_and_the_layout(tmp_path, relative, message):
    write_audio(tmp_path / "male" / "M03S02.wav", seconds=0.2)
    write_audio(tmp_path / relative, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        shemo.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {shemo.EXPECTED}")


def test_one_name_twice_is_an_error(tmp_path):
    write_audio(tmp_path / "male" / "M03S02.wav", seconds=0.2)
    write_audio(tmp_path / "all" / "M03S02.wav", seconds=0.2)
    with pytest.raises(CorpusError, match=r"M03S02\.wav: the same utterance as"):
        shemo.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "female").mkdir()
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*the ShEMO layout"):
        shemo.prepare(tmp_path, report=RunReport())
