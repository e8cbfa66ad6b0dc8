"""SAVEE preparer: the distributed layout (AudioData/<speaker>/), the Kaggle one (ALL/<speaker>_...), and errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import savee
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import write_audio


def test_generated_tree_gives_labels_codes_speakers_and_sentences(tmp_path):
    root = savee.fake_tree(tmp_path / "AudioData")
    report = RunReport()
    rows = savee.prepare(root, report=report)
    assert len(rows) == 28 and report.ok == 28 and not report.failures
    assert Counter(r.label for r in rows) == dict.fromkeys(savee.LABELS, 4)
    assert {(r.extra["code"], r.label) for r in rows} == set(savee.EMOTION_CODES.items())
    assert Counter(r.speaker for r in rows) == {"DC": 14, "JE": 14} and {r.gender for r in rows} == {"m"}
    sad = {r.id: r for r in rows}["JE_sa02"]
    assert (sad.label, sad.extra, sad.path.name, sad.corpus) == ("sad", {"code": "sa", "sentence": "02"},
                                                                 "sa02.wav", "savee")


def test_the_kaggle_layout_gives_the_same_ids(tmp_path):
    write_audio(tmp_path / "ALL" / "DC_su03.wav", seconds=0.2)
    write_audio(tmp_path / "ALL" / "KL_n30.wav", seconds=0.2)
    rows = savee.prepare(tmp_path, report=RunReport())
    assert [(r.id, r.speaker, r.label, r.extra["sentence"]) for r in rows] == [
        ("DC_su03", "DC", "surprised", "03"), ("KL_n30", "KL", "neutral", "30")]


def test_both_layouts_under_one_folder_is_an_error(tmp_path):
    write_audio(tmp_path / "AudioData" / "DC" / "a01.wav", seconds=0.2)
    write_audio(tmp_path / "ALL" / "DC_a01.wav", seconds=0.2)
    with pytest.raises(CorpusError, match=r"a01\.wav: the same utterance as .*DC_a01\.wav \(id 'DC_a01'\)"):
        savee.prepare(tmp_path, report=RunReport())


@pytest.mark.parametrize("relative, message", [
    ("DC/anger01.wav", r"anger01\.wav: file name is not <e><NN> or <speaker>_<e><NN>"),
    ("DC/x01.wav", r"x01\.wav: unknown emotion code 'x'"),
    ("speakers/a01.wav", r"a01\.wav: no speaker in the name and folder 'speakers' is not a speaker"),
])
def test_bad_names_are_errors_naming_the_file_and_the_layout(tmp_path, relative, message):
    write_audio(tmp_path / "DC" / "h01.wav", seconds=0.2)
    write_audio(tmp_path / relative, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        savee.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {savee.EXPECTED}")
