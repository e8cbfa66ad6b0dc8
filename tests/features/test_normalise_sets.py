"""``set`` normalisation (one set per corpus in training, the scored set in predict) and the speaker-trust check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sertool.features.normalise import (MIN_SET_UTTERANCES, SCORED_SET, Normaliser, fit_normaliser, set_of_files,
                                        speaker_trust)
from sertool.io.manifest import Utterance


class ArrayStore(dict):
    """Features by id, as a store gives them."""

    dim = 3


def _rows_and_store(rng):
    rows, store = [], ArrayStore()
    for corpus, offset in (("a", 0.0), ("b", 10.0), ("c", -50.0)):
        for k in range(30):
            uid = f"{corpus}{k}"
            rows.append(Utterance(id=uid, path=Path("x"), label="xy"[k % 2], speaker=f"{corpus}:{k % 3}",
                                  corpus=corpus))
            store[uid] = (offset + rng.standard_normal((5, 3))).astype(np.float32)
    rows.append(Utterance(id="a0+copy", path=Path("x"), label="x", speaker="a:0", corpus="a", source_id="a0"))
    store["a0+copy"] = np.full((5, 3), 1e6, np.float32)  # an augmented copy never enters the statistics
    return rows, store


def test_set_statistics_come_from_training_rows_of_each_corpus_and_the_other_set_itself():
    rows, store = _rows_and_store(np.random.default_rng(0))
    train = [u.id for u in rows if u.corpus in "ab" and not u.id.endswith(("7", "8", "9"))] + ["a0+copy"]
    other = [u.id for u in rows if u.corpus == "c" or u.id.endswith(("7", "8", "9"))]
    norm = fit_normaliser("set", store, rows, train_ids=train, other_ids=other)
    assert norm.training_sets == ("a", "b")
    expected_a = np.concatenate([store[i] for i in train if i.startswith("a") and "+" not in i])
    np.testing.assert_allclose(norm.speaker_stats["a"][0], expected_a.mean(axis=0), rtol=1e-5)
    # a validation row of corpus b uses b's TRAINING statistics, not its own
    x = store["b7"]
    np.testing.assert_allclose(norm("b7", x), (x - norm.speaker_stats["b"][0]) / norm.speaker_stats["b"][1])
    # corpus c never trained: its rows form one set normalised with its own statistics (mean ~0 after)
    c = np.concatenate([norm(i, store[i]) for i in other if i.startswith("c")])
    assert abs(c.mean()) < 1e-4 and abs(c.std() - 1) < 1e-3
    fields = norm.checkpoint_fields(3)
    assert set(fields["norm"]["sets"]) == {"a", "b"}  # only the training sets are recorded
    assert fields["norm_mean"].shape == (3,) and abs(float(fields["norm_mean"].mean()) - 5) < 0.5


def test_a_scored_set_uses_its_own_statistics_from_the_minimum_size_else_the_training_ones():
    fallback = Normaliser("set", np.zeros(3, np.float32), np.ones(3, np.float32))
    rng = np.random.default_rng(1)
    files = {f"f{k}": (100 + rng.standard_normal((4, 3))).astype(np.float32) for k in range(MIN_SET_UTTERANCES)}
    norm, own = set_of_files(files, fallback)
    assert own and norm.speaker_of["f0"] == SCORED_SET and abs(norm("f0", files["f0"]).mean()) < 3
    small, own = set_of_files(dict(list(files.items())[:3]), fallback)
    assert not own
    np.testing.assert_allclose(small("f0", files["f0"]), files["f0"])  # the training statistics (identity here)


def test_speaker_trust_names_speakers_with_one_label_or_few_files():
    rows = [Utterance(id=f"s{s}_{k}", path=Path("x"), label="happy" if s == 0 else "xy"[k % 2], speaker=f"s{s}")
            for s in range(3) for k in range(12)]
    rows += [Utterance(id=f"t{k}", path=Path("x"), label="xy"[k % 2], speaker="t") for k in range(4)]
    message = speaker_trust(rows, [u.id for u in rows])
    assert "1 of 4 speakers have fewer than 10" in message and "1 of 4 speakers show one label" in message
    assert message.endswith("use --norm set or global")
    balanced = [u for u in rows if u.speaker in ("s1", "s2")]
    assert speaker_trust(balanced, [u.id for u in balanced]) is None


def test_unknown_groups_are_an_error_without_a_fallback():
    norm = Normaliser("speaker", speaker_stats={}, speaker_of={"u": "nobody"})
    with pytest.raises(Exception, match="no statistics for its speaker 'nobody'"):
        norm("u", np.zeros((2, 3), np.float32))
