"""ASED preparer: the generated tree, the layout errors, and the shared copy of the real corpus."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from sertool.corpora import ased
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import SHARED_DATA, write_audio

ASED = SHARED_DATA / "ased"
needs_ased = pytest.mark.skipif(not ASED.is_dir(), reason="../shared/data/ased not available")


def test_generated_tree_gives_labels_codes_speakers_and_majority_genders(tmp_path):
    root = ased.fake_tree(tmp_path / "ased")
    report = RunReport()
    rows = ased.prepare(root, report=report)
    assert len(rows) == 20 and report.ok == 20 and not report.failures
    assert Counter(r.label for r in rows) == dict.fromkeys(ased.LABELS, 4)
    assert {(r.extra["code"], r.label) for r in rows} == set(ased.EMOTION_CODES.items())
    assert {r.speaker: r.gender for r in rows} == {"01": "f", "02": "m"}
    assert all(r.corpus == "ased" and r.session == "" for r in rows)
    by_id = {r.id: r for r in rows}
    upper = by_id["S4-04-02-01-01"]  # the upper-case letter the real release has
    assert (upper.label, upper.extra["code"]) == ("sad", "s")
    outvoted = by_id["n1-01-02-01-02"]  # speaker 02's one file with the female code
    assert outvoted.gender == "m" and outvoted.extra == {"code": "n", "sentence": "01", "repetition": "02",
                                                         "gender_code": "01"}
    assert [(w.id, w.path) for w in report.warnings] == [("speaker 02", str(outvoted.path))]
    assert "01 (1 file) and 02 (9 files)" in report.warnings[0].error and "set to m" in report.warnings[0].error


def test_a_tie_leaves_the_gender_empty(tmp_path):
    write_audio(tmp_path / "01Neutral" / "n1-01-01-01-07.wav", seconds=0.2)
    write_audio(tmp_path / "03Happy" / "h3-01-01-02-07.wav", seconds=0.2)
    report = RunReport()
    rows = ased.prepare(tmp_path, report=report)
    assert [(r.speaker, r.gender, r.label) for r in rows] == [("07", "", "neutral"), ("07", "", "happy")]
    assert len(report.warnings) == 1 and "empty (a tie)" in report.warnings[0].error


@pytest.mark.parametrize("folder, name, message", [
    ("01Neutral", "clip.wav", r"clip\.wav: file name is not <e><n>-<yy>-<aa>-<gg>-<bb>"),
    ("01Neutral", "x1-01-01-01-01.wav", r"x1-01-01-01-01\.wav: unknown emotion code 'x'"),
    ("01Neutral", "f2-01-01-01-01.wav", r"f2-01-01-01-01\.wav: folder number 2 in the name but folder 01Neutral"),
    ("01Neutral", "h1-01-01-01-01.wav", r"h1-01-01-01-01\.wav: emotion letter 'h' \(happy\) in folder 01Neutral"),
    ("05Angry", "a5-01-01-03-01.wav", r"a5-01-01-03-01\.wav: unknown gender code '03'"),
])
def test_bad_names_are_errors_naming_the_file_and_the_layout(tmp_path, folder, name, message):
    write_audio(tmp_path / "01Neutral" / "n1-01-01-01-02.wav", seconds=0.2)
    write_audio(tmp_path / folder / name, seconds=0.2)
    with pytest.raises(CorpusError, match=message) as caught:
        ased.prepare(tmp_path, report=RunReport())
    assert str(caught.value).endswith(f"expected {ased.EXPECTED}")


def test_a_folder_without_emotion_folders_is_an_error(tmp_path):
    write_audio(tmp_path / "Neutral" / "n1-01-01-01-02.wav", seconds=0.2)
    with pytest.raises(CorpusError, match="no 01Neutral ... 05Angry folders; expected .*the ASED layout"):
        ased.prepare(tmp_path, report=RunReport())
    (tmp_path / "02Fearful").mkdir()
    with pytest.raises(CorpusError, match="no .wav or .flac files in the emotion folders"):
        ased.prepare(tmp_path, report=RunReport())


@needs_ased
def test_a_few_real_files_copied(tmp_path):
    names = ["01Neutral/n1-01-01-01-01.flac", "04Sad/S4-04-02-01-29.flac", "04Sad/s4-01-02-02-09.flac",
             "05Angry/a5-01-01-01-01.flac"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ASED / name, tmp_path / name)
    rows = ased.prepare(tmp_path, report=RunReport())
    assert [(r.id, r.label, r.speaker, r.gender) for r in rows] == [
        ("n1-01-01-01-01", "neutral", "01", "f"), ("S4-04-02-01-29", "sad", "29", "f"),
        ("s4-01-02-02-09", "sad", "09", "m"), ("a5-01-01-01-01", "angry", "01", "f")]
    assert all(r.duration > 1.0 for r in rows)


@needs_ased
def test_the_shared_copy_prepares_whole():
    report = RunReport()
    rows = ased.prepare(ASED, report=report)
    assert len(rows) == 1428 and report.ok == 1428 and not report.failures
    assert len({r.speaker for r in rows}) == 40
    assert Counter(r.label for r in rows) == {"neutral": 308, "fearful": 296, "happy": 276, "sad": 268, "angry": 280}
    genders = {r.speaker: r.gender for r in rows}
    assert Counter(genders.values()) == {"m": 21, "f": 19}
    assert [w.id for w in report.warnings] == [f"speaker {s}" for s in ("09", "15", "21", "23", "25")]
    assert all(genders[s] == "f" for s in ("09", "15", "21", "23", "25"))  # 1 file with 02 against 11-65 with 01
    assert all(len({r.gender for r in rows if r.speaker == s}) == 1 for s in genders)
