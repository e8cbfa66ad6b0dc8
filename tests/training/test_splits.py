"""Protocols: speaker independence, validation from training speakers, lineage of augmented rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from sertool.errors import ConfigError
from sertool.io.manifest import Utterance
from sertool.training.splits import make_folds


def corpus(speakers=8, per=6, with_copies=False):
    rows = []
    for s in range(speakers):
        for i in range(per):
            u = Utterance(id=f"s{s}_{i}", path=Path("x"), label=["a", "b", "c"][i % 3], speaker=f"s{s}",
                          gender="mf"[s % 2], session=str(s // 2 + 1))
            rows.append(u)
            if with_copies:
                rows.append(Utterance(id=f"s{s}_{i}+noise", path=Path("x"), label=u.label, speaker=u.speaker,
                                      gender=u.gender, session=u.session, source_id=u.id))
    return rows


def speakers_of(ids, rows):
    by_id = {u.id: u.speaker for u in rows}
    return {by_id[i] for i in ids}


@pytest.mark.parametrize("protocol,kw,expected_folds", [
    ("loso", {}, 8), ("speaker-kfold", {"folds": 4}, 4), ("session", {}, 4),
    ("holdout", {"test_speakers": ["s3"]}, 1)])
def test_speaker_independent_protocols(protocol, kw, expected_folds):
    rows = corpus(with_copies=True)
    folds = make_folds(rows, protocol, valid_speakers=2, seed=1, **kw)
    assert len(folds) == expected_folds
    tested = []
    for fold in folds:
        train, valid, test = (speakers_of(ids, rows) for ids in (fold.train, fold.valid, fold.test))
        assert not (train & test) and not (valid & test) and not (train & valid)
        assert len(valid) == 2 and {s for s in valid} <= {u.speaker for u in rows} - test
        genders = {u.gender for u in rows if u.speaker in valid}
        assert genders == {"m", "f"}  # validation speakers alternate genders
        ids = set(fold.train) | set(fold.valid) | set(fold.test)
        assert len(ids) == len([u for u in rows if not u.source_id or speakers_of([u.id], rows) <= train])
        for u in rows:  # augmented copies train only when their source trains
            if u.source_id and u.id in ids:
                assert u.source_id in fold.train and u.id in fold.train
        tested.extend(fold.test)
        assert not any("+" in i for i in fold.valid + fold.test)  # copies are training material only
    if protocol in ("loso", "speaker-kfold", "session"):
        assert sorted(tested) == sorted(u.id for u in rows if not u.source_id)  # each original tested once


def test_folds_are_deterministic_per_seed():
    rows = corpus()
    assert make_folds(rows, "speaker-kfold", folds=4, seed=3) == make_folds(rows, "speaker-kfold", folds=4, seed=3)
    assert make_folds(rows, "speaker-kfold", folds=4, seed=3) != make_folds(rows, "speaker-kfold", folds=4, seed=4)


def test_random_protocol_warns_and_keeps_copies_with_sources():
    rows = corpus(with_copies=True)
    warnings = []
    (fold,) = make_folds(rows, "random", warn=warnings.append)
    assert warnings and "speaker-dependent" in warnings[0]
    for u in rows:
        if u.source_id:
            assert (u.id in fold.train) == (u.source_id in fold.train)
            assert u.id not in fold.valid + fold.test
    assert speakers_of(fold.train, rows) & speakers_of(fold.test, rows)  # that is what "random" means


def test_column_protocol():
    rows = [Utterance(**{**u.__dict__, "extra": {"split": "test" if u.speaker == "s0" else "train"}})
            for u in corpus()]
    (fold,) = make_folds(rows, "column", valid_speakers=1)
    assert speakers_of(fold.test, rows) == {"s0"} and len(speakers_of(fold.valid, rows)) == 1
    rows[0].extra["split"] = "dev"
    with pytest.raises(ConfigError, match="expected train, valid or test"):
        make_folds(rows, "column")


def test_errors():
    rows = corpus(speakers=3)
    with pytest.raises(ConfigError, match="cannot hold out 2"):
        make_folds(rows, "loso", valid_speakers=2)
    with pytest.raises(ConfigError, match="needs --test-speakers"):
        make_folds(rows, "holdout")
    with pytest.raises(ConfigError, match="--folds 9"):
        make_folds(corpus(), "speaker-kfold", folds=9)
    with pytest.raises(ConfigError, match="has no speaker"):
        make_folds([Utterance(id="a", path=Path("x"), label="a")], "loso")


def _corpora(with_copies=False):
    rows = []
    for corpus, speakers in (("a", 4), ("b", 3), ("c", 5)):
        for u in corpus_rows(speakers, corpus, with_copies):
            rows.append(u)
    return rows


def corpus_rows(speakers, name, with_copies):
    return [replace(u, id=f"{name}:{u.id}", speaker=f"{name}:{u.speaker}", corpus=name,
                    source_id=f"{name}:{u.source_id}" if u.source_id else "")
            for u in corpus(speakers, 4, with_copies)]


def test_loco_never_puts_the_test_corpus_in_training_or_validation():
    rows = _corpora(with_copies=True)
    folds = make_folds(rows, "loco", valid_speakers=1)
    corpus_of = {u.id: u.corpus for u in rows}
    assert [f.name for f in folds] == ["a", "b", "c"]
    for f in folds:
        assert {corpus_of[i] for i in f.test} == {f.name}
        assert f.name not in {corpus_of[i] for i in f.train + f.valid}
        assert {corpus_of[i] for i in f.valid} == {"a", "b", "c"} - {f.name}  # one validation speaker per corpus
        assert len(speakers_of(f.valid, rows)) == 2
        assert not any("+noise" in i for i in f.valid + f.test)  # copies train only, with their sources
        assert not speakers_of(f.train, rows) & speakers_of(f.valid, rows)


def test_loco_needs_corpora():
    rows = corpus(4, 3)
    with pytest.raises(ConfigError, match="has no corpus; --protocol loco needs the corpus column"):
        make_folds(rows, "loco")
    with pytest.raises(ConfigError, match="needs two or more corpora"):
        make_folds([replace(u, corpus="a") for u in rows], "loco")
    with pytest.raises(ConfigError, match="appears in corpora 'a' and 'b'"):
        make_folds([replace(u, corpus="ab"[k % 2]) for k, u in enumerate(rows)], "loco")


def unequal_corpus():
    """Speakers of very unequal file counts: s0 holds 60 files, s1..s9 hold 4 each (96 in all)."""
    return [Utterance(id=f"s{s}_{i}", path=Path("x"), label="ab"[i % 2], speaker=f"s{s}", gender="mf"[s % 2])
            for s in range(10) for i in range(60 if s == 0 else 4)]


@pytest.mark.parametrize("seed", range(6))
def test_valid_share_holds_about_that_share_of_training_files(seed):
    rows = unequal_corpus()
    for fold in make_folds(rows, "speaker-kfold", folds=3, valid_speakers=0.2, seed=seed):
        training_files = len(fold.train) + len(fold.valid)
        share = len(fold.valid) / training_files
        assert 0 < share <= 0.25 + 1e-9, (fold.name, share)  # never the one 60-file speaker when it overshoots
        assert share >= 0.2 - 1e-9
        assert not speakers_of(fold.valid, rows) & speakers_of(fold.train + fold.test, rows)


def test_valid_count_order_is_unchanged_by_the_share_option():
    rows = corpus()
    by_count = make_folds(rows, "speaker-kfold", folds=4, valid_speakers=2, seed=5)
    assert [len(speakers_of(f.valid, rows)) for f in by_count] == [2, 2, 2, 2]
    by_share = make_folds(rows, "speaker-kfold", folds=4, valid_speakers=0.3, seed=5)
    for count, share in zip(by_count, by_share):  # 6 training speakers of 6 files: a 0.3 share is 2 speakers
        assert count.valid == share.valid


def test_valid_share_needs_two_training_speakers():
    rows = corpus(speakers=2)
    with pytest.raises(ConfigError, match="--valid-speakers 0"):
        make_folds(rows, "loso", valid_speakers=0.2)


def test_valid_share_takes_a_large_speaker_when_the_small_ones_hold_too_little():
    """Training speakers 300, 280, 250 files and five of 6: 20 % is 176 files; the small ones hold 30."""
    sizes = {"a": 300, "b": 280, "c": 250, **{f"s{k}": 6 for k in range(5)}, "t": 40}
    rows = [Utterance(id=f"{s}_{i}", path=Path("x"), label="ab"[i % 2], speaker=s) for s, n in sizes.items()
            for i in range(n)]
    fold = make_folds(rows, "holdout", test_speakers=["t"], valid_speakers=0.2, seed=0)[0]
    assert speakers_of(fold.valid, rows) == {"c"}  # 250 files is nearer 176 than the small speakers' 30


def test_valid_share_never_holds_out_nobody():
    """Two training speakers of 50 and 60 files: every one is above 1.25 x the 22-file share; the smaller goes."""
    sizes = {"a": 50, "b": 60, "t": 10}
    rows = [Utterance(id=f"{s}_{i}", path=Path("x"), label="ab"[i % 2], speaker=s) for s, n in sizes.items()
            for i in range(n)]
    fold = make_folds(rows, "holdout", test_speakers=["t"], valid_speakers=0.2, seed=0)[0]
    assert speakers_of(fold.valid, rows) == {"a"}


@pytest.mark.parametrize("count", [-1, 1.5])
def test_a_bad_valid_count_from_python_is_refused(count):
    with pytest.raises(ConfigError, match="give a count"):
        make_folds(corpus(), "loso", valid_speakers=count)
