"""EMOVO preparer: actor folders, the Italian emotion codes and the errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import emovo
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(emovo.LABELS) <= set(CANONICAL)


def test_generated_tree(tmp_path):
    root = emovo.fake_tree(tmp_path / "emovo")
    report = RunReport()
    rows = emovo.prepare(root, report=report)  # documents/README.txt is not audio
    assert report.ok == len(rows) == 14 and not report.failures
    assert Counter(r.label for r in rows) == {label: 2 for label in emovo.LABELS}
    assert {(r.speaker, r.gender) for r in rows} == {("f1", "f"), ("m2", "m")}
    by_id = {r.id: r for r in rows}
    assert (by_id["gio-f1-l2"].label, by_id["gio-f1-l2"].extra) == ("happy", {"code": "gio", "sentence": "l2"})
    assert by_id["pau-m2-d1"].label == "fearful" and by_id["rab-m2-b3"].label == "angry"
    assert by_id["sor-f1-l4"].label == "surprised" and by_id["tri-m2-n5"].label == "sad"
    assert all(r.corpus == "emovo" and r.session == "" for r in rows)


def test_actor_folders_one_level_down_and_flac(tmp_path):
    write_tone(tmp_path / "EMOVO" / "m3" / "neu-m3-n1.flac")
    rows = emovo.prepare(tmp_path, report=RunReport())
    assert [(r.id, r.speaker, r.gender, r.label) for r in rows] == [("neu-m3-n1", "m3", "m", "neutral")]


def test_an_actor_in_the_wrong_folder_is_an_error(tmp_path):
    write_tone(tmp_path / "f1" / "dis-f2-b1.wav")
    with pytest.raises(CorpusError, match=r"dis-f2-b1\.wav: actor f2 in the name but folder f1; move the file"):
        emovo.prepare(tmp_path, report=RunReport())


def test_an_unknown_emotion_code_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "f1" / "dis-f1-b1.wav")
    write_tone(tmp_path / "f1" / "col-f1-b1.wav")
    with pytest.raises(CorpusError, match=r"col-f1-b1\.wav: unknown emotion code 'col'.*expected .*EMOVO"):
        emovo.prepare(tmp_path, report=RunReport())


def test_a_malformed_name_is_an_error(tmp_path):
    write_tone(tmp_path / "f1" / "dis_f1_b1.wav")
    with pytest.raises(CorpusError, match=r"dis_f1_b1\.wav: file name is not <emo>-<actor>-<sentence>.*EMOVO"):
        emovo.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "f1").mkdir()
    with pytest.raises(CorpusError, match="no .wav or .flac files in actor folders; expected .*EMOVO"):
        emovo.prepare(tmp_path, report=RunReport())
