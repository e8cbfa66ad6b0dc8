"""Folder scans: which file names count as audio, and what a scan passes over (counted, never silent).

The audio suffixes come from the decoders: every major format the installed
libsndfile reads (:func:`soundfile.available_formats`; dr_flac, the other
decoder of :mod:`sertool.io.audio`, reads FLAC only, which libsndfile reads
too), each under the suffixes files of that format are saved with, and
``.opus`` when libsndfile's OGG container has the Opus codec. Left out: the
formats whose suffix mostly names other things (RAW has no header to read;
``.mat`` is usually Matlab data, ``.htk`` HTK feature files, ``.mpc``
Musepack, none of which libsndfile decodes).

A scan lists the files with those suffixes and counts everything else it
passes over in a :class:`ScanSkips`: files of other suffixes (by suffix),
hidden files and folders, entries that are not regular files, and folders
it cannot read (named), for the summary line of ``prepare`` and ``predict``.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


#: libsndfile major format (a key of ``soundfile.available_formats()``) -> the suffixes its files carry.
FORMAT_SUFFIXES: dict[str, tuple[str, ...]] = {
    "WAV": (".wav", ".wave"), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
    "NIST": (".nist", ".sph"), "AIFF": (".aiff", ".aif", ".aifc"), "AU": (".au", ".snd"), "CAF": (".caf",),
    "FLAC": (".flac",), "OGG": (".ogg", ".oga"), "MP3": (".mp3",), "MPEG": (".mp3",), "AVR": (".avr",),
    "SVX": (".8svx", ".svx"), "PAF": (".paf",), "PVF": (".pvf",), "SD2": (".sd2",), "SDS": (".sds",),
    "IRCAM": (".sf", ".ircam"), "VOC": (".voc",), "WVE": (".wve",), "XI": (".xi",),
}
#: libsndfile formats not scanned for, and why (their suffixes mostly name files that are not audio).
NOT_SCANNED = {"RAW": "no header", "MAT4": ".mat: Matlab data", "MAT5": ".mat: Matlab data",
               "HTK": ".htk: feature files", "MPC2K": ".mpc: Musepack"}


@functools.lru_cache(maxsize=1)
def audio_suffixes() -> tuple[str, ...]:
    """The lower-case suffixes of every format the installed decoders read, sorted.

    Asked of libsndfile on first use (soundfile loads numpy: an up-to-date ``extract`` never needs it).
    """
    import soundfile as sf  # loads numpy: only on the first scan, never on an up-to-date extract

    formats = sf.available_formats()
    suffixes = {s for name in formats for s in FORMAT_SUFFIXES.get(name, ())}
    if "OGG" in formats and "OPUS" in sf.available_subtypes("OGG"):
        suffixes.add(".opus")
    return tuple(sorted(suffixes))




def __getattr__(name: str):
    """``AUDIO_SUFFIXES``: :func:`audio_suffixes`, computed on first use."""
    if name == "AUDIO_SUFFIXES":
        return audio_suffixes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
#: The reason counted for a file whose name has no suffix.
NO_SUFFIX = "(no suffix)"


@dataclass
class ScanSkips:
    """What folder scans passed over: reason -> count, and the folders that could not be read.

    Reasons are a suffix (``.txt``; ``(no suffix)``) for files of no audio
    format, ``hidden`` for hidden files and folders, ``not a regular file``
    for sockets, pipes and devices.
    """

    counts: Counter = field(default_factory=Counter)
    #: ``(folder, reason)`` of each folder that could not be listed.
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    def add(self, reason: str, count: int = 1) -> None:
        """Count ``count`` entries passed over for ``reason``."""
        if count:
            self.counts[reason] += count

    def update(self, other: "ScanSkips") -> None:
        """Add ``other``'s counts and unreadable folders to these."""
        self.counts.update(other.counts)
        self.unreadable.extend(other.unreadable)

    @property
    def total(self) -> int:
        """Entries passed over, unreadable folders included."""
        return sum(self.counts.values()) + len(self.unreadable)

    def text(self) -> str | None:
        """``3 files skipped (not audio: .txt 2, .json 1)``, more reasons after ``;``, or None when nothing was."""
        if not self.total:
            return None
        suffixes = sorted(((r, n) for r, n in self.counts.items() if r.startswith(".") or r == NO_SUFFIX),
                          key=lambda item: (-item[1], item[0]))
        parts = [f"not audio: {', '.join(f'{r} {n}' for r, n in suffixes)}"] if suffixes else []
        parts += [f"{r} {n}" for r, n in sorted(self.counts.items()) if not (r.startswith(".") or r == NO_SUFFIX)]
        if self.unreadable:
            folder, reason = self.unreadable[0]
            more = f" and {len(self.unreadable) - 1} more" if len(self.unreadable) > 1 else ""
            parts.append(f"unreadable folder {len(self.unreadable)}: {folder} ({reason}){more}")
        noun = "file" if self.total == 1 else "files"
        return f"{self.total} {noun} skipped ({'; '.join(parts)})"


def _listing_error(skips: ScanSkips | None):
    """An ``os.walk`` ``onerror`` that records the folder it could not list."""
    def record(exc: OSError) -> None:
        if skips is not None:
            skips.unreadable.append((str(exc.filename), exc.strerror or type(exc).__name__))
    return record


def _keep_file(path: Path, skips: ScanSkips | None) -> bool:
    """Whether the scan lists ``path``; what it passes over is counted in ``skips``."""
    reason = None
    if path.name.startswith("."):
        reason = "hidden"
    elif path.suffix.lower() not in audio_suffixes():
        reason = path.suffix.lower() or NO_SUFFIX
    elif not (path.is_file() or path.is_symlink()):  # a broken link is listed: the caller reports it
        reason = "not a regular file"
    if reason is not None and skips is not None:
        skips.add(reason)
    return reason is None


def find_audio(folder: str | os.PathLike, *, recursive: bool = True, skips: ScanSkips | None = None) -> list[Path]:
    """Audio files (by suffix, any case, :data:`AUDIO_SUFFIXES`) under ``folder``, sorted.

    Hidden files and folders are skipped. Symbolic links are followed (a
    folder reached twice, as through a link loop, is walked once). Links
    that resolve to no file (dangling, or a loop) are listed too, so that
    the caller reports them instead of skipping them. Everything passed over
    is counted in ``skips`` (sub-folders too, when not ``recursive``).
    """
    folder = Path(folder)
    found: list[Path] = []
    seen: set[str] = set()
    for root, dirs, names in os.walk(folder, followlinks=True, onerror=_listing_error(skips)):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        hidden = [d for d in dirs if d.startswith(".")]
        if skips is not None and (hidden or not recursive):
            skips.add("hidden", len(hidden))
            if not recursive and len(dirs) > len(hidden):
                skips.add("sub-folder", len(dirs) - len(hidden))
        dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if recursive else []
        found.extend(path for path in map(Path(root).joinpath, names) if _keep_file(path, skips))
    return sorted(found)
