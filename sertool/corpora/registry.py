"""The corpus contract: what a corpus module provides, and the record :data:`sertool.corpora.PREPARERS` holds.

A corpus module (``ravdess``, ``emodb``, ``iemocap``, ``folder``, ...) has:

- a module docstring describing the folder layout and the label codes;
- ``LABELS``: the labels its rows can carry (empty for ``folder``, whose
  labels are the sub-folder names);
- ``EXPECTED``: the layout in one line, naming the corpus; every CorpusError
  about a wrong layout ends with ``expected <EXPECTED>``;
- ``prepare(corpus_dir, *, report, **options) -> list[Utterance]``;
- ``fake_tree(root) -> Path``: writes a small tree in the corpus's layout
  (tiny WAVs), which ``tests/test_corpus_contract.py`` prepares; a corpus
  registered without one fails that suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Protocol

from sertool.io.manifest import Utterance
from sertool.io.report import RunReport


class CorpusModule(Protocol):
    """What a corpus module exposes (see the module docstring of :mod:`sertool.corpora.registry`)."""

    LABELS: tuple[str, ...]
    EXPECTED: str

    def prepare(self, corpus_dir: Path, *, report: RunReport, **options: Any) -> list[Utterance]:
        """The manifest rows of the corpus in ``corpus_dir``; CorpusError naming the expected layout on a wrong one."""

    def fake_tree(self, root: Path) -> Path:
        """Write a small tree in the corpus's layout under ``root`` and return ``root``."""


@dataclass(frozen=True)
class Corpus:
    """One registered corpus: its CLI name, the name its error messages use, and its module.

    Attributes
    ----------
    name : str
        The CLI name (``sertool prepare NAME``).
    title : str
        How the corpus is named in its layout errors (``RAVDESS``, ``EMO-DB``, ...).
    module : ModuleType
        The corpus module (a :class:`CorpusModule`).
    fake_options : dict
        Options of ``prepare`` for the module's ``fake_tree`` (e.g. the ``folder`` speaker regex).
    labels_from_tree : bool
        The labels are the names found in the tree (``folder``), not a fixed ``LABELS``.
    """

    name: str
    title: str
    module: ModuleType
    fake_options: dict[str, Any] = field(default_factory=dict)
    labels_from_tree: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels rows of this corpus can carry (empty when :attr:`labels_from_tree`)."""
        return tuple(self.module.LABELS)

    @property
    def layout(self) -> str:
        """The layout and label codes, as the module documents them."""
        return self.module.__doc__ or ""

    @property
    def expected(self) -> str:
        """The layout in one line, as error messages quote it."""
        return self.module.EXPECTED

    @property
    def fake_tree(self) -> Callable[[Path], Path] | None:
        """The module's generator of a small example tree (None: the contract suite fails)."""
        return getattr(self.module, "fake_tree", None)

    def prepare(self, corpus_dir: Path, *, report: RunReport, **options: Any) -> list[Utterance]:
        """The manifest rows of the corpus in ``corpus_dir`` (the module's ``prepare``).

        Parameters
        ----------
        corpus_dir
            The corpus folder.
        report
            Unreadable files are recorded here as failures; left-out rows as skipped.
        **options
            The corpus's own options (e.g. IEMOCAP's ``label_set``).

        Returns
        -------
        list of Utterance
            One row per usable utterance, with its duration.

        Raises
        ------
        CorpusError
            A layout other than :attr:`expected`, naming it.
        """
        return self.module.prepare(corpus_dir, report=report, **options)
