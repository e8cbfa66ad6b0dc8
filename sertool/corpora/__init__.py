"""Corpus preparers: corpus folder -> list of :class:`~sertool.io.manifest.Utterance`.

Each module documents its corpus layout and label codes and exposes
``LABELS``, ``EXPECTED``, ``prepare(corpus_dir, *, report, **options)`` and
``fake_tree(root)`` (the contract: :mod:`sertool.corpora.registry`).
``PREPARERS`` maps the CLI name to the :class:`~sertool.corpora.registry.Corpus` record.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sertool.corpora import emodb, folder, iemocap, ravdess
# corpora batch A imports
from sertool.corpora import ased, baved, crema_d, esd, savee, shemo, subesco, tess
# corpora batch B imports
from sertool.corpora import aesdd, cafe, emov_db, emovo, jl_corpus, mesd, turev_db, urdu
from sertool.corpora import msp_podcast
from sertool.corpora.registry import Corpus
from sertool.errors import ConfigError
from sertool.features.vad import split_utterances
from sertool.io.manifest import subset as keep_subset
from sertool.io.manifest import write_manifest
from sertool.io.report import RunReport

#: CLI name -> corpus record; ``tests/test_corpus_contract.py`` checks every entry.
PREPARERS = {corpus.name: corpus for corpus in (
    Corpus("ravdess", "RAVDESS", ravdess),
    Corpus("emodb", "EMO-DB", emodb),
    Corpus("iemocap", "IEMOCAP", iemocap),
    Corpus("msp-podcast", "MSP-Podcast", msp_podcast),
    # corpora batch A (one line each)
    Corpus("ased", "ASED", ased),
    Corpus("baved", "BAVED", baved),
    Corpus("crema-d", "CREMA-D", crema_d),
    Corpus("tess", "TESS", tess),
    Corpus("savee", "SAVEE", savee),
    Corpus("esd", "ESD", esd),
    Corpus("shemo", "ShEMO", shemo),
    Corpus("subesco", "SUBESCO", subesco),
    # corpora batch B (one line each)
    Corpus("jl-corpus", "JL-Corpus", jl_corpus),
    Corpus("emov-db", "EmoV-DB", emov_db),
    Corpus("emovo", "EMOVO", emovo),
    Corpus("cafe", "CaFE", cafe),
    Corpus("mesd", "MESD", mesd),
    Corpus("aesdd", "AESDD", aesdd),
    Corpus("urdu", "URDU", urdu),
    Corpus("turev-db", "TurEV-DB", turev_db),
    Corpus("folder", "folder", folder, fake_options={"speaker_regex": folder.FAKE_SPEAKER_REGEX},
           labels_from_tree=True),
)}


#: Options only some preparers take: option -> (corpus, keyword of its ``prepare``).
SPECIFIC_OPTIONS = {"label_set": ("iemocap", "label_set"), "subset": ("iemocap", "subset"),
                    "labels": ("folder", "labels"), "speaker_regex": ("folder", "speaker_regex")}


@dataclass
class PrepareResult:
    """What :func:`prepare_manifest` did: the rows, where they went, and the per-file failures."""

    rows: list
    manifest: Path | None
    failures_path: Path | None
    report: object

    def label_counts(self) -> dict[str, int]:
        """Label -> number of rows (``""`` for unlabelled rows), sorted by label."""
        return dict(sorted(Counter(u.label for u in self.rows).items()))

    @property
    def speakers(self) -> set[str]:
        return {u.speaker for u in self.rows if u.speaker}


def prepare_manifest(corpus: str, root, *, output=None, label_set: str | None = None,
                     subset: str | None = None, labels: bool | None = None, speaker_regex: str | None = None,
                     speakers: list[str] | None = None, per_speaker: int | None = None,
                     max_failures: int = 0, vad_split=None) -> PrepareResult:
    """Scan the corpus folder ``root`` with the ``corpus`` preparer, optionally keep a subset, and write the manifest.

    Parameters
    ----------
    corpus
        A name in :data:`PREPARERS`.
    root
        The corpus folder (layouts: ``sertool prepare --help``).
    output
        Manifest CSV to write (paths relative to its folder), with unreadable
        files in ``<output stem>.failures.csv``; None writes nothing.
    label_set, subset
        IEMOCAP only: ``4`` / ``4-noexc`` / ``6`` / ``all``; ``all`` / ``improvised`` / ``scripted``.
    labels, speaker_regex
        ``folder`` only: False lists unlabelled files; a regex whose first group is the speaker.
    speakers, per_speaker
        Keep only these speakers, and at most N evenly spaced rows per speaker.
    vad_split
        A folder: cut every recording into its speech regions (Silero VAD), one
        FLAC and one row per region there (:func:`sertool.features.vad.split_utterances`).

    Returns
    -------
    PrepareResult
        The rows kept, the manifest written (None without ``output``), its failures file and the run report.

    Raises
    ------
    ConfigError
        An unknown corpus, or an option the corpus does not take.
    """
    if corpus not in PREPARERS:
        raise ConfigError(f"unknown corpus {corpus!r}; choose one of {', '.join(sorted(PREPARERS))}")
    given = {"label_set": label_set, "subset": subset, "labels": labels, "speaker_regex": speaker_regex}
    stray = [f"--{k.replace('_', '-')}" if k != "labels" else "--no-labels"
             for k, v in given.items() if v is not None and SPECIFIC_OPTIONS[k][0] != corpus]
    if stray:
        raise ConfigError(f"{', '.join(stray)} do(es) not apply to corpus {corpus!r}")
    report = RunReport(max_failures=max_failures)
    rows = PREPARERS[corpus].prepare(Path(root), report=report,
                                     **{SPECIFIC_OPTIONS[k][1]: v for k, v in given.items() if v is not None})
    if speakers or per_speaker:
        rows = keep_subset(rows, speakers=speakers, per_speaker=per_speaker)
    if vad_split is not None:
        rows = split_utterances(rows, vad_split, report=report)
    manifest = failures = None
    if output is not None:
        manifest = write_manifest(rows, output)
        failures = report.write_failures(manifest.with_suffix(".failures.csv"))
    return PrepareResult(rows, manifest, failures, report)
