"""SUBESCO preparer: the generated flat tree, speaker ids per gender, and errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import subesco
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import write_audio


def test_generated_tree_gives_labels_codes_speakers_and_genders(tmp_path):
    root = subesco.fake_tree(tmp_path / "SUBESCO")
    report = RunReport()
    rows = subesco.prepare(root, report=report)
    assert len(rows) == 14 and report.ok == 14 and not report.failures
    assert Counter(r.label for r in rows) == dict.fromkeys(subesco.LABELS, 2)
    assert {(r.extra["code"], r.label) for r in rows} == set(subesco.EMOTION_CODES.items())
    assert {r.speaker: r.gender for r in rows} == {"F_02": "f", "M_02": "m"}  # serial numbers restart per gender
    row = {r.id: r for r in rows}["F_02_MONIKA_S_7_SURPRISE_2"]
    assert (row.label, row.corpus) == ("surprised", "subesco")
    assert row.extra == {"code": "SURPRISE", "sentence": "7", "take": "2", "speaker_name": "MONIKA"}


@pytest.mark.parametrize("name, message", [
    ("F_02_MONIKA_1_ANGRY_1.wav", r"F_02_MONIKA_1_ANGRY_1\.wav: file name is not <G>_<SS>_<NAME>_S_<n>_<EMOTION>_<t>"),
    ("F_02_MONIKA_S_1_BORED_1.wav", r"F_02_MONIKA_S_1_BORED_1\.wav: unknown emotion code 'BORED'"),
    ("F_02_MONICA_S_1_ANGRY_1.wav",
     r"F_02_MONIKA_S_1_NEUTRAL_5\.wav: speaker F_02 is MONIKA here but MONICA in F_02_MONICA_S_1_ANGRY_1\.wav"),
])
def test_bad_names_are_errors_naming_the_file_and_the_layout(tmp_path, name, message):
    write_audio(tmp_path / "F_02_MONIKA_S_1_NEUTRAL_5.wav", seconds=0.2)
    write_audio(tmp_path / name, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        subesco.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {subesco.EXPECTED}")


def test_nested_folders_and_a_second_copy(tmp_path):
    write_audio(tmp_path / "SUBESCO" / "F_02_MONIKA_S_1_NEUTRAL_5.wav", seconds=0.2)
    assert [r.speaker for r in subesco.prepare(tmp_path, report=RunReport())] == ["F_02"]
    write_audio(tmp_path / "copy" / "F_02_MONIKA_S_1_NEUTRAL_5.wav", seconds=0.2)
    with pytest.raises(CorpusError, match=r"F_02_MONIKA_S_1_NEUTRAL_5\.wav: the same utterance as"):
        subesco.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*the SUBESCO layout"):
        subesco.prepare(tmp_path, report=RunReport())
