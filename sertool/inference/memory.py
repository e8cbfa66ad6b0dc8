"""``predict_audio``: score audio in memory (paths or sample arrays) with a checkpoint; nothing is written."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sertool.errors import ConfigError, SertoolError
from sertool.features.normalise import SCORED_SET
from sertool.inference.bundled import checkpoint_path
from sertool.inference.engine import Scorer
from sertool.inference.export import load_scoring_model
from sertool.inference.groups import SET_NOTE, Entry, entry_speakers, fused, score_group, speaker_groups
from sertool.inference.inputs import as_sources
from sertool.inference.runner import WINDOW_BATCH
from sertool.inference.sources import Clip
from sertool.inference.windows import CROP_TOLERANCE
from sertool.io.audio import TruncatedAudioWarning
from sertool.io.manifest import read_manifest
from sertool.models.checkpoint import Checkpoint
from sertool.models.targets import is_regression
from sertool.runtime.process import blas_threads, torch_threads


@dataclass(frozen=True)
class Predictions:
    """Scores of :func:`predict_audio`, one entry per input in input order.

    Attributes
    ----------
    names
        Each input's path, or ``"<array i>"`` for samples passed in memory.
    labels
        Predicted class of each input (length N; empty for a regression model, whose ``probabilities`` hold the
        predicted values of its targets, ``classes``).
    probabilities
        ``(N, C)`` float32 class probabilities (mean over the input's windows),
        columns in the order of ``classes``.
    classes
        The model's class names (C).
    durations
        ``(N,)`` float64 seconds of audio scored.
    windows
        Per input, ``[(start s, end s, probabilities (C,)), ...]``: one entry
        per window the model saw (fused models: one entry for the whole input).
    ids
        Each input's manifest id (manifest rows), else its name: rows of a
        manifest that share an audio file are separate inputs.
    """

    names: list[str]
    labels: list[str]
    probabilities: np.ndarray
    classes: tuple[str, ...]
    durations: np.ndarray
    windows: list[list[tuple[float, float, np.ndarray]]]
    ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.names)


def _loaded(checkpoint, trust_code: bool, device: str) -> Checkpoint:
    """A checkpoint object from a file, a bundled name or a loaded checkpoint, checked for code."""
    if isinstance(checkpoint, Checkpoint):
        where = "the checkpoint"
    else:
        where = checkpoint = checkpoint_path(checkpoint)
        checkpoint = load_scoring_model(checkpoint, device=device)
    checkpoint.check_no_code(where, trust_code=trust_code)
    return checkpoint


def predict_audio(checkpoint, audio, *, speakers: list[str] | None = None, speaker_regex: str | None = None,
                  window: float | None = None, hop: float | None = None,
                  trust_code: bool = False, crop_tolerance: float = CROP_TOLERANCE, batch_size: int = WINDOW_BATCH,
                  device: str = "cpu", vad: bool = False) -> Predictions:
    """Score audio in memory with a checkpoint; nothing is written.

    Parameters
    ----------
    checkpoint
        A checkpoint file, a bundled model name (``"default"``, ``"speaker"``)
        or a loaded :class:`~sertool.models.checkpoint.Checkpoint`.
    audio
        A path (file, folder, or manifest CSV), a list of paths, a
        ``(samples, sample_rate)`` pair (samples ``(N,)`` or ``(N, channels)``
        float in [-1, 1], sample_rate in Hz), or a list mixing paths and pairs.
    speakers
        For speaker-normalised checkpoints: one speaker per input (after
        folders are expanded); each speaker needs at least
        :data:`sertool.features.normalise.MIN_SPEAKER_UTTERANCES` inputs. Manifest inputs
        use their ``speaker`` column, ``speaker_regex`` searches the paths.
    window, hop
        Window length and hop in seconds (default: the model's input length, and half of it).
    crop_tolerance
        Without ``window``, inputs up to (1 + this) x the model's input length
        are one window the model centre-crops, as in training (:data:`CROP_TOLERANCE`).
    batch_size, device
        Windows per forward pass (:data:`WINDOW_BATCH`), and ``"cpu"``, ``"cuda"`` or ``"auto"``.
    trust_code
        Allow a checkpoint whose features import Python code or load a TorchScript/ONNX file.
    vad
        Score only the speech regions Silero VAD finds; ``windows`` are then the regions.

    Returns
    -------
    Predictions
        Labels, ``(N, C)`` probabilities and windows, in input order.

    Raises
    ------
    SertoolError
        An unusable input (its name is in the message), a damaged checkpoint,
        or a speaker-normalised checkpoint without speakers.
    """
    checkpoint = _loaded(checkpoint, trust_code, device)
    entries = _entries(audio)
    if not entries:
        raise SertoolError(f"no audio found in {audio}")
    members = checkpoint.member_checkpoints() if checkpoint.is_fusion else [checkpoint]
    weights = checkpoint.model_config["weights"] if checkpoint.is_fusion else [1.0]
    with torch_threads(max(1, os.cpu_count() or 1), loaded_only=True), blas_threads(1):
        scorers = [Scorer(m, window, hop, crop_tolerance, batch_size, device, vad) for m in members]
        if vad and any(s.needs_set or s.needs_speakers for s in scorers):
            raise SertoolError("vad scores speech regions one input at a time; it does not work with a "
                               "speaker- or set-normalised model yet: drop vad, or use the 'ravdess' model")
        groups = _speakers(entries, speakers, speaker_regex) if any(s.needs_speakers for s in scorers) else None
        if groups is None and any(s.needs_set for s in scorers):  # one set: every input of this call
            groups = {e.key: SCORED_SET for e in entries}
        outcomes: dict = {}
        # without groups, one unit: a file that several inputs share is scored once
        units = speaker_groups(entries, entries, groups) if groups is not None else [(None, entries)]
        for group, wanted in units:
            results = [score_group(scorer, group, wanted) for scorer in scorers]
            for e in wanted:
                outcomes[e.key] = fused([r[e.key] for r in results], weights)
    for message in {m for scorer in scorers for notes in scorer.notes.values() for m in notes}:
        category = UserWarning if message.startswith(SET_NOTE) else TruncatedAudioWarning
        warnings.warn(message, category, stacklevel=3)
    return _predictions(entries, outcomes, checkpoint.outputs)


def _is_manifest(item) -> bool:
    return isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() == ".csv" and not Path(item).is_dir()


def _entries(audio) -> list[Entry]:
    """One :class:`Entry` per input: a manifest's rows each (ids that share a file too), paths and arrays as given.

    Raises ConfigError for an item that is neither a path nor a ``(samples, sample_rate)`` pair.
    """
    sources = as_sources(audio)  # checks every item, names arrays "<array i>"
    if _is_manifest(audio):
        return [Entry(u.path, u) for u in read_manifest(audio)]
    if not isinstance(audio, (list, tuple)) or not any(_is_manifest(item) for item in audio):
        return [Entry(source) for source in sources]
    entries = []
    for i, item in enumerate(audio):
        if _is_manifest(item):
            entries.extend(Entry(u.path, u) for u in read_manifest(item))
        else:
            entries.extend(Entry(replace(s, name=f"<array {i}>") if isinstance(s, Clip) else s)
                           for s in as_sources([item]))
    return entries


def _speakers(entries: list[Entry], speakers, speaker_regex) -> dict:
    """Entry key -> speaker (speaker-normalised checkpoints): ``speakers``, one per input, else as predict finds them.

    Raises
    ------
    ConfigError
        ``speakers`` of the wrong length, or no speaker found for any input.
    """
    if speakers is not None:
        if len(speakers) != len(entries):
            raise ConfigError(f"speakers has {len(speakers)} entries for {len(entries)} inputs; give one per input")
        return {e.key: str(spk) for e, spk in zip(entries, speakers)}
    found = entry_speakers(entries, speaker_regex)
    if not found:
        raise ConfigError("this model normalises features per speaker (trained with --norm speaker): pass "
                          "speakers=[one per input], a manifest with a speaker column, or speaker_regex")
    return found


def _predictions(entries: list[Entry], outcomes: dict, classes: tuple[str, ...]) -> Predictions:
    """The :class:`Predictions` of scored ``entries`` (the first failed input raises its error, naming it)."""
    for e in entries:
        outcome = outcomes[e.key]
        if isinstance(outcome, SertoolError):
            raise type(outcome)(str(outcome) if str(outcome).startswith(str(e.source)) else f"{e.source}: {outcome}")
    scored = [outcomes[e.key] for e in entries]
    probabilities = np.stack([np.mean([p for _, p in windows], axis=0) for _, windows in scored]).astype(np.float32)
    return Predictions(names=[str(e.source) for e in entries],
                       labels=[] if is_regression(classes) else [classes[k] for k in probabilities.argmax(axis=1)],
                       probabilities=probabilities, classes=tuple(classes),
                       durations=np.array([d for d, _ in scored], dtype=np.float64),
                       windows=[[(a, b, p) for (a, b), p in windows] for _, windows in scored],
                       ids=[e.utterance.id if e.utterance is not None else str(e.source) for e in entries])
