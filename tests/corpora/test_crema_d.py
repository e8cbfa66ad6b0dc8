"""CREMA-D preparer: the generated tree and every layout error (no real copy is shared)."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import crema_d
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import write_audio


def test_generated_tree_gives_labels_codes_speakers_and_genders(tmp_path):
    root = crema_d.fake_tree(tmp_path / "crema")
    report = RunReport()
    rows = crema_d.prepare(root, report=report)
    assert len(rows) == 12 and report.ok == 12 and not report.failures  # AudioMP3/ is not read
    assert Counter(r.label for r in rows) == dict.fromkeys(crema_d.LABELS, 2)
    assert {(r.extra["code"], r.label) for r in rows} == set(crema_d.EMOTION_CODES.items())
    assert {r.speaker: r.gender for r in rows} == {"1001": "m", "1002": "f"}
    by_id = {r.id: r for r in rows}
    assert by_id["1002_IEO_DIS_MD"].extra == {"code": "DIS", "sentence": "IEO", "level": "MD"}
    assert by_id["1001_TAI_NEU_XX"].label == "neutral" and by_id["1001_TAI_NEU_XX"].corpus == "crema-d"
    assert all(r.path.parent.name == "AudioWAV" for r in rows)


def test_the_gender_table_is_the_corpus_one():
    assert len(crema_d.GENDER) == 91
    assert Counter(crema_d.GENDER.values()) == {"m": 48, "f": 43}  # as the corpus describes its actors
    assert (crema_d.GENDER["1001"], crema_d.GENDER["1076"], crema_d.GENDER["1091"]) == ("m", "f", "f")


@pytest.mark.parametrize("name, message", [
    ("1001_DFA_ANG.wav", r"1001_DFA_ANG\.wav: file name is not <actor>_<sentence>_<emotion>_<level>"),
    ("1001_DFA_CAL_XX.wav", r"1001_DFA_CAL_XX\.wav: unknown emotion code 'CAL'"),
    ("1001_ABC_ANG_XX.wav", r"1001_ABC_ANG_XX\.wav: unknown sentence code 'ABC'"),
    ("1001_IEO_ANG_ZZ.wav", r"1001_IEO_ANG_ZZ\.wav: unknown level code 'ZZ'"),
    ("1092_DFA_ANG_XX.wav", r"1092_DFA_ANG_XX\.wav: actor 1092 is outside 1001-1091"),
])
def test_bad_names_are_errors_naming_the_file_and_the_layout(tmp_path, name, message):
    write_audio(tmp_path / "AudioWAV" / "1001_DFA_SAD_XX.wav", seconds=0.2)
    write_audio(tmp_path / "AudioWAV" / name, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        crema_d.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {crema_d.EXPECTED}")


def test_clips_outside_audiowav_are_not_crema_d(tmp_path):
    write_audio(tmp_path / "1001_DFA_SAD_XX.wav", seconds=0.2)
    with pytest.raises(CorpusError, match="no 'AudioWAV' folder; expected .*the CREMA-D layout"):
        crema_d.prepare(tmp_path, report=RunReport())
    (tmp_path / "AudioWAV").mkdir()
    with pytest.raises(CorpusError, match=r"AudioWAV: no \.wav or \.flac files"):
        crema_d.prepare(tmp_path, report=RunReport())


def test_a_silent_clip_goes_to_the_failures(tmp_path):
    write_audio(tmp_path / "AudioWAV" / "1076_MTI_NEU_XX.wav", seconds=0.2)
    write_audio(tmp_path / "AudioWAV" / "1076_MTI_SAD_XX.wav", seconds=0.0)  # no samples, as in the release
    report = RunReport()
    rows = crema_d.prepare(tmp_path, report=report)
    assert [r.id for r in rows] == ["1076_MTI_NEU_XX"]
    assert report.failed == 1 and report.failures[0].id == "1076_MTI_SAD_XX"
