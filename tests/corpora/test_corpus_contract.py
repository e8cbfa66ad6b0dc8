"""The corpus contract, checked for every registered corpus (``sertool.corpora.PREPARERS``).

Every entry documents its layout and labels, names itself when a folder has
the wrong layout, and brings a generator of a small tree in its layout
(``fake_tree``) that prepares to valid rows: a corpus registered without one
fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sertool.corpora import PREPARERS, prepare_manifest
from sertool.corpora.registry import Corpus
from sertool.errors import CorpusError
from sertool.io.manifest import read_manifest, write_manifest
from sertool.io.report import RunReport


@pytest.fixture(params=sorted(PREPARERS))
def corpus(request) -> Corpus:
    return PREPARERS[request.param]


def test_every_entry_documents_its_layout_and_labels(corpus):
    assert corpus.title.lower() in corpus.layout.lower(), f"{corpus.name}: the module docstring names the corpus"
    assert len(corpus.layout.strip().splitlines()) >= 3, f"{corpus.name}: document the layout in the module docstring"
    if corpus.labels_from_tree:
        assert corpus.labels == ()
    else:
        assert corpus.labels and len(set(corpus.labels)) == len(corpus.labels)
        assert all(label and label == label.strip() for label in corpus.labels)


def test_an_empty_folder_is_an_error_naming_the_corpus_and_its_layout(corpus, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="expected") as caught:
        corpus.prepare(empty, report=RunReport())
    message = str(caught.value).replace(str(empty), "DIR")  # the path holds the test's (and corpus's) name
    assert corpus.title in message and corpus.expected in message
    assert len(message.splitlines()) == 1


def test_a_missing_folder_is_an_error_naming_the_layout(corpus, tmp_path):
    with pytest.raises(CorpusError, match="not a folder; expected") as caught:
        corpus.prepare(tmp_path / "missing", report=RunReport())
    assert corpus.expected in str(caught.value)


def test_the_generated_tree_prepares_to_valid_rows(corpus, tmp_path):
    assert callable(corpus.fake_tree), f"corpus {corpus.name!r} has no fake_tree(root): add one to its module"
    root = corpus.fake_tree(tmp_path / "tree")
    assert Path(root) == tmp_path / "tree"
    report = RunReport()
    rows = corpus.prepare(root, report=report, **corpus.fake_options)
    assert rows and report.ok == len(rows) and not report.failures
    assert read_manifest(write_manifest(rows, tmp_path / "m.csv")) == rows  # Utterances a manifest keeps whole
    assert len({u.id for u in rows}) == len(rows)
    assert all(u.path.is_file() and u.duration > 0 and u.corpus == corpus.name for u in rows)
    labels = {u.label for u in rows}
    assert "" not in labels and len(labels) >= 2
    if not corpus.labels_from_tree:
        assert labels <= set(corpus.labels)
    assert all(u.speaker for u in rows), "the speakers are parsed from the layout"
    assert len({u.speaker for u in rows}) >= 2


def test_prepare_manifest_writes_the_generated_tree(corpus, tmp_path):
    root = corpus.fake_tree(tmp_path / "tree")
    result = prepare_manifest(corpus.name, root, output=tmp_path / "m.csv", **corpus.fake_options)
    assert result.manifest == tmp_path / "m.csv" and read_manifest(result.manifest) == result.rows
    assert sum(result.label_counts().values()) == len(result.rows) and len(result.speakers) >= 2
