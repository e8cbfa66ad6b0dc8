"""Scoring units of many inputs: blocks of files whose windows share forward passes, and speaker groups.

The unit of a run is an :class:`Entry`: a manifest row, or a file given or
found in a folder. Manifest rows that share one audio file (segments,
duplicates) are entries of their own, keyed by id: each gets its rows,
while the file is decoded and scored once per unit.

A speaker-normalised checkpoint standardises each file with its speaker's
statistics, computed over every scorable file of that speaker among the
inputs (:func:`sertool.features.normalise.speaker_normaliser`, the
normaliser ``evaluate`` uses too).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sertool.errors import SertoolError
from sertool.features.normalise import MIN_SET_UTTERANCES, MIN_SPEAKER_UTTERANCES, set_of_files, speaker_normaliser
from sertool.inference.engine import Scorer
from sertool.inference.inputs import expand_inputs, path_speakers
from sertool.inference.runner import fuse
from sertool.inference.sources import Clip
from sertool.io.manifest import read_manifest

#: Files whose windows are batched together (at most this many files per unit; about a batch of windows).
BLOCK_FILES = 32

#: How a note about ``set`` statistics begins (it is not a decoding note: reported at stage ``normalise``).
SET_NOTE = "set normalisation:"

BLOCK = object()  # marks a unit of files scored one by one (no speaker statistics)

_NO_SPEAKER = "no speaker for this file (the model normalises per speaker): list it in a manifest with a speaker " \
              "column, or match it with --speaker-regex"


@dataclass(frozen=True)
class Entry:
    """One input of a run: its audio ``source`` (a path or a :class:`Clip`) and its manifest row, if any.

    Manifest rows that share an audio file (segments, duplicates) are
    distinct entries: each gets its own rows, keyed by :attr:`key`.
    """

    source: object
    utterance: object = None  # a sertool.io.manifest.Utterance, or None

    @property
    def key(self) -> tuple[str, str]:
        """``(manifest id or "", str(source))``, as :func:`sertool.inference.rows.row_key` reads it from a row."""
        return (self.utterance.id if self.utterance is not None else "", str(self.source))

    @property
    def name(self) -> str:
        """The entry in reports: its manifest id, else its file name without suffix."""
        return self.utterance.id if self.utterance is not None else self.source.stem


def distinct_sources(entries: list) -> list:
    """The audio of ``entries``, each source once (first occurrence order): ids sharing a file decode it once."""
    return list({str(e.source): e.source for e in entries}.values())


def entries_of(inputs, stdin: Clip | None = None, skips=None) -> list[Entry]:
    """One :class:`Entry` per manifest row, per file found in a folder and per file given, in input order.

    Manifest rows that share an audio file stay distinct entries (their ids
    differ); an entry listed twice (the same id and path, or the same file
    given twice) is kept once. The input ``"-"`` is ``stdin``. ``skips``: a
    :class:`sertool.io.scan.ScanSkips` counting what folder scans pass over.
    """
    entries: dict[tuple[str, str], Entry] = {}
    for item in inputs:
        if Path(item).suffix.lower() == ".csv" and not Path(item).is_dir():
            found = [Entry(u.path, u) for u in read_manifest(item)]
        else:
            files = expand_inputs([item], skips=skips)
            found = [Entry(stdin if str(f) == "-" and stdin is not None else f) for f in files]
        for entry in found:
            entries.setdefault(entry.key, entry)
    return list(entries.values())


def entry_speakers(entries: list[Entry], speaker_regex: str | None) -> dict:
    """Entry key -> speaker: a manifest row's ``speaker`` column, else ``speaker_regex``'s first group in the path.

    Entries with neither are left out. Raises SertoolError for a regex that does not compile or has no group.
    """
    by_path = path_speakers([e.source for e in entries if not isinstance(e.source, Clip)], speaker_regex)
    speakers = {}
    for e in entries:
        speaker = (e.utterance.speaker if e.utterance is not None else "") or by_path.get(str(e.source))
        if speaker:
            speakers[e.key] = speaker
    return speakers


def _per_entry(entries: list, by_source: dict) -> dict:
    """Entry key -> the outcome of its source, from ``by_source`` (str(source) -> outcome)."""
    return {e.key: by_source[str(e.source)] for e in entries}


def work_units(entries: list, todo: list, speakers: dict | None, batch_size: int):
    """``(group, wanted)`` units of :class:`Entry` objects: speaker groups (see :func:`speaker_groups`), or blocks.

    A block is ``(BLOCK, entries)``; ``speakers``: entry key -> speaker (or set), None without groups.
    """
    if speakers is not None:
        yield from speaker_groups(entries, todo, speakers)
        return
    size = max(1, min(BLOCK_FILES, batch_size))
    for first in range(0, len(todo), size):
        yield BLOCK, todo[first:first + size]


def speaker_groups(entries: list, todo: list, speakers: dict | None):
    """``(group, wanted)`` pairs: each entry alone, or (speaker mode) all of a speaker's entries with its todo ones.

    ``group`` is ``(speaker, entries)``; entries without a speaker form one group ``None`` whose scoring fails with
    a clear error. ``speakers``: entry key -> speaker.
    """
    if speakers is None:
        for e in todo:
            yield (None, [e]), [e]
        return
    wanted_keys = {e.key for e in todo}
    groups: dict[str | None, list] = {}
    for e in entries:
        groups.setdefault(speakers.get(e.key), []).append(e)
    for speaker, group in groups.items():
        wanted = [e for e in group if e.key in wanted_keys]
        if wanted:
            yield ((speaker, group) if speaker is not None else None), wanted


def _outcomes(scoring, items) -> dict:
    """str(item) -> ``scoring(item)``, or the SertoolError it raised."""
    out = {}
    for item in items:
        try:
            out[str(item)] = scoring(item)
        except SertoolError as exc:
            out[str(item)] = exc
    return out


def score_group(scorer: Scorer, group, wanted: list) -> dict:
    """Entry key -> ``(duration s, windows)`` or the SertoolError of its audio, for the ``wanted`` entries.

    A speaker-normalising scorer computes the statistics over every scorable
    file of ``group`` (``(speaker, entries)``; None: entries without a
    speaker), each file once however many entries share it.
    """
    if scorer.needs_set:
        return _score_set(scorer, group, wanted)
    if not scorer.needs_speakers:
        return _per_entry(wanted, _outcomes(scorer.score, distinct_sources(wanted)))
    if group is None:
        return {e.key: SertoolError(_NO_SPEAKER) for e in wanted}
    speaker, members = group
    outcomes = _outcomes(scorer.features, distinct_sources(members))
    computed = {key: value for key, value in outcomes.items() if not isinstance(value, SertoolError)}
    if len(computed) < MIN_SPEAKER_UTTERANCES:
        error = SertoolError(f"its speaker has {len(computed)} scorable file(s); speaker normalisation needs at "
                             f"least {MIN_SPEAKER_UTTERANCES} per speaker (see README, --norm)")
        return {e.key: outcomes[str(e.source)] if str(e.source) not in computed else error for e in wanted}
    normaliser = speaker_normaliser(speaker, {key: feats for key, (_, feats, _) in computed.items()})
    return _per_entry(wanted, _scored(scorer, distinct_sources(wanted), outcomes, normaliser))


def _scored(scorer: Scorer, sources: list, outcomes: dict, normaliser) -> dict:
    """str(source) -> ``(duration s, windows)`` of computed features (``outcomes``), or the source's error."""
    out = {}
    for source in sources:
        key, result = str(source), outcomes[str(source)]
        if isinstance(result, SertoolError):
            out[key] = result
        else:
            duration, feats, spans = result
            out[key] = (duration, scorer.score_features(feats, duration, spans, key, normaliser))
    return out


def _score_set(scorer: Scorer, group, wanted: list) -> dict:
    """Like :func:`score_group` for a ``set``-normalised scorer: one set's statistics over all of ``group``'s files.

    Fewer than :data:`~sertool.features.normalise.MIN_SET_UTTERANCES` scorable files: the checkpoint's training
    statistics, with a warning on each file.
    """
    outcomes = _outcomes(scorer.features, distinct_sources(group[1] if group is not None else wanted))
    computed = {key: value for key, value in outcomes.items() if not isinstance(value, SertoolError)}
    normaliser, own = set_of_files({key: feats for key, (_, feats, _) in computed.items()}, scorer.normaliser)
    sources = distinct_sources(wanted)
    if not own:
        for key in {str(s) for s in sources} & computed.keys():
            scorer.notes.setdefault(key, []).append(
                f"{SET_NOTE} only {len(computed)} file(s) scored together (fewer than {MIN_SET_UTTERANCES}); "
                "the training statistics were used")
    return _per_entry(wanted, _scored(scorer, sources, outcomes, normaliser))


def score_block(scorer: Scorer, block: list, computed: dict) -> dict:
    """Entry key -> ``(duration s, windows)`` or SertoolError for the entries of ``block``, windows batched together.

    ``computed``: str(source) -> :meth:`Scorer.features` result (or a SertoolError)
    prepared by feature workers; sources missing from it are decoded here, each once. Long
    (streamed) files and ``vad`` scoring go through :meth:`Scorer.score`.
    """
    out, planned = {}, []
    for f in distinct_sources(block):
        key = str(f)
        try:
            if scorer.vad or (not isinstance(f, Clip) and scorer.is_long(f)):
                out[key] = scorer.score(f)
                continue
            result = computed.pop(key, None) or scorer.features(f)
            if isinstance(result, SertoolError):
                raise result
            duration, feats, spans = result
            planned.append((key, duration, scorer.windows(feats, duration, spans, key)))
        except SertoolError as exc:
            out[key] = exc
    probs = scorer.probabilities([w for _, _, plan in planned for _, w in plan])
    start = 0
    for key, duration, plan in planned:
        out[key] = (duration, list(zip([span for span, _ in plan], probs[start:start + len(plan)])))
        start += len(plan)
    return _per_entry(block, out)


def fused(outcomes: list, weights: list[float]):
    """One file's ``(duration s, windows)`` from its members' outcomes (the first error wins).

    Several members: one window of the whole file whose probabilities are :func:`sertool.inference.runner.fuse`
    of the members' mean probabilities.
    """
    for outcome in outcomes:
        if isinstance(outcome, SertoolError):
            return outcome
    if len(outcomes) == 1:
        return outcomes[0]
    duration = outcomes[0][0]
    means = [np.mean([p for _, p in windows], axis=0) for _, windows in outcomes]
    return duration, [((0.0, duration), fuse(means, weights))]
