"""TurEV-DB preparer: emotion folders under ``Sound Source``, the Turkish abbreviations, and the errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import turev_db
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(turev_db.LABELS) <= set(CANONICAL)


def test_generated_tree(tmp_path):
    root = turev_db.fake_tree(tmp_path / "turev")
    report = RunReport()
    rows = turev_db.prepare(root, report=report)
    assert report.ok == len(rows) == 16 and not report.failures and not report.warnings
    assert Counter(r.label for r in rows) == {label: 4 for label in turev_db.LABELS}
    assert Counter(r.speaker for r in rows) == {"1358": 8, "6783": 8} and {r.gender for r in rows} == {""}
    by_id = {r.id: r for r in rows}
    assert by_id["1358_kz_tembel"].label == "angry" and by_id["1358_kz_tembel"].extra == {"code": "kz",
                                                                                        "word": "tembel"}
    assert by_id["6783_sk_japon"].label == "calm" and by_id["1358_mt_ogul1"].extra["word"] == "ogul1"
    assert by_id["6783_hl_tembel"].label == "sad" and by_id["1358_mt_japon"].label == "happy"
    assert {r.extra["code"] for r in rows} == {"kz", "sk", "mt", "hl"}
    assert all(r.corpus == "turev-db" for r in rows)


def test_a_code_that_disagrees_with_its_folder_keeps_the_folder_label_and_warns(tmp_path):
    write_tone(tmp_path / "Sound Source" / "Sad" / "1157_hl_kiler.wav")
    write_tone(tmp_path / "Sound Source" / "Sad" / "1157_kz_pas.wav")
    report = RunReport()
    rows = turev_db.prepare(tmp_path, report=report)
    assert [(r.id, r.label, r.extra["code"]) for r in rows] == [("1157_hl_kiler", "sad", "hl"),
                                                               ("1157_kz_pas", "sad", "kz")]
    assert [w.id for w in report.warnings] == ["1157_kz_pas"] and "'kz' in folder Sad" in report.warnings[0].error


def test_an_unknown_emotion_folder_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "Sound Source" / "Calm" / "1234_sk_cay.wav")
    write_tone(tmp_path / "Sound Source" / "Fear" / "1234_kk_cay.wav")
    with pytest.raises(CorpusError, match=r"1234_kk_cay\.wav: unknown emotion folder code 'fear'.*TurEV-DB"):
        turev_db.prepare(tmp_path, report=RunReport())


def test_a_file_outside_an_emotion_folder_is_an_error(tmp_path):
    write_tone(tmp_path / "Sound Source" / "1234_sk_cay.wav")
    with pytest.raises(CorpusError, match=r"1234_sk_cay\.wav: unknown emotion folder code 'sound source'"):
        turev_db.prepare(tmp_path, report=RunReport())


def test_a_malformed_name_is_an_error(tmp_path):
    write_tone(tmp_path / "Sound Source" / "Calm" / "cay.wav")
    with pytest.raises(CorpusError, match=r"cay\.wav: file name is not <speaker>_<cc>_<word>; expected .*TurEV-DB"):
        turev_db.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "Sound Source" / "Calm").mkdir(parents=True)
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*TurEV-DB"):
        turev_db.prepare(tmp_path, report=RunReport())
