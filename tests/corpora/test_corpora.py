"""Corpus preparers: the real shared corpora where present, fake trees in the real layouts otherwise."""

from __future__ import annotations

from collections import Counter

import pytest
import soundfile as sf

from sertool.corpora import emodb, folder, iemocap, ravdess
from sertool.errors import CorpusError
from sertool.io.report import RunReport
from tests.conftest import EMODB, RAVDESS, needs_emodb, needs_ravdess, write_audio


# ---------------------------------------------------------------- RAVDESS
@needs_ravdess
def test_ravdess_shared_copy():
    rows = ravdess.prepare(RAVDESS, report=RunReport())
    assert len(rows) == 960
    assert len({r.speaker for r in rows}) == 16
    counts = Counter(r.label for r in rows)
    assert set(counts) == set(ravdess.LABELS)
    assert counts["neutral"] == 64 and all(counts[label] == 128 for label in ravdess.LABELS if label != "neutral")
    first = rows[0]
    assert first.speaker == "Actor_01" and first.gender == "m" and first.corpus == "ravdess"
    assert first.duration == pytest.approx(sf.info(first.path).duration, abs=1e-3)  # read from the file's header
    assert {r.gender for r in rows if r.speaker == "Actor_02"} == {"f"}


def test_ravdess_fake_tree_skips_song_and_checks_codes(tmp_path):
    root = tmp_path / "rav"
    write_audio(root / "Actor_03" / "03-01-05-02-01-01-03.wav", seconds=0.3)  # angry speech
    write_audio(root / "Actor_03" / "03-02-05-02-01-01-03.wav", seconds=0.3)  # song: skipped
    (root / "Actor_03" / "notes.txt").write_text("not audio, ignored")
    rows = ravdess.prepare(root, report=RunReport())
    assert [(r.id, r.label, r.speaker, r.gender) for r in rows] == [("03-01-05-02-01-01-03", "angry", "Actor_03", "m")]
    assert rows[0].extra == {"code": "05", "intensity": "02", "statement": "01"}

    write_audio(root / "Actor_03" / "03-01-09-01-01-01-03.wav", seconds=0.3)
    with pytest.raises(CorpusError, match=r"03-01-09-01-01-01-03\.wav: unknown emotion code '09'"):
        ravdess.prepare(root, report=RunReport())


def test_ravdess_wrong_layouts(tmp_path):
    with pytest.raises(CorpusError, match="no Actor_XX folders.*Actor_XX/MM-VV-EE"):
        ravdess.prepare(tmp_path, report=RunReport())
    write_audio(tmp_path / "Actor_01" / "clip.wav", seconds=0.2)
    with pytest.raises(CorpusError, match=r"clip\.wav: file name is not MM-VV-EE-II-SS-RR-AA"):
        ravdess.prepare(tmp_path, report=RunReport())
    with pytest.raises(CorpusError, match="not a folder"):
        ravdess.prepare(tmp_path / "missing", report=RunReport())


def test_ravdess_actor_mismatch(tmp_path):
    write_audio(tmp_path / "Actor_01" / "03-01-05-02-01-01-02.wav", seconds=0.2)
    with pytest.raises(CorpusError, match="actor 02 in the name but folder Actor_01"):
        ravdess.prepare(tmp_path, report=RunReport())


def test_unreadable_file_goes_to_the_report(tmp_path):
    write_audio(tmp_path / "Actor_01" / "03-01-05-02-01-01-01.wav", seconds=0.2)
    (tmp_path / "Actor_01" / "03-01-04-02-01-01-01.wav").write_bytes(b"")
    report = RunReport()
    rows = ravdess.prepare(tmp_path, report=report)
    assert len(rows) == 1 and report.failed == 1 and "empty file" in report.failures[0].error


# ---------------------------------------------------------------- EMO-DB
@needs_emodb
def test_emodb_shared_copy():
    rows = emodb.prepare(EMODB, report=RunReport())
    assert len(rows) == 535
    assert len({r.speaker for r in rows}) == 10
    assert set(Counter(r.label for r in rows)) == set(emodb.LABELS)
    by_id = {r.id: r for r in rows}
    assert by_id["03a01Fa"].label == "happy" and by_id["03a01Fa"].gender == "m"
    assert all(abs(r.duration - 2.0) < 1e-3 for r in rows)
    # agrees with the corpus's own metadata table
    import csv

    meta = {row["file"].split("/")[-1].split(".")[0]: row for row in csv.DictReader(open(EMODB / "metadata.csv"))}
    assert all(meta[r.id]["gender"] == r.gender and meta[r.id]["speaker"] == r.speaker for r in rows)


def test_emodb_fake_tree_and_errors(tmp_path):
    write_audio(tmp_path / "wav" / "08b02Tc.wav", seconds=0.2)
    rows = emodb.prepare(tmp_path, report=RunReport())
    assert [(r.label, r.speaker, r.gender, r.extra) for r in rows] == [("sad", "08", "f", {"code": "T", "text": "b02"})]
    write_audio(tmp_path / "wav" / "08b02Xc.wav", seconds=0.2)
    with pytest.raises(CorpusError, match="unknown emotion code 'X'"):
        emodb.prepare(tmp_path, report=RunReport())
    (tmp_path / "wav" / "08b02Xc.wav").unlink()
    write_audio(tmp_path / "wav" / "99b02Tc.wav", seconds=0.2)
    with pytest.raises(CorpusError, match="unknown speaker code '99'"):
        emodb.prepare(tmp_path, report=RunReport())


def test_emodb_missing_wav_folder(tmp_path):
    with pytest.raises(CorpusError, match="no 'wav' folder; expected wav/SSTTTEV"):
        emodb.prepare(tmp_path, report=RunReport())


# ---------------------------------------------------------------- IEMOCAP
def make_iemocap(root, sessions=(1, 2), codes=("neu", "exc", "hap", "ang", "sad", "fru", "xxx")):
    from sertool.corpora.fake import make_fake_iemocap

    return make_fake_iemocap(root, sessions=sessions, codes=codes, seconds=0.3)


def test_iemocap_four_class_protocol(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP")
    report = RunReport()
    rows = iemocap.prepare(root, report=report)
    # per dialog: neu, exc->happy, hap->happy, ang, sad kept; fru and xxx left out
    assert len(rows) == 2 * 2 * 5 and report.skipped == 2 * 2 * 2
    assert Counter(r.label for r in rows) == {"happy": 8, "neutral": 4, "angry": 4, "sad": 4}
    by_id = {r.id: r for r in rows}
    assert by_id["Ses01F_impro01_M001"].speaker == "Ses01M"  # letter of the suffix, not the dialog prefix
    assert by_id["Ses01F_impro01_M001"].gender == "m"
    assert by_id["Ses02M_script01_1_F000"].speaker == "Ses02F"
    assert {r.session for r in rows} == {"1", "2"}
    assert by_id["Ses01F_impro01_M001"].label == "happy" and by_id["Ses01F_impro01_M001"].extra["code"] == "exc"
    assert abs(by_id["Ses01F_impro01_F000"].duration - 0.3) < 1e-3  # from the audio, not the transcript


def test_iemocap_label_sets_and_subsets(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP", sessions=(1,))
    assert len(iemocap.prepare(root, report=RunReport(), label_set="4-noexc")) == 2 * 4
    six = iemocap.prepare(root, report=RunReport(), label_set="6")
    assert set(r.label for r in six) == {"angry", "happy", "excited", "sad", "neutral", "frustrated"}
    impro = iemocap.prepare(root, report=RunReport(), subset="improvised")
    assert sorted(r.id for r in impro) == ["Ses01F_impro01_F000", "Ses01F_impro01_F002", "Ses01F_impro01_F004",
                                           "Ses01F_impro01_M001", "Ses01F_impro01_M003"]
    with pytest.raises(CorpusError, match="unknown IEMOCAP label set"):
        iemocap.prepare(root, report=RunReport(), label_set="5")


def test_iemocap_unknown_code_and_missing_audio(tmp_path):
    root = make_iemocap(tmp_path / "IEMOCAP", sessions=(1,), codes=("neu", "ang"))
    (next((root / "Session1" / "sentences" / "wav").rglob("*.wav"))).unlink()
    report = RunReport()
    rows = iemocap.prepare(root, report=report)
    assert len(rows) == 3 and report.failed == 1 and "file not found" in report.failures[0].error
    make_iemocap(root, sessions=(1,), codes=("neu", "bor"))
    with pytest.raises(CorpusError, match="unknown label code 'bor'"):
        iemocap.prepare(root, report=RunReport())


def test_iemocap_wrong_layout(tmp_path):
    with pytest.raises(CorpusError, match="no SessionN folders"):
        iemocap.prepare(tmp_path, report=RunReport())
    (tmp_path / "Session1").mkdir()
    with pytest.raises(CorpusError, match="EmoEvaluation: no evaluation .txt files"):
        iemocap.prepare(tmp_path, report=RunReport())


# ---------------------------------------------------------------- folder
def test_folder_labels_from_subfolders(tiny_corpus):
    (tiny_corpus / "angry" / "deeper").mkdir()
    write_audio(tiny_corpus / "angry" / "deeper" / "x.flac", seconds=0.3)
    rows = folder.prepare(tiny_corpus, report=RunReport())
    assert Counter(r.label for r in rows) == {"angry": 4, "calm": 3}
    assert "angry__deeper__x.flac" in {r.id for r in rows}


def test_folder_ids_keep_the_suffix_so_same_stem_files_stay_apart(tmp_path):
    write_audio(tmp_path / "calm" / "a.wav", seconds=0.2)
    write_audio(tmp_path / "calm" / "a.flac", seconds=0.2)
    rows = folder.prepare(tmp_path, report=RunReport())
    assert sorted(r.id for r in rows) == ["calm__a.flac", "calm__a.wav"]


def test_folder_without_labels_and_speaker_regex(tmp_path):
    write_audio(tmp_path / "spk1" / "a.wav", seconds=0.2)
    write_audio(tmp_path / "spk2" / "b.ogg", seconds=0.2)
    write_audio(tmp_path / "c.wav", seconds=0.2)
    rows = folder.prepare(tmp_path, report=RunReport(), labels=False)
    assert {r.label for r in rows} == {""} and len(rows) == 3
    with pytest.raises(CorpusError, match=r"c\.wav: audio directly under"):
        folder.prepare(tmp_path, report=RunReport())
    (tmp_path / "c.wav").unlink()
    rows = folder.prepare(tmp_path, report=RunReport(), labels=False, speaker_regex=r"^(spk\d)/")
    assert sorted(r.speaker for r in rows) == ["spk1", "spk2"]
    with pytest.raises(CorpusError, match="does not match"):
        folder.prepare(tmp_path, report=RunReport(), labels=False, speaker_regex=r"^(nobody)/")
