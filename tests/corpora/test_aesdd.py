"""AESDD preparer: ``xAA (B)`` names, second takes, and the errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import aesdd
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(aesdd.LABELS) <= set(CANONICAL)


def test_generated_tree(tmp_path):
    root = aesdd.fake_tree(tmp_path / "aesdd")
    report = RunReport()
    rows = aesdd.prepare(root, report=report)
    assert report.ok == len(rows) == 11 and not report.failures
    assert Counter(r.label for r in rows) == {"angry": 2, "disgust": 2, "fearful": 3, "happy": 2, "sad": 2}
    assert Counter(r.speaker for r in rows) == {"1": 5, "5": 6}
    assert {r.gender for r in rows} == {""}  # no actor -> gender table in the documentation
    by_id = {r.id: r for r in rows}
    assert by_id["a01 (1)"].label == "angry" and by_id["a01 (1)"].extra == {"code": "a", "utterance": "01",
                                                                          "take": ""}
    assert by_id["f03 (5)b"].label == "fearful" and by_id["f03 (5)b"].extra["take"] == "b"
    assert by_id["h04 (5)"].label == "happy" and by_id["s05 (1)"].label == "sad"
    assert by_id["d02 (5)"].label == "disgust"
    assert all(r.corpus == "aesdd" for r in rows)


def test_speaker_numbers_lose_leading_zeros(tmp_path):
    write_tone(tmp_path / "sadness" / "s20 (06).wav")
    write_tone(tmp_path / "sadness" / "s20 (10).flac")
    rows = aesdd.prepare(tmp_path, report=RunReport())
    assert [(r.id, r.speaker) for r in rows] == [("s20 (06)", "6"), ("s20 (10)", "10")]


def test_an_unknown_emotion_letter_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "anger" / "a01 (1).wav")
    write_tone(tmp_path / "neutral" / "n01 (1).wav")
    with pytest.raises(CorpusError, match=r"n01 \(1\)\.wav: unknown emotion code 'n'.*expected .*AESDD"):
        aesdd.prepare(tmp_path, report=RunReport())


def test_a_malformed_name_is_an_error(tmp_path):
    write_tone(tmp_path / "anger" / "a01_1.wav")
    with pytest.raises(CorpusError, match=r"a01_1\.wav: file name is not xAA \(B\); expected .*AESDD"):
        aesdd.prepare(tmp_path, report=RunReport())


def test_a_file_that_does_not_decode_goes_to_the_report(tmp_path):
    write_tone(tmp_path / "anger" / "a01 (1).wav")
    (tmp_path / "anger" / "a02 (1).wav").write_bytes(b"RIFF but not audio")
    report = RunReport()
    rows = aesdd.prepare(tmp_path, report=report)
    assert [r.id for r in rows] == ["a01 (1)"] and report.failed == 1


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "anger").mkdir()
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*AESDD"):
        aesdd.prepare(tmp_path, report=RunReport())
