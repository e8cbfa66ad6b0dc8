"""ESD preparer: both languages, the official split folders, transcripts in their encodings, and errors."""

from __future__ import annotations

import pytest

from sertool.corpora import esd
from sertool.errors import CorpusError
from sertool.io.manifest import read_manifest, write_manifest
from sertool.io.report import RunReport
from tests.conftest import write_audio


def test_generated_tree_gives_labels_languages_splits_texts_and_genders(tmp_path):
    root = esd.fake_tree(tmp_path / "Emotion Speech Dataset")
    report = RunReport()
    rows = esd.prepare(root, report=report)
    assert len(rows) == 10 and report.ok == 10 and not report.failures
    assert sorted((r.speaker, r.label) for r in rows) == sorted((s, label) for s in ("0001", "0011")
                                                                for label in esd.LABELS)
    assert {(r.extra["code"], r.label) for r in rows} == set(esd.EMOTION_CODES.items())
    assert {r.speaker: (r.gender, r.extra["language"]) for r in rows} == {"0001": ("f", "zh"), "0011": ("m", "en")}
    by_id = {r.id: r for r in rows}
    assert by_id["0001_000001"].extra == {"code": "Neutral", "language": "zh", "text": "打远一看 0.", "split": "valid"}
    assert by_id["0001_000372"].extra["split"] == "test" and by_id["0001_000753"].extra["split"] == "train"
    assert by_id["0011_000372"].extra == {"code": "Angry", "language": "en", "text": "Sentence 1."}  # no split folder
    again = {r.id: r for r in read_manifest(write_manifest(rows, tmp_path / "m.csv"))}
    assert again["0011_000372"].extra["split"] == "" and again["0001_000001"].extra["text"] == "打远一看 0."


@pytest.mark.parametrize("speaker, encoding, text", [
    ("0002", "gb2312", "打远一看，它们的确很是美丽，"), ("0016", "latin-1", "Café au lait, señor."),
    ("0015", "utf-8", "Let the glass globe be."), ("0013", "utf-16", "But what about this thing, sticky!"),
])
def test_transcripts_are_read_in_their_encoding(tmp_path, speaker, encoding, text):
    write_audio(tmp_path / speaker / "Sad" / f"{speaker}_001060.wav", seconds=0.2)
    (tmp_path / speaker / f"{speaker}.txt").write_bytes(
        f"{speaker}_001060\t{text}\tSad\nbroken line without a tab\n".encode(encoding))
    (row,) = esd.prepare(tmp_path, report=RunReport())
    assert (row.label, row.extra["text"]) == ("sad", text)


def test_no_transcript_leaves_the_text_empty(tmp_path):
    write_audio(tmp_path / "0020" / "Happy" / "0020_000701.wav", seconds=0.2)
    (row,) = esd.prepare(tmp_path, report=RunReport())
    assert (row.speaker, row.gender, row.label, row.extra["text"]) == ("0020", "m", "happy", "")


@pytest.mark.parametrize("relative, message", [
    ("0021/Angry/0021_000351.wav", r"/0021: speaker folder 0021 is outside 0001-0020"),
    ("0011/Excited/0011_000351.wav", r"0011_000351\.wav: unknown emotion folder code 'Excited'"),
    ("0011/Angry/dev/0011_000351.wav", r"0011_000351\.wav: not in <Emotion>/\[train\|evaluation\|test/\]"),
    ("0011/0011_000351.wav", r"0011_000351\.wav: not in <Emotion>/"),
    ("0011/Angry/0012_000351.wav", r"0012_000351\.wav: speaker 0012 in the name but folder 0011"),
    ("0011/Angry/0011-351.wav", r"0011-351\.wav: file name is not <NNNN>_<NNNNNN>"),
])
def test_bad_files_are_errors_naming_the_file_and_the_layout(tmp_path, relative, message):
    write_audio(tmp_path / "0011" / "Sad" / "0011_001060.wav", seconds=0.2)
    write_audio(tmp_path / relative, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        esd.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {esd.EXPECTED}")


def test_a_folder_without_speaker_folders_is_an_error(tmp_path):
    write_audio(tmp_path / "Emotion Speech Dataset" / "0011" / "Sad" / "0011_001060.wav", seconds=0.2)
    with pytest.raises(CorpusError, match="no speaker folders 0001-0020; expected .*the ESD layout"):
        esd.prepare(tmp_path, report=RunReport())
    assert len(esd.prepare(tmp_path / "Emotion Speech Dataset", report=RunReport())) == 1


def test_the_gender_table_has_five_men_and_five_women_per_language():
    for first in (1, 11):
        speakers = [f"{n:04d}" for n in range(first, first + 10)]
        assert sorted(esd.GENDER[s] for s in speakers) == ["f"] * 5 + ["m"] * 5
