"""Preparers expose the numeric columns their corpora have (dimensional ratings, levels, intensity)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sertool.corpora import prepare_manifest
from sertool.corpora.fake import make_fake_iemocap
from sertool.corpora.msp_podcast import fake_tree as fake_msp
from sertool.errors import CorpusError
from sertool.io.manifest import read_manifest

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def test_iemocap_rows_carry_the_valence_activation_dominance_of_their_line(tmp_path):
    root = make_fake_iemocap(tmp_path / "I", sessions=(1,), codes=("neu", "ang", "xxx"), seconds=0.2)
    rows = {u.id: u for u in read_manifest(prepare_manifest("iemocap", root, output=tmp_path / "m.csv").manifest)}
    line = (root / "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").read_text().splitlines()[2]
    utt, ratings = line.split("\t")[1], line.split("\t")[3].strip("[]").split(", ")
    assert [rows[utt].extra[k] for k in ("valence", "activation", "dominance")] == ratings
    assert {float(u.extra["activation"]) for u in rows.values()} != {2.5}  # the ratings vary


def test_iemocap_dimensional_label_set_keeps_utterances_without_a_majority_label(tmp_path):
    root = make_fake_iemocap(tmp_path / "I", sessions=(1,), codes=("neu", "ang", "xxx", "oth"), seconds=0.2)
    four = read_manifest(prepare_manifest("iemocap", root, output=tmp_path / "a.csv").manifest)
    every = read_manifest(prepare_manifest("iemocap", root, output=tmp_path / "b.csv",
                                           label_set="dimensional").manifest)
    assert len(four) == 4 and len(every) == 8
    assert {u.label for u in every} == {"neutral", "angry", "unknown", "other"}


def test_msp_podcast_gives_ratings_and_the_official_split(tmp_path):
    root = fake_msp(tmp_path / "MSP")
    rows = read_manifest(prepare_manifest("msp-podcast", root, output=tmp_path / "m.csv").manifest)
    assert len(rows) == 12
    assert {u.extra["split"] for u in rows} == {"train", "valid", "test"}
    first = rows[0]
    assert (first.label, first.extra["arousal"], first.extra["valence"], first.extra["dominance"]) == \
        ("angry", "1.0", "1.5", "1.2")


def test_msp_podcast_rating_that_is_not_a_number_names_the_line(tmp_path):
    root = fake_msp(tmp_path / "MSP")
    labels = root / "Labels" / "labels_consensus.csv"
    lines = labels.read_text().splitlines()
    fields = lines[3].split(",")
    fields[2] = "high"  # EmoAct of the file's line 4
    lines[3] = ",".join(fields)
    labels.write_text("\n".join(lines) + "\n")
    with pytest.raises(CorpusError, match=r"line 4: EmoAct 'high' is not a number"):
        prepare_manifest("msp-podcast", root, output=tmp_path / "m.csv")


@pytest.mark.skipif(not (DATA / "baved").is_dir() or not (DATA / "ravdess").is_dir(),
                    reason="../shared/data (baved, ravdess) is absent")
def test_baved_level_and_ravdess_intensity_are_numbers(tmp_path):
    baved = read_manifest(prepare_manifest("baved", DATA / "baved", output=tmp_path / "b.csv").manifest)
    assert {u.extra["level"] for u in baved} == {"0", "1", "2"}
    ravdess = read_manifest(prepare_manifest("ravdess", DATA / "ravdess", output=tmp_path / "r.csv").manifest)
    assert {float(u.extra["intensity"]) for u in ravdess} == {1.0, 2.0}
