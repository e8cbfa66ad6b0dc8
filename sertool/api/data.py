"""Corpora and features: :func:`prepare`, :func:`augment`, :func:`extract`, the feature store, the registries."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Sequence

from sertool.api.results import MergeResult, StoreDescription
from sertool.configs import load_toml
from sertool.errors import ConfigError
from sertool.models import model_names as registered_models

PathLike = str | os.PathLike


def prepare(corpus: str, root: PathLike, *, output: PathLike | None = None, label_set: str | None = None,
            subset: str | None = None, labels: bool | None = None, speaker_regex: str | None = None,
            speakers: Sequence[str] | None = None, per_speaker: int | None = None,
            vad_split: PathLike | None = None, max_failures: int = 0):
    """Scan a corpus folder into manifest rows (``sertool prepare``).

    Parameters
    ----------
    corpus
        A name of :func:`corpus_names`: ``ravdess``, ``emodb``, ``iemocap`` or ``folder``.
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
    vad_split
        A folder: cut each recording into its speech regions (Silero VAD), one FLAC and one row per region.
    max_failures
        Unreadable files tolerated before ``result.report.exit_code()`` is 3.

    Returns
    -------
    sertool.corpora.PrepareResult
        ``rows`` (list of :class:`~sertool.io.manifest.Utterance`), ``manifest``, ``failures_path``, ``report``.

    Raises
    ------
    ConfigError
        An unknown corpus, or options that do not apply to it.
    CorpusError
        ``root`` does not have the corpus's layout.
    ManifestError
        The manifest cannot be written.
    """
    from sertool.corpora import prepare_manifest  # numpy: heavy, loaded only when a corpus is scanned

    return prepare_manifest(corpus, root, output=output, label_set=label_set, subset=subset, labels=labels,
                            speaker_regex=speaker_regex, speakers=list(speakers) if speakers else None,
                            per_speaker=per_speaker, max_failures=max_failures, vad_split=vad_split)


def _settings(config: PathLike | None, settings: dict[str, Any] | None, features: str) -> dict[str, Any]:
    """A TOML file's values, then ``settings`` on top; ConfigError naming the file when its values are wrong."""
    values = load_toml(config) if config else {}
    if values:
        from sertool.features import build_config  # numpy: heavy, loaded only when a file's values are checked

        try:
            build_config(features, values)
        except ConfigError as exc:
            raise ConfigError(f"{config}: {exc}") from None
    values.update(settings or {})
    return values


def feature_config(features: str, *, settings: dict[str, Any] | None = None, config: PathLike | None = None):
    """The config :func:`extract` would use (``sertool extract --print-config``).

    Parameters
    ----------
    features
        A feature preset (:func:`feature_names`).
    settings, config
        As for :func:`extract`.

    Returns
    -------
    sertool.features.FeatureConfig
        The preset's values with the overrides applied; ``to_toml()`` prints it.

    Raises
    ------
    ConfigError
        An unknown preset or setting, or an invalid value.
    """
    from sertool.features import build_config  # numpy: heavy, loaded only when a config is built

    return build_config(features, _settings(config, settings, features))


def extract(manifest: PathLike, *, features: str, output: PathLike, settings: dict[str, Any] | None = None,
            config: PathLike | None = None, jobs: int = 1, overwrite: bool = False, max_failures: int = 0,
            progress: bool | None = False, checkpoint_seconds: float = 30.0,
            shard: str | tuple[int, int] | None = None, scheduler: str | None = None,
            export_csv: PathLike | None = None, trust_code: bool = False):
    """Compute features for every manifest row into an HDF5 store (``sertool extract``).

    Parameters
    ----------
    manifest
        Manifest CSV.
    features
        Feature preset (:func:`feature_names`), e.g. ``"lightsernet_mfcc"``.
    output
        Folder of the store ``<manifest stem>.<features>-<hash8>.h5``.
    settings, config
        Config values replacing the preset's (``{"n_mfcc": 20}``), applied after those of the TOML file ``config``.
    jobs
        Processes computing features.
    overwrite
        Recompute everything into a fresh store.
    max_failures, progress
        Failed files tolerated before ``result.report.exit_code()`` is 3; a progress bar (None: on a terminal).
    checkpoint_seconds
        How often finished work is made durable (s).
    shard
        ``"K/N"`` or ``(K, N)``: only rows K, K+N, ... into ``<store stem>.shard-K-of-N.h5``.
    scheduler
        A Dask scheduler address (``tcp://host:8786``) whose workers compute the features.
    export_csv
        Also write the utterance-level features as CSV here (``id, label, speaker, <feature names>``).
    trust_code
        Allow settings that name code to run: an ``embedding`` provider ``python`` (a function to import and
        call), ``torchscript`` or ``onnx`` (a model file); refused without it.

    Returns
    -------
    sertool.extraction.pipeline.ExtractResult
        ``store_path``, ``report`` (``ok`` newly extracted, ``skipped``, ``failures``), ``failures_path``,
        ``merged`` (entries copied from shards), ``csv_rows`` (with ``export_csv``).

    Raises
    ------
    ConfigError
        Unknown preset or setting, a bad ``shard``, or a missing Dask install.
    ManifestError
        The manifest is missing or malformed.
    UntrustedCodeError
        Settings that name code, without ``trust_code``.
    StoreError
        The store cannot be written.
    SertoolError
        ``export_csv`` of a frame-level feature set.
    """
    # extraction pipeline (~14 ms, and the extractors and HDF5 once files are computed): kept off `sertool --help`
    from sertool.extraction.pipeline import export_csv as write_csv, extract_manifest
    from sertool.store.shards import parse_shard  # numpy: kept off `sertool --help`

    if isinstance(shard, str):
        shard = parse_shard(shard)
    result = extract_manifest(manifest, features=features, output=output, settings=_settings(config, settings, features),
                              jobs=jobs, overwrite=overwrite, max_failures=max_failures, progress=progress,
                              checkpoint_seconds=checkpoint_seconds, shard=shard, scheduler=scheduler,
                              trust_code=trust_code)
    if export_csv is None or not result.store_path.exists():
        return result
    return dataclasses.replace(result, csv_rows=write_csv(result.store_path, manifest, export_csv))


def augment(manifest: PathLike, *, output: PathLike, audio_dir: PathLike, white_noise: Sequence[float] = (),
            noise_dir: PathLike | None = None, snr_range: tuple[float, float] = (5.0, 20.0),
            speed: Sequence[float] = (), pitch: Sequence[float] = (), gain: Sequence[float] = (),
            time_shift: float | None = None, rir_dir: PathLike | None = None, copies: int = 1,
            speakers: Sequence[str] | None = None, split_column: str | None = None, split_value: str = "train",
            seed: int = 0, max_failures: int = 0, progress: bool | None = False):
    """Write augmented copies of manifest rows and a manifest listing originals + copies (``sertool augment``).

    Copies keep their source's speaker and label and get ``source_id``, so
    training splits keep them with their source.

    Parameters
    ----------
    manifest, output, audio_dir
        The source manifest; the manifest to write; the folder of the new audio files.
    white_noise, noise_dir, snr_range
        White noise at these SNRs (dB); noise files from ``noise_dir`` at an SNR drawn from ``snr_range`` (dB).
    speed, pitch, gain, time_shift, rir_dir
        Speed factors, pitch shifts (semitones), gains (dB), a random shift up to ``time_shift`` s, reverberation
        with impulse responses from ``rir_dir``.
    copies
        Files per utterance for white noise, ``noise_dir``, ``time_shift`` and ``rir_dir``.
    speakers, split_column, split_value
        Augment only these speakers' rows, or the rows whose ``split_column`` equals ``split_value``.
    seed, max_failures, progress
        Same seed, same bytes; failed files tolerated before exit code 3; a progress bar.

    Returns
    -------
    sertool.io.report.RunReport
        ``ok`` files written, ``skipped`` already present, ``failures``, ``failures_path``.

    Raises
    ------
    ConfigError
        No augmentation chosen, or an invalid value.
    ManifestError
        The manifest is missing or malformed.
    AudioError
        A noise or impulse-response folder without usable audio.
    """
    from sertool.corpora.augment import augment_manifest, plan_augmentations  # numpy: kept off `sertool --help`

    chosen = plan_augmentations(white_noise=white_noise, noise_dir=noise_dir, snr_range=tuple(snr_range),
                                speed=speed, pitch=pitch, gain=gain, time_shift=time_shift, rir_dir=rir_dir,
                                copies=copies)
    return augment_manifest(manifest, output, audio_dir, chosen, seed=seed,
                            speakers=list(speakers) if speakers else None, split_column=split_column,
                            split_value=split_value, max_failures=max_failures, progress=progress)


def store_describe(stores: PathLike | Sequence[PathLike], *, max_rows: int = 10) -> list[StoreDescription]:
    """Config, entry count and the first entries' shapes of each store (``sertool store describe``).

    Parameters
    ----------
    stores
        One store file or several.
    max_rows
        Entries listed per store.

    Returns
    -------
    list of StoreDescription
        One per store, in order; ``str()`` of each is its text.

    Raises
    ------
    StoreError
        A file is missing or not a sertool feature store.
    """
    from sertool.store.describe import describe  # numpy (h5py when a store is read): kept off `sertool --help`

    paths = [stores] if isinstance(stores, (str, os.PathLike)) else list(stores)
    return [StoreDescription(Path(path), describe(path, max_rows=max_rows)) for path in paths]


def store_merge(stores: Sequence[PathLike], *, output: PathLike) -> MergeResult:
    """Merge stores of one feature config (e.g. ``extract(shard=...)`` outputs) into one (``sertool store merge``).

    Parameters
    ----------
    stores
        The stores to copy entries from.
    output
        The store to write, or to add to.

    Returns
    -------
    MergeResult
        ``output``, ``entries`` copied, ``stores`` read.

    Raises
    ------
    StoreError
        No stores, an unreadable one, or stores of different feature configs.
    """
    from sertool.store.shards import merge_files  # numpy (h5py when merging): kept off `sertool --help`

    paths = [Path(p) for p in stores]
    return MergeResult(Path(output), merge_files(paths, output), paths)


def model_names() -> list[str]:
    """Names of the registered models (``sertool train --model``; loads the model families)."""
    return registered_models()


def feature_names() -> list[str]:
    """Names of the registered feature presets (``sertool extract --features``)."""
    return sorted(feature_presets())


def feature_presets() -> dict[str, str]:
    """Feature preset name -> its one-line description (``sertool extract --list-features``)."""
    from sertool.features import PRESETS  # numpy: heavy, the extractors register on import

    return {name: preset.description for name, preset in sorted(PRESETS.items())}


def corpus_names() -> list[str]:
    """Names of the corpus preparers (``sertool prepare CORPUS``)."""
    from sertool.corpora import PREPARERS  # numpy: heavy, loaded only when the list is needed

    return sorted(PREPARERS)
