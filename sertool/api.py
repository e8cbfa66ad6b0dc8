"""The public Python API: one call per ``sertool`` command, re-exported lazily by :mod:`sertool`.

Each function takes its data positionally and everything else by keyword
(``sertool.train(manifest, store, model="svm", output="runs/svm")``), does
what the command of the same name does, returns a result object instead of
printing, and raises :class:`~sertool.errors.SertoolError` subclasses only.
Thread counts, BLAS pools and the matplotlib backend are as they were when
the call returns.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

PathLike = str | os.PathLike


def prepare(corpus: str, root: PathLike, *, output: PathLike | None = None, label_set: str | None = None,
            subset: str | None = None, labels: bool | None = None, speaker_regex: str | None = None,
            speakers: Sequence[str] | None = None, per_speaker: int | None = None, max_failures: int = 0):
    """Scan a corpus folder into manifest rows (``sertool prepare``).

    Parameters
    ----------
    corpus
        ``ravdess``, ``emodb``, ``iemocap`` or ``folder`` (:data:`sertool.corpora.PREPARERS`).
    root
        The corpus folder.
    output
        Manifest CSV to write; None only returns the rows.
    label_set, subset
        IEMOCAP: label set (``4``, ``4-noexc``, ``6``, ``all``) and subset (``all``, ``improvised``, ``scripted``).
    labels, speaker_regex
        ``folder``: False for unlabelled files; regex whose first group is the speaker.
    speakers, per_speaker
        Keep only these speakers; at most N evenly spaced rows per speaker.
    max_failures
        Unreadable files tolerated before ``result.report.exit_code()`` is 3.

    Returns
    -------
    sertool.corpora.PrepareResult
        ``rows`` (list of :class:`~sertool.io.manifest.Utterance`), ``manifest``, ``failures_path``, ``report``.
    """
    from sertool.corpora import prepare_manifest

    return prepare_manifest(corpus, root, output=output, label_set=label_set, subset=subset, labels=labels,
                            speaker_regex=speaker_regex, speakers=list(speakers) if speakers else None,
                            per_speaker=per_speaker, max_failures=max_failures)


def extract(manifest: PathLike, *, features: str, output: PathLike, settings: dict[str, Any] | None = None,
            jobs: int = 1, overwrite: bool = False, max_failures: int = 0, progress: bool = False):
    """Compute features for every manifest row into an HDF5 store (``sertool extract``).

    Parameters
    ----------
    manifest
        Manifest CSV.
    features
        Feature preset (``sertool extract --list-features``), e.g. ``"lightsernet_mfcc"``.
    output
        Folder of the store ``<manifest stem>.<features>-<hash8>.h5``.
    settings
        Config values replacing the preset's (``{"n_mfcc": 20}``).
    jobs
        Processes computing features.
    overwrite
        Recompute everything into a fresh store.

    Returns
    -------
    sertool.extraction.pipeline.ExtractResult
        ``store_path``, ``report`` (``ok`` newly extracted, ``skipped``, ``failures``), ``failures_path``.
    """
    from sertool.extraction.pipeline import extract_manifest

    return extract_manifest(manifest, feature_set=features, out_dir=output, overrides=settings, jobs=jobs,
                            overwrite=overwrite, max_failures=max_failures, progress=progress)


def augment(manifest: PathLike, *, output: PathLike, audio_dir: PathLike, white_noise: Sequence[float] = (),
            noise_dir: PathLike | None = None, snr_range: tuple[float, float] = (5.0, 20.0),
            speed: Sequence[float] = (), pitch: Sequence[float] = (), gain: Sequence[float] = (),
            time_shift: float | None = None, rir_dir: PathLike | None = None, copies: int = 1,
            speakers: Sequence[str] | None = None, split_column: str | None = None, split_value: str = "train",
            seed: int = 0, max_failures: int = 0, progress: bool = False):
    """Write augmented copies of manifest rows and a manifest listing originals + copies (``sertool augment``).

    Units: ``white_noise`` and ``snr_range`` in dB SNR, ``speed`` as factors,
    ``pitch`` in semitones, ``gain`` in dB, ``time_shift`` in seconds. Copies
    keep their source's speaker and label and get ``source_id``, so training
    splits keep them with their source. Failures go to ``<output stem>.failures.csv``.

    Returns
    -------
    sertool.io.report.RunReport
        ``ok`` files written, ``skipped`` already present, ``failures``, ``failures_path``.
    """
    from sertool.corpora.augment import augment_manifest, plan_augmentations

    chosen = plan_augmentations(white_noise=white_noise, noise_dir=noise_dir, snr_range=snr_range, speed=speed,
                                pitch=pitch, gain=gain, time_shift=time_shift, rir_dir=rir_dir, copies=copies)
    return augment_manifest(manifest, output, audio_dir, chosen, seed=seed,
                            speakers=list(speakers) if speakers else None, split_column=split_column,
                            split_value=split_value, max_failures=max_failures, progress=progress)


def train(manifest: PathLike, store: PathLike, *, output: PathLike, model: str = "light_sernet",
          protocol: str = "speaker-kfold", folds: int = 5, fold: int | None = None, valid_speakers: int = 2,
          test_speakers: Sequence[str] | None = None, split_column: str = "split", recipe: str = "default",
          settings: dict[str, Any] | None = None, model_settings: dict[str, Any] | None = None,
          config: PathLike | None = None, utterance_store: PathLike | None = None, log=None):
    """Train one model per fold of a speaker-independent protocol (``sertool train``).

    Parameters
    ----------
    manifest, store
        Manifest CSV and a feature store of its rows.
    output
        Run folder (``fold-<i>/checkpoint.pt`` ...); a rerun resumes it.
    model
        A name of :data:`sertool.models.MODELS`.
    protocol, folds, fold, valid_speakers, test_speakers, split_column
        As the CLI options of the same names.
    recipe
        ``"default"`` (measured on CPU) or ``"paper"``.
    settings
        :class:`~sertool.training.trainer.TrainConfig` overrides (``{"epochs": 10, "norm": "speaker"}``).
    model_settings
        Model config overrides (``{"kernel": "rbf"}``).
    config
        A TOML file with ``[model]`` and ``[train]`` tables (applied before the two dicts).
    log
        Called with each progress line (default: silent).

    Returns
    -------
    list of sertool.training.trainer.FoldResult
        Per fold: ``best_epoch``, ``valid_ua``, ``epochs_run``, ``seconds``, ``out_dir``.
    """
    from sertool.training.trainer import build_train_config, load_train_toml, train_run

    model_overrides, train_overrides = load_train_toml(config) if config else ({}, {})
    model_overrides.update(model_settings or {})
    train_overrides.update(settings or {})
    train_config = build_train_config(train_overrides, model_name=model, recipe=recipe)
    return train_run(manifest, store, model_name=model, out_dir=output, protocol=protocol, folds=folds, fold=fold,
                     valid_speakers=valid_speakers, test_speakers=list(test_speakers) if test_speakers else None,
                     split_column=split_column, model_overrides=model_overrides, utterance_store=utterance_store,
                     train_config=train_config, log=log or (lambda message: None))


def evaluate(run: PathLike, *, on: tuple[PathLike, PathLike] | None = None,
             label_map: dict[str, str] | PathLike | None = None, selection: str | None = None,
             output: PathLike | None = None):
    """Score every fold of a run on its test speakers, or with ``on`` on another corpus (``sertool evaluate``).

    Parameters
    ----------
    run
        A trained or fused run folder.
    on
        ``(manifest, store)`` of another corpus: cross-corpus evaluation.
    label_map
        With ``on``: ``{other label: model label}`` or a CSV of ``from,to`` rows.
    selection
        ``"best"``, ``"average"`` or ``"last"``: score that checkpoint instead of ``checkpoint.pt``.
    output
        Results folder (default: the run folder, or ``RUN/cross-<manifest>`` with ``on``).

    Returns
    -------
    sertool.scoring.evaluate.EvaluationResult
        ``folds``: fold name (``fold-0`` ..., ``pooled``, ``mean``, ``std``) -> scores
        (``UA``, ``WA``, ``macro_F1``, per-class arrays, ``ci`` for pooled); ``labels``; ``out_dir``.
    """
    from sertool.scoring.evaluate import evaluate_cross_corpus, evaluate_run, read_label_map

    if on is None:
        if label_map is not None:
            from sertool.errors import ConfigError

            raise ConfigError("label_map goes with on=(manifest, store)")
        return evaluate_run(run, out_dir=output, selection=selection)
    if label_map is not None and not isinstance(label_map, dict):
        label_map = read_label_map(label_map)
    return evaluate_cross_corpus(run, on[0], on[1], label_map=label_map, out_dir=output, selection=selection)


def predict(checkpoint, audio, *, speakers: Sequence[str] | None = None, speaker_regex: str | None = None,
            window: float | None = None, hop: float | None = None, trust_code: bool = False,
            crop_tolerance: float | None = None, batch_size: int = 32, device: str = "cpu", vad: bool = False):
    """Score audio in memory: labels and class probabilities, no files written.

    Parameters
    ----------
    checkpoint
        A ``checkpoint.pt`` path, ``"default"`` / ``"speaker"`` (the bundled
        models), or a :class:`~sertool.models.checkpoint.Checkpoint`.
    audio
        A path (file, folder or manifest CSV), a list of paths, a
        ``(samples, sample_rate)`` pair (samples ``(N,)`` or ``(N, channels)``
        float, sample_rate in Hz), or a list of such pairs.
    speakers, speaker_regex
        Speaker-normalised checkpoints only: one speaker per input, or a regex
        on the paths (manifests bring their own speaker column).
    window, hop
        Window length and hop in seconds for long inputs (default: the model's input length, half of it).
    crop_tolerance
        Without ``window``: inputs up to (1 + this) x the model's input length are
        one centre-cropped window, as in training (default ``sertool.inference.predict.CROP_TOLERANCE``, 0.5).
    batch_size, device
        Windows per forward pass, and ``"cpu"``, ``"cuda"`` or ``"auto"``.
    vad
        Score only the speech regions Silero VAD finds (``windows`` are the regions).

    Returns
    -------
    sertool.inference.predict.Predictions
        ``labels`` (N), ``probabilities`` (N, C) float32, ``classes`` (C),
        ``names``, ``durations`` (N,) s, ``windows`` per input.
    """
    from sertool.inference.predict import CROP_TOLERANCE, predict_audio

    return predict_audio(checkpoint, audio, speakers=list(speakers) if speakers is not None else None,
                         speaker_regex=speaker_regex, window_s=window, hop_s=hop, trust_code=trust_code,
                         crop_tolerance=CROP_TOLERANCE if crop_tolerance is None else crop_tolerance,
                         batch_size=batch_size, device=device, vad=vad)


def predict_files(checkpoint, inputs: PathLike | Sequence[PathLike], *, output: PathLike,
                  window: float | None = None, hop: float | None = None, segments: bool = False,
                  resume: bool = True, speaker_regex: str | None = None, trust_code: bool = False,
                  max_failures: int = 0, progress: bool = False, crop_tolerance: float | None = None,
                  batch_size: int = 32, device: str = "cpu", vad: bool = False):
    """Score files, folders or manifests into a CSV, resumably (``sertool predict``).

    ``checkpoint``: a ``checkpoint.pt`` path or a bundled model name. Unreadable files get a row with the
    error. Manifest inputs add their ``id``, ``speaker`` and ``label`` columns.

    Returns
    -------
    sertool.io.report.RunReport
        ``ok`` scored, ``skipped`` kept from an earlier run, ``failures``.
    """
    from sertool.inference.predict import CROP_TOLERANCE, checkpoint_path, predict_files as score_files

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return score_files(checkpoint_path(checkpoint), list(inputs), output, window_s=window, hop_s=hop, segments=segments, resume=resume,
                       max_failures=max_failures, speaker_regex=speaker_regex, trust_code=trust_code,
                       progress=progress, crop_tolerance=CROP_TOLERANCE if crop_tolerance is None else crop_tolerance,
                       batch_size=batch_size, device=device, vad=vad)


def stream(source, *, output, checkpoint="default", window: float | None = None, hop: float | None = None,
           rate: int | None = None, pcm_format: str = "s16le", channels: int = 1, device: str = "cpu",
           trust_code: bool = False):
    """Score a live audio stream, one flushed CSV row per window as soon as its audio is in (``sertool stream``).

    Parameters
    ----------
    source
        A binary file object (a pipe, a socket's ``makefile("rb")``, ``sys.stdin.buffer``) or a path: a WAV
        stream, or raw PCM when ``rate`` is given (``pcm_format`` s16le/s32le/f32le, ``channels`` interleaved).
    output
        A text file object, or a path of a CSV that does not exist yet.
    checkpoint
        A checkpoint or exported model path, or a bundled model name; not speaker-normalised, not fused.

    Returns
    -------
    sertool.inference.stream.StreamResult
        ``windows`` rows written, ``seconds`` of audio read, ``incremental`` (features computed as the
        audio arrived, rows equal to ``predict --segments``; else each window scored as a clip).
    """
    import contextlib

    from sertool.errors import AudioError
    from sertool.inference.predict import checkpoint_path
    from sertool.runtime.process import blas_threads
    from sertool.inference.stream import NewFile, raw_format, stream_scores

    name = str(source) if isinstance(source, (str, os.PathLike)) else "-"
    pcm = raw_format(rate, pcm_format, channels, name) if rate is not None else None
    with contextlib.ExitStack() as stack:
        if isinstance(output, (str, os.PathLike)):
            output = NewFile(output)
            stack.callback(output.close)
        if name != "-":
            if not os.path.isfile(name):
                raise AudioError(f"{name}: file not found; check the path")
            source = stack.enter_context(open(name, "rb"))
        with blas_threads(1):
            return stream_scores(checkpoint_path(checkpoint), source, output, window_s=window, hop_s=hop, pcm=pcm,
                                 device=device, trust_code=trust_code, name=name)


def export(checkpoint, *, output: PathLike) -> dict:
    """Write a checkpoint (or a bundled model name) as ONNX (.onnx) or TorchScript (.pt) (``sertool export``).

    Returns
    -------
    dict
        ``format``, ``path``, ``max_difference`` (largest probability difference to the checkpoint on the
        check inputs), ``checked_inputs``.
    """
    from sertool.inference.export import export_checkpoint
    from sertool.inference.predict import checkpoint_path

    return export_checkpoint(checkpoint_path(checkpoint), output)


def fuse(runs: Sequence[PathLike], *, output: PathLike, weights: Sequence[float] | None = None,
         grid_step: float = 0.1):
    """Late fusion of runs trained on the same folds (``sertool fuse``).

    ``weights``: one per run (normalised to sum 1); default: fitted per fold
    on its validation speakers over a grid of step ``grid_step``.

    Returns
    -------
    sertool.scoring.fuse.FusionResult
        ``out_dir``, per-fold ``weights`` and their ``valid_ua``.
    """
    from sertool.scoring.fuse import fuse_runs

    return fuse_runs(list(runs), output, weights=list(weights) if weights else None, grid_step=grid_step)


def compare(runs: Sequence[PathLike]) -> list[dict]:
    """One row per evaluated run: pooled scores with intervals, fold mean/std, paired UA difference to the first.

    Returns
    -------
    list of dict
        Keyed by :data:`sertool.scoring.compare.COLUMNS`.
    """
    from sertool.scoring.compare import compare_runs

    return compare_runs(list(runs))


def model_names() -> list[str]:
    """Names of the registered models (``sertool train --model``)."""
    from sertool.models import model_names

    return model_names()


def feature_names() -> list[str]:
    """Names of the registered feature presets (``sertool extract --features``)."""
    from sertool.features import PRESETS

    return sorted(PRESETS)


def corpus_names() -> list[str]:
    """Names of the corpus preparers (``sertool prepare CORPUS``)."""
    from sertool.corpora import PREPARERS

    return sorted(PREPARERS)
