"""EmoV-DB preparer: the sorted and the OpenSLR layouts, both range spellings, and the errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import emov_db
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(emov_db.LABELS) <= set(CANONICAL)
    assert set(emov_db.EMOTION_CODES.values()) == set(emov_db.LABELS)


def test_generated_sorted_tree(tmp_path):
    root = emov_db.fake_tree(tmp_path / "emov")
    report = RunReport()
    rows = emov_db.prepare(root, report=report)
    assert report.ok == len(rows) == 8 and not report.failures
    assert Counter(r.label for r in rows) == {"amused": 2, "angry": 1, "disgust": 1, "neutral": 2, "sleepy": 2}
    assert Counter((r.speaker, r.gender) for r in rows) == {("bea", "f"): 5, ("josh", "m"): 3}
    assert {r.extra["code"] for r in rows} == {"Amused", "Angry", "Disgusted", "Neutral", "Sleepy"}
    by_id = {r.id: r for r in rows}
    assert by_id["bea_amused_1-28_0001"].extra == {"code": "Amused", "sentence": "0001"}
    assert by_id["bea_anger_141_168_0142"].label == "angry"  # the underscore range spelling
    assert by_id["josh_sleepiness_1-28_0003"].label == "sleepy"
    assert all(r.corpus == "emov-db" for r in rows)


def test_openslr_archive_layout(tmp_path):
    write_tone(tmp_path / "jenie_Amused" / "amused_57-84_0057.wav")
    write_tone(tmp_path / "sam_Disgusted" / "disgust_1-28_0005.flac")
    write_tone(tmp_path / "sam_Angry" / "amused_57-84_0057.wav")  # the same stem as jenie's: ids still differ
    rows = emov_db.prepare(tmp_path, report=RunReport())
    assert sorted((r.id, r.speaker, r.gender, r.label) for r in rows) == [
        ("jenie_amused_57-84_0057", "jenie", "f", "amused"),
        ("sam_amused_57-84_0057", "sam", "m", "angry"),
        ("sam_disgust_1-28_0005", "sam", "m", "disgust")]


def test_an_unknown_speaker_gets_no_gender(tmp_path):
    write_tone(tmp_path / "alex" / "Neutral" / "neutral_1-28_0001.wav")
    write_tone(tmp_path / "bea" / "Neutral" / "neutral_1-28_0001.wav")
    rows = emov_db.prepare(tmp_path, report=RunReport())
    assert {r.speaker: r.gender for r in rows} == {"alex": "", "bea": "f"}


def test_an_unknown_emotion_folder_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "bea" / "Amused" / "amused_1-15_0001.wav")
    write_tone(tmp_path / "bea" / "Happy" / "happy_1-15_0001.wav")
    with pytest.raises(CorpusError, match=r"happy_1-15_0001\.wav: unknown emotion folder code 'happy'.*EmoV-DB"):
        emov_db.prepare(tmp_path, report=RunReport())


def test_a_malformed_name_is_an_error(tmp_path):
    write_tone(tmp_path / "bea" / "Amused" / "amused_0001.wav")
    with pytest.raises(CorpusError, match=r"amused_0001\.wav: file name is not .*expected .*EmoV-DB"):
        emov_db.prepare(tmp_path, report=RunReport())


@pytest.mark.parametrize("rel", ["amused_1-15_0001.wav", "EmoV-DB_sorted/bea/Amused/amused_1-15_0001.wav",
                                 "bea/amused_1-15_0001.wav"])
def test_a_file_outside_the_speaker_emotion_folders_is_an_error(tmp_path, rel):
    write_tone(tmp_path / rel)
    with pytest.raises(CorpusError, match=r"amused_1-15_0001\.wav: not in a <speaker>/<Emotion>/.*EmoV-DB"):
        emov_db.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "bea" / "Amused").mkdir(parents=True)
    (tmp_path / "bea" / "Amused" / "amused_1-15.TextGrid").write_text("annotation")
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*EmoV-DB"):
        emov_db.prepare(tmp_path, report=RunReport())
