"""URDU preparer: emotion folders, speaker ids with their gender, and the errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import urdu
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(urdu.LABELS) <= set(CANONICAL)


def test_generated_tree(tmp_path):
    root = urdu.fake_tree(tmp_path / "urdu")
    report = RunReport()
    rows = urdu.prepare(root, report=report)
    assert report.ok == len(rows) == 16 and not report.failures
    assert Counter(r.label for r in rows) == {label: 4 for label in urdu.LABELS}
    assert Counter((r.speaker, r.gender) for r in rows) == {("SM1", "m"): 8, ("SF10", "f"): 8}
    by_id = {r.id: r for r in rows}
    assert by_id["SM1_F1_A01"].label == "angry" and by_id["SM1_F1_A01"].extra == {"code": "A"}
    assert by_id["SF10_F2_H04"].label == "happy" and by_id["SM1_F2_N02"].label == "neutral"
    assert by_id["SF10_F1_S03"].label == "sad"
    assert all(r.corpus == "urdu" for r in rows)


def test_a_letter_that_disagrees_with_its_folder_is_an_error(tmp_path):
    write_tone(tmp_path / "Angry" / "SM4_F1_H053.wav")
    with pytest.raises(CorpusError, match=r"SM4_F1_H053\.wav: emotion letter H \(happy\) in folder Angry; move"):
        urdu.prepare(tmp_path, report=RunReport())


def test_a_clip_outside_the_emotion_folders_is_an_error(tmp_path):
    write_tone(tmp_path / "SM4_F1_H053.wav")
    with pytest.raises(CorpusError, match=r"SM4_F1_H053\.wav: not in an Angry, Happy, Neutral or Sad folder.*URDU"):
        urdu.prepare(tmp_path, report=RunReport())


def test_an_unknown_letter_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "Sad" / "SF2_F1_S01.wav")
    write_tone(tmp_path / "Sad" / "SF2_F2_X02.wav")
    with pytest.raises(CorpusError, match=r"SF2_F2_X02\.wav: unknown emotion code 'X'.*expected .*URDU"):
        urdu.prepare(tmp_path, report=RunReport())


def test_a_malformed_name_is_an_error(tmp_path):
    write_tone(tmp_path / "Sad" / "speaker2_sad_1.wav")
    with pytest.raises(CorpusError, match=r"speaker2_sad_1\.wav: file name is not S<G><n>_F<k>_<E><m>.*URDU"):
        urdu.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "Angry").mkdir()
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*URDU"):
        urdu.prepare(tmp_path, report=RunReport())
