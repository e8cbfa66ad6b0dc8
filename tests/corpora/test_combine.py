"""Several manifests trained together: speakers named per corpus, ids unique, labels mapped and filtered."""

from __future__ import annotations

import pytest

from sertool.corpora.combine import combine_manifests, corpus_counts
from sertool.corpora.labels import LABEL_SETS, apply_labels, canonical, parse_mapping, resolve_set
from sertool.errors import ConfigError, ManifestError
from sertool.io.manifest import Utterance, write_manifest


def _manifest(path, corpus, speakers, labels, prefix):
    rows = [Utterance(id=f"{prefix}{s}_{k}", path=path.parent / f"{prefix}{s}_{k}.wav", label=label, speaker=s,
                      corpus=corpus)
            for s in speakers for k, label in enumerate(labels)]
    return write_manifest(rows, path)


def test_two_corpora_with_the_same_speaker_names_stay_two_people(tmp_path):
    a = _manifest(tmp_path / "a.csv", "ravdess", ["01", "02"], ["angry", "sad"], "r")
    b = _manifest(tmp_path / "b.csv", "", ["01", "02"], ["angry", "calm"], "e")
    combined = combine_manifests([a, b])
    speakers = {u.speaker for u in combined.rows}
    assert speakers == {"ravdess:01", "ravdess:02", "b:01", "b:02"}  # an empty corpus column takes the file stem
    assert combined.corpora == ["b", "ravdess"] and combined.changed
    assert corpus_counts(combined.rows)["b"] == {"angry": 2, "calm": 2}


def test_one_manifest_is_read_unchanged(tmp_path):
    a = _manifest(tmp_path / "a.csv", "ravdess", ["01", "02"], ["angry", "sad"], "r")
    combined = combine_manifests([a])
    assert not combined.changed and {u.speaker for u in combined.rows} == {"01", "02"}


def test_an_id_in_two_manifests_is_an_error_naming_both(tmp_path):
    a = _manifest(tmp_path / "a.csv", "x", ["01"], ["angry", "sad"], "r")
    b = _manifest(tmp_path / "b.csv", "y", ["01"], ["angry", "sad"], "r")
    with pytest.raises(ManifestError, match=r"b\.csv: utterance id 'r01_0' is also in .*a\.csv"):
        combine_manifests([a, b])


def test_label_sets_and_mappings(tmp_path):
    a = _manifest(tmp_path / "a.csv", "x", ["01", "02"], ["angry", "excited", "calm", "sad", "bored"], "r")
    combined = combine_manifests([a], label_set="big4", mapping=["excited=happy", "calm=neutral"])
    assert sorted({u.label for u in combined.rows}) == ["angry", "happy", "neutral", "sad"]
    assert combined.dropped == {"bored": 2} and combined.changed
    assert resolve_set("big4") == LABEL_SETS["big4"] and resolve_set("all") == ()
    assert resolve_set("Sad, anger") == ("angry", "sad")
    assert canonical("Happiness") == "happy" and canonical("W") == "w"
    assert parse_mapping({"Exc": "hap"}) == {"excited": "happy"}
    with pytest.raises(ConfigError, match="FROM=TO"):
        parse_mapping(["excited"])
    with pytest.raises(ConfigError, match="unknown label set 'big5'"):
        resolve_set("big5")
    spelled = [Utterance(id="x", path=tmp_path / "x.wav", label="Anger"), Utterance(id="y", path=tmp_path / "y.wav",
                                                                                   label="Fear")]
    kept, _ = apply_labels(spelled, "big4")
    assert [u.label for u in kept] == ["angry"]  # canonical spellings count for the set
    kept, _ = apply_labels(spelled, None, ["fear=anxious"])
    assert [u.label for u in kept] == ["angry", "anxious"]
    kept, dropped = apply_labels(combined.rows, "angry,sad")
    assert {u.label for u in kept} == {"angry", "sad"} and sum(dropped.values()) == 4
