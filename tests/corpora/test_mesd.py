"""MESD preparer: voice types as pseudo-speakers, words with spaces, synthetic files skipped, and the errors."""

from __future__ import annotations

from collections import Counter

import pytest

from sertool.corpora import mesd
from sertool.corpora.fake import write_tone
from sertool.corpora.labels import CANONICAL
from sertool.errors import CorpusError
from sertool.io.report import RunReport


def test_labels_are_canonical():
    assert set(mesd.LABELS) <= set(CANONICAL)


def test_generated_tree_skips_the_synthetic_voices(tmp_path):
    root = mesd.fake_tree(tmp_path / "mesd")
    report = RunReport()
    rows = mesd.prepare(root, report=report)
    assert report.ok == len(rows) == 12 and report.skipped == 1 and not report.failures
    assert all("naturalness" not in str(r.path) for r in rows)
    assert Counter(r.label for r in rows) == {label: 2 for label in mesd.LABELS}
    assert {(r.speaker, r.gender) for r in rows} == {("F", "f"), ("C", "")}
    by_id = {r.id: r for r in rows}
    assert by_id["Disgust_F_A_por_favor"].extra == {"code": "Disgust", "voice": "F", "word_corpus": "A",
                                                    "word": "por favor"}
    assert by_id["Disgust_F_A_por_favor"].label == "disgust"
    assert by_id["Happiness_C_B_hola"].label == "happy" and by_id["Fear_C_B_ataque"].label == "fearful"
    assert by_id["Sadness_F_A_llanto"].label == "sad" and by_id["Anger_C_B_abajo"].label == "angry"
    assert all(r.corpus == "mesd" for r in rows)


def test_male_voice(tmp_path):
    write_tone(tmp_path / "Neutral_M_B_chulo.flac")
    rows = mesd.prepare(tmp_path, report=RunReport())
    assert [(r.speaker, r.gender, r.label, r.extra["word"]) for r in rows] == [("M", "m", "neutral", "chulo")]


def test_an_unknown_emotion_is_an_error_naming_the_file(tmp_path):
    write_tone(tmp_path / "Anger_F_A_abajo.wav")
    write_tone(tmp_path / "Surprise_F_A_abajo.wav")
    with pytest.raises(CorpusError, match=r"Surprise_F_A_abajo\.wav: unknown emotion code 'Surprise'.*MESD"):
        mesd.prepare(tmp_path, report=RunReport())


@pytest.mark.parametrize("name", ["Anger_X_A_abajo.wav", "Anger_F_C_abajo.wav"])
def test_an_unknown_voice_or_word_corpus_is_an_error(tmp_path, name):
    write_tone(tmp_path / name)
    with pytest.raises(CorpusError, match=rf"{name[:-4]}\.wav: voice .* is not F/M/C and A/B; expected .*MESD"):
        mesd.prepare(tmp_path, report=RunReport())


def test_a_malformed_name_is_an_error(tmp_path):
    write_tone(tmp_path / "Anger-F-A-abajo.wav")
    with pytest.raises(CorpusError, match=r"Anger-F-A-abajo\.wav: file name is not .*expected .*MESD"):
        mesd.prepare(tmp_path, report=RunReport())


def test_only_synthetic_files_is_an_error(tmp_path):
    write_tone(tmp_path / "Speaker-embedded naturalness-reduced female voices" / "Anger_F_B_1_ataque.wav")
    with pytest.raises(CorpusError, match="no human .wav or .flac recordings; expected .*MESD"):
        mesd.prepare(tmp_path, report=RunReport())
