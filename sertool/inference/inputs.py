"""What to score: input discovery (files, folders, manifests, arrays) and each file's speaker."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from sertool.errors import ConfigError, SertoolError
from sertool.inference.sources import Clip
from sertool.io.manifest import read_manifest
from sertool.io.scan import ScanSkips, find_audio


def _is_manifest(item: Path) -> bool:
    return item.suffix.lower() == ".csv" and not item.is_dir()


def expand_inputs(inputs: Iterable[str | os.PathLike], *, skips: ScanSkips | None = None) -> list[Path]:
    """Files as given, folders searched recursively for audio, manifests (.csv) read for their paths.

    Parameters
    ----------
    inputs
        Files, folders and manifests.
    skips
        Where to count what the folder scans pass over (files of no audio
        format, hidden ones, unreadable folders); see :mod:`sertool.io.scan`.

    Returns
    -------
    list[Path]
        Each file once, in input order; missing, unreadable files and broken links are kept (they get error rows).
    """
    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(find_audio(item, skips=skips))  # broken links included: they get error rows
        elif item.suffix.lower() == ".csv":
            files.extend(u.path for u in read_manifest(item))
        else:
            files.append(item)  # missing or unreadable files become error rows
    seen, unique = set(), []
    for f in files:
        if str(f) not in seen:
            seen.add(str(f))
            unique.append(f)
    return unique


def path_speakers(files: list[Path], speaker_regex: str | None) -> dict[str, str]:
    """str(path) -> speaker: ``speaker_regex``'s first group in the path; files it does not match are left out.

    (A manifest row's own ``speaker`` column comes first: :func:`sertool.inference.groups.entry_speakers`.)

    Raises
    ------
    SertoolError
        A regex that does not compile or has no group.
    """
    if not speaker_regex:
        return {}
    try:
        pattern = re.compile(speaker_regex)
    except re.error as exc:
        raise SertoolError(f"--speaker-regex {speaker_regex!r} is not a valid regex ({exc})") from None
    if pattern.groups < 1:
        raise SertoolError(f"--speaker-regex {speaker_regex!r} needs a group, e.g. '(Actor_\\d+)/'")
    speakers = {}
    for f in files:
        match = pattern.search(f.as_posix())
        if match:
            speakers[str(f)] = match.group(1)
    return speakers


def _is_pair(item) -> bool:
    return (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], np.ndarray)
            and isinstance(item[1], (int, np.integer)))


def as_sources(audio) -> list:
    """Paths (folders and manifests expanded) and :class:`Clip` objects from the forms ``predict_audio`` takes.

    Raises
    ------
    ConfigError
        An item that is neither a path nor a ``(samples, sample_rate)`` pair.
    """
    if _is_pair(audio):
        return [Clip(audio[0], int(audio[1]), "<array 0>")]
    if isinstance(audio, (str, os.PathLike)):
        items = [audio]
    elif isinstance(audio, (list, tuple)):
        items = list(audio)
    else:
        raise ConfigError(f"audio must be a path, a list of paths or a (samples, sample_rate) pair, not "
                          f"{type(audio).__name__}")
    sources = []
    for i, item in enumerate(items):
        if _is_pair(item):
            sources.append(Clip(item[0], int(item[1]), f"<array {i}>"))
        elif isinstance(item, (str, os.PathLike)):
            sources.extend(expand_inputs([item]))
        else:
            raise ConfigError(f"audio item {i} is a {type(item).__name__}; give a path or a (samples, "
                              "sample_rate) pair with samples a numpy array")
    return sources
