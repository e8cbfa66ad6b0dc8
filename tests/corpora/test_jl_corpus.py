"""JL-Corpus preparer: the generated Kaggle-layout tree, the name scheme and its errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import jl_corpus
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(jl_corpus.LABELS) <= set(CANONICAL) and len(jl_corpus.LABELS) == 10


def test_generated_tree_gives_speakers_genders_sessions_and_every_emotion(tmp_path):
    root = jl_corpus.fake_tree(tmp_path / "jl")
    report = RunReport()
    rows = jl_corpus.prepare(root, report=report)
    assert len(rows) == 20 and report.ok == 20 and not report.failures  # the .txt transcript is not listed
    assert Counter(r.label for r in rows) == {label: 2 for label in jl_corpus.LABELS}
    assert {(r.speaker, r.gender) for r in rows} == {("female1", "f"), ("male2", "m")}
    by_id = {r.id: r for r in rows}
    first = by_id["female1_angry_1a_1"]
    assert (first.label, first.session, first.corpus) == ("angry", "a", "jl-corpus")
    assert first.extra == {"code": "angry", "emotion_set": "primary", "sentence": "1", "take": "1"}
    last = by_id["male2_encouraging_10b_2"]
    assert (last.label, last.session) == ("encouraging", "b")
    assert last.extra == {"code": "encouraging", "emotion_set": "secondary", "sentence": "10", "take": "2"}
    assert all(r.label == r.extra["code"] for r in rows)


def test_flac_files_are_read(tmp_path):
    write_tone(tmp_path / "female2_sad_3b_2.flac")
    write_tone(tmp_path / "male1_happy_3b_2.wav")
    rows = jl_corpus.prepare(tmp_path, report=RunReport())
    assert [(r.id, r.speaker, r.label) for r in rows] == [("female2_sad_3b_2", "female2", "sad"),
                                                         ("male1_happy_3b_2", "male1", "happy")]


def test_a_malformed_name_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "female1_angry_10a_1.wav")
    write_tone(tmp_path / "female1-angry-10a.wav")
    with pytest.raises(CorpusError, match=r"female1-angry-10a\.wav: file name is not .*expected .*JL-Corpus"):
        jl_corpus.prepare(tmp_path, report=RunReport())


def test_an_unknown_emotion_word_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "female1_angry_10a_1.wav")
    write_tone(tmp_path / "male1_pensive_2a_1.wav")  # in the paper, not in the released files
    with pytest.raises(CorpusError, match=r"male1_pensive_2a_1\.wav: unknown emotion code 'pensive'.*JL-Corpus"):
        jl_corpus.prepare(tmp_path, report=RunReport())


def test_a_folder_without_audio_is_an_error(tmp_path):
    (tmp_path / "female1_angry_10a_1.txt").write_text("transcript only")
    with pytest.raises(CorpusError, match="no .wav or .flac files; expected .*JL-Corpus"):
        jl_corpus.prepare(tmp_path, report=RunReport())


def test_the_same_recording_twice_is_an_error(tmp_path):
    write_tone(tmp_path / "copy1" / "female1_angry_10a_1.wav")
    write_tone(tmp_path / "copy2" / "female1_angry_10a_1.wav")
    with pytest.raises(CorpusError, match="the same utterance as"):
        jl_corpus.prepare(tmp_path, report=RunReport())
