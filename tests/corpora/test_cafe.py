"""CaFE preparer: the 48 kHz WAV and the 192 kHz AIFF releases, intensities, and the errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import cafe
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(cafe.LABELS) <= set(CANONICAL)


def test_generated_48k_tree(tmp_path):
    root = cafe.fake_tree(tmp_path / "cafe")
    report = RunReport()
    rows = cafe.prepare(root, report=report)  # Readme.txt is not audio
    assert report.ok == len(rows) == 26 and not report.failures
    assert Counter(r.label for r in rows) == {**{label: 4 for label in cafe.LABELS}, "neutral": 2}
    assert {(r.speaker, r.gender) for r in rows} == {("01", "m"), ("02", "f")}
    assert Counter(r.extra["intensity"] for r in rows) == {"1": 14, "2": 12}
    by_id = {r.id: r for r in rows}
    assert by_id["01-C-2-1"].label == "angry" and by_id["01-C-2-1"].extra == {"code": "C", "intensity": "2",
                                                                           "sentence": "1"}
    assert by_id["02-N-1-4"].label == "neutral" and by_id["02-J-1-3"].label == "happy"
    assert by_id["02-P-2-5"].label == "fearful" and by_id["01-T-1-1"].label == "sad"
    assert all(r.corpus == "cafe" for r in rows)


def test_192k_aiff_release_with_neutral_files_without_intensity(tmp_path):
    write_tone(tmp_path / "CaFE_192k_1" / "Colère" / "Faible" / "03-C-1-3.aiff")
    write_tone(tmp_path / "CaFE_192k_1" / "Neutre" / "03-N-5.aiff")
    write_tone(tmp_path / "CaFE_192k_2" / "Dégoût" / "Fort" / "08-D-2-6.AIFF")
    report = RunReport()
    rows = cafe.prepare(tmp_path, report=report)
    assert report.ok == 3 and all(r.duration > 0 for r in rows)
    assert [(r.id, r.label, r.speaker, r.gender, r.extra["intensity"], r.extra["sentence"]) for r in rows] == [
        ("03-C-1-3", "angry", "03", "m", "1", "3"),
        ("03-N-5", "neutral", "03", "m", "", "5"),
        ("08-D-2-6", "disgust", "08", "f", "2", "6")]


def test_an_emotion_without_intensity_is_an_error(tmp_path):
    write_tone(tmp_path / "Joie" / "05-J-3.wav")
    with pytest.raises(CorpusError, match=r"05-J-3\.wav: no intensity field .*expected .*CaFE"):
        cafe.prepare(tmp_path, report=RunReport())


def test_an_unknown_emotion_letter_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "Joie" / "Fort" / "05-J-2-3.wav")
    write_tone(tmp_path / "Ennui" / "Fort" / "05-E-2-3.wav")
    with pytest.raises(CorpusError, match=r"05-E-2-3\.wav: unknown emotion code 'E'.*expected .*CaFE"):
        cafe.prepare(tmp_path, report=RunReport())


def test_a_malformed_name_is_an_error(tmp_path):
    write_tone(tmp_path / "Joie" / "Fort" / "05_J_2_3.wav")
    with pytest.raises(CorpusError, match=r"05_J_2_3\.wav: file name is not AA-E-I-S; expected .*CaFE"):
        cafe.prepare(tmp_path, report=RunReport())


def test_both_releases_under_one_folder_is_an_error(tmp_path):
    write_tone(tmp_path / "CaFE_48k" / "Joie" / "Fort" / "05-J-2-3.wav")
    write_tone(tmp_path / "CaFE_192k_1" / "Joie" / "Fort" / "05-J-2-3.aiff")
    with pytest.raises(CorpusError, match="the same utterance as"):
        cafe.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "Readme.txt").write_text("readme")
    with pytest.raises(CorpusError, match=r"no .wav, .flac or .aiff files; expected .*CaFE"):
        cafe.prepare(tmp_path, report=RunReport())
