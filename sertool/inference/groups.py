"""Scoring units of many inputs: blocks of files whose windows share forward passes, and speaker groups.

A speaker-normalised checkpoint standardises each file with its speaker's
statistics, computed over every scorable file of that speaker among the
inputs (:func:`sertool.features.normalise.speaker_normaliser`, the
normaliser ``evaluate`` uses too).
"""

from __future__ import annotations

import numpy as np

from sertool.errors import SertoolError
from sertool.features.normalise import MIN_SET_UTTERANCES, MIN_SPEAKER_UTTERANCES, set_of_files, speaker_normaliser
from sertool.inference.engine import Scorer
from sertool.inference.runner import fuse
from sertool.inference.sources import Clip

#: Files whose windows are batched together (at most this many files per unit; about a batch of windows).
BLOCK_FILES = 32

#: How a note about ``set`` statistics begins (it is not a decoding note: reported at stage ``normalise``).
SET_NOTE = "set normalisation:"

BLOCK = object()  # marks a unit of files scored one by one (no speaker statistics)

_NO_SPEAKER = "no speaker for this file (the model normalises per speaker): list it in a manifest with a speaker " \
              "column, or match it with --speaker-regex"


def work_units(files: list, todo: list, speakers: dict[str, str] | None, batch_size: int):
    """``(group, wanted)`` units: speaker groups (see :func:`speaker_groups`), or ``(BLOCK, files)`` blocks."""
    if speakers is not None:
        yield from speaker_groups(files, todo, speakers)
        return
    size = max(1, min(BLOCK_FILES, batch_size))
    for first in range(0, len(todo), size):
        yield BLOCK, todo[first:first + size]


def speaker_groups(files: list, todo: list, speakers: dict[str, str] | None):
    """``(group, wanted)`` pairs: each file alone, or (speaker mode) all of a speaker's files with its todo ones.

    ``group`` is ``(speaker, files)``; files without a speaker form one group ``None`` whose scoring fails with a
    clear error.
    """
    if speakers is None:
        for f in todo:
            yield (None, [f]), [f]
        return
    wanted_set = {str(f) for f in todo}
    groups: dict[str | None, list] = {}
    for f in files:
        groups.setdefault(speakers.get(str(f)), []).append(f)
    for speaker, group in groups.items():
        wanted = [f for f in group if str(f) in wanted_set]
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
    """str(path) -> ``(duration s, windows)`` or the SertoolError of that file, for the ``wanted`` files.

    A speaker-normalising scorer computes the statistics over every scorable
    file of ``group`` (``(speaker, files)``; None: files without a speaker).
    """
    if scorer.needs_set:
        return _score_set(scorer, group, wanted)
    if not scorer.needs_speakers:
        return _outcomes(scorer.score, wanted)
    if group is None:
        return {str(f): SertoolError(_NO_SPEAKER) for f in wanted}
    speaker, files = group
    outcomes = _outcomes(scorer.features, files)
    computed = {key: value for key, value in outcomes.items() if not isinstance(value, SertoolError)}
    if len(computed) < MIN_SPEAKER_UTTERANCES:
        error = SertoolError(f"its speaker has {len(computed)} scorable file(s); speaker normalisation needs at "
                             f"least {MIN_SPEAKER_UTTERANCES} per speaker (see README, --norm)")
        return {str(f): outcomes[str(f)] if str(f) not in computed else error for f in wanted}
    normaliser = speaker_normaliser(speaker, {key: feats for key, (_, feats, _) in computed.items()})
    out = {}
    for f in wanted:
        key = str(f)
        if key in computed:
            duration, feats, spans = computed[key]
            out[key] = (duration, scorer.score_features(feats, duration, spans, key, normaliser))
        else:
            out[key] = outcomes[key]
    return out


def _score_set(scorer: Scorer, group, wanted: list) -> dict:
    """Like :func:`score_group` for a ``set``-normalised scorer: one set's statistics over all of ``group``'s files.

    Fewer than :data:`~sertool.features.normalise.MIN_SET_UTTERANCES` scorable files: the checkpoint's training
    statistics, with a warning on each file.
    """
    files = group[1] if group is not None else wanted
    outcomes = _outcomes(scorer.features, files)
    computed = {key: value for key, value in outcomes.items() if not isinstance(value, SertoolError)}
    normaliser, own = set_of_files({key: feats for key, (_, feats, _) in computed.items()}, scorer.normaliser)
    out = {}
    for f in wanted:
        key = str(f)
        if key not in computed:
            out[key] = outcomes[key]
            continue
        if not own:
            scorer.notes.setdefault(key, []).append(
                f"{SET_NOTE} only {len(computed)} file(s) scored together (fewer than {MIN_SET_UTTERANCES}); "
                "the training statistics were used")
        duration, feats, spans = computed[key]
        out[key] = (duration, scorer.score_features(feats, duration, spans, key, normaliser))
    return out


def score_block(scorer: Scorer, block: list, computed: dict) -> dict:
    """str(path) -> ``(duration s, windows)`` or SertoolError for the files of ``block``, windows batched together.

    ``computed``: str(path) -> :meth:`Scorer.features` result (or a SertoolError)
    prepared by feature workers; files missing from it are decoded here. Long
    (streamed) files and ``vad`` scoring go through :meth:`Scorer.score`.
    """
    out, planned = {}, []
    for f in block:
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
    return out


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
