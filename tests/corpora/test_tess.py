"""TESS preparer: the generated tree (Kaggle folders), the flat release, the misnamed file, and errors."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from sertool.corpora import tess
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import write_audio


def test_generated_tree_gives_labels_codes_words_and_speakers(tmp_path):
    root = tess.fake_tree(tmp_path / "tess")
    report = RunReport()
    rows = tess.prepare(root, report=report)
    assert len(rows) == 28 and report.ok == 28 and not report.failures
    assert Counter(r.label for r in rows) == dict.fromkeys(tess.LABELS, 4)
    assert {(r.extra["code"], r.label) for r in rows} == set(tess.EMOTION_CODES.items())
    assert Counter(r.speaker for r in rows) == {"OAF": 14, "YAF": 14} and {r.gender for r in rows} == {"f"}
    by_id = {r.id: r for r in rows}
    misnamed = by_id["OA_bite_neutral"]  # the release's one misnamed file
    assert (misnamed.speaker, misnamed.label, misnamed.extra) == ("OAF", "neutral", {"code": "neutral", "word": "bite"})
    ps = by_id["YAF_back_ps"]
    assert (ps.label, ps.path.parent.name) == ("surprised", "YAF_Pleasant_surprise")


def test_the_flat_release_and_any_case(tmp_path):
    write_audio(tmp_path / "OAF_back_angry.wav", seconds=0.2)
    write_audio(tmp_path / "YAF_Youth_Fear.wav", seconds=0.2)
    rows = tess.prepare(tmp_path, report=RunReport())
    assert [(r.id, r.speaker, r.label, r.extra) for r in rows] == [
        ("OAF_back_angry", "OAF", "angry", {"code": "angry", "word": "back"}),
        ("YAF_Youth_Fear", "YAF", "fearful", {"code": "fear", "word": "youth"})]


def test_a_nested_second_copy_is_an_error_naming_both(tmp_path):
    root = tess.fake_tree(tmp_path / "tess")
    shutil.copytree(root / "OAF_angry", root / "TESS Toronto emotional speech set data" / "OAF_angry")
    with pytest.raises(CorpusError, match=r"OAF_back_angry\.wav: the same utterance as .*OAF_angry/OAF_back_angry"):
        tess.prepare(root, report=RunReport())


@pytest.mark.parametrize("name, message", [
    ("OAF_back.wav", r"OAF_back\.wav: file name is not <speaker>_<word>_<emotion>"),
    ("OAF_back_bored.wav", r"OAF_back_bored\.wav: unknown emotion code 'bored'"),
    ("MAF_back_sad.wav", r"MAF_back_sad\.wav: unknown speaker 'MAF'"),
])
def test_bad_names_are_errors_naming_the_file_and_the_layout(tmp_path, name, message):
    write_audio(tmp_path / "OAF_back_sad.wav", seconds=0.2)
    write_audio(tmp_path / name, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        tess.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {tess.EXPECTED}")


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "OAF_angry").mkdir()
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*the TESS layout"):
        tess.prepare(tmp_path, report=RunReport())
