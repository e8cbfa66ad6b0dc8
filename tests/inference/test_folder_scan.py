"""Folder scans (``prepare folder``, ``predict DIR``): every format the decoders read is found, the rest is counted.

Issue 23 item 10: ``.aiff``, ``.aif``, ``.au`` and ``.opus`` files that libsndfile reads were skipped without a
word by folder scans, while the same files named on the command line scored.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from sertool.io.audio import audio_info, load_audio
from sertool.io.scan import AUDIO_SUFFIXES, FORMAT_SUFFIXES, NOT_SCANNED, ScanSkips, find_audio
from tests.conftest import tone

OPUS = "OPUS" in sf.available_subtypes("OGG")
#: (file name, soundfile format, subtype, rate): formats a speech corpus arrives in besides WAV/FLAC.
FILES = [("a/take1.aiff", "AIFF", "PCM_16", 16000), ("a/take2.aif", "AIFF", "PCM_24", 22050),
         ("b/take3.au", "AU", "PCM_16", 16000), ("b/take4.wav", "WAV", "PCM_16", 16000)]
if OPUS:
    FILES.append(("b/take5.opus", "OGG", "OPUS", 48000))


def _write_tree(root: Path) -> Path:
    """Real audio in four formats, plus what a scan must pass over: notes, metadata, a hidden file."""
    for name, fmt, subtype, rate in FILES:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / name, tone(1.0, rate, freq=180.0 + 20 * len(name)), rate, format=fmt, subtype=subtype)
    (root / "a" / "notes.txt").write_text("take 1 is loud\n")
    (root / "b" / "notes.txt").write_text("take 3 is quiet\n")
    (root / "b" / "meta.json").write_text("{}\n")
    (root / "b" / "._take3.au").write_bytes(b"\x00\x05\x16\x07")  # macOS AppleDouble file: hidden, not audio
    return root


def _sertool(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sertool", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


def test_suffixes_come_from_the_formats_libsndfile_reads():
    formats = sf.available_formats()
    expected = {s for name in formats if name not in NOT_SCANNED for s in FORMAT_SUFFIXES.get(name, ())}
    assert set(AUDIO_SUFFIXES) - {".opus"} == expected
    assert {".wav", ".flac", ".aiff", ".aif", ".au", ".caf"} <= set(AUDIO_SUFFIXES)
    assert (".opus" in AUDIO_SUFFIXES) == OPUS
    assert not {".mat", ".raw", ".htk", ".txt", ".csv"} & set(AUDIO_SUFFIXES)
    assert set(formats) - set(FORMAT_SUFFIXES) - set(NOT_SCANNED) == set(), "a format libsndfile reads is unlisted"


def test_every_writable_format_is_found_and_decodes(tmp_path):
    """A file of each format soundfile can write (16-bit, 16 kHz) is listed by the scan and decodes."""
    written = []
    for name, suffixes in FORMAT_SUFFIXES.items():
        if name not in sf.available_formats() or not sf.check_format(name, "PCM_16"):
            continue
        path = tmp_path / f"{name.lower()}{suffixes[0]}"
        try:
            sf.write(path, tone(0.5, 16000), 16000, format=name, subtype="PCM_16")
        except (sf.LibsndfileError, RuntimeError, ValueError):  # a format with other rates or channels only
            path.unlink(missing_ok=True)
            continue
        written.append(path)
    assert {"aiff", "au", "caf", "wav", "w64", "rf64"} <= {p.stem for p in written}
    found = find_audio(tmp_path)
    assert found == sorted(written)
    for path in found:
        assert audio_info(path).sample_rate == 16000 and load_audio(path).shape[0] > 7000, path


def test_the_scan_counts_what_it_passes_over(tmp_path):
    root = _write_tree(tmp_path / "clips")
    (root / ".cache").mkdir()
    (root / ".cache" / "x.wav").write_bytes(b"")
    os.mkfifo(root / "a" / "pipe.wav")
    skips = ScanSkips()
    found = find_audio(root, skips=skips)
    assert [p.relative_to(root).as_posix() for p in found] == sorted(name for name, *_ in FILES)
    assert dict(skips.counts) == {".txt": 2, ".json": 1, "hidden": 2, "not a regular file": 1}
    assert skips.text() == "6 files skipped (not audio: .txt 2, .json 1; hidden 2; not a regular file 1)"


def test_an_unlistable_folder_is_counted_and_named(tmp_path):
    """A folder the scan cannot list (here: its path is longer than the system allows) is not skipped silently."""
    root = tmp_path / "clips"
    (root / "ok").mkdir(parents=True)
    sf.write(root / "ok" / "a.wav", tone(0.5), 16000)
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(20):  # 20 x 250 characters: deeper than PATH_MAX (4096)
            os.mkdir("d" * 250, dir_fd=fd)
            child = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
    finally:
        os.close(fd)
    skips = ScanSkips()
    assert find_audio(root, skips=skips) == [root / "ok" / "a.wav"]
    assert len(skips.unreadable) == 1 and "too long" in skips.unreadable[0][1]
    assert "unreadable folder 1: " in skips.text()


def test_prepare_folder_lists_every_readable_format_and_counts_the_rest(tmp_path):
    root = _write_tree(tmp_path / "clips")
    result = _sertool("prepare", "folder", root, "--no-labels", "-o", tmp_path / "m.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "m.csv", encoding="utf-8")))
    assert sorted(r["id"] for r in rows) == sorted(name.replace("/", "__") for name, *_ in FILES)
    assert all(float(r["duration"]) == pytest.approx(1.0, abs=0.01) for r in rows)
    summary = result.stderr.splitlines()[0]
    assert summary.startswith(f"prepare folder: {len(FILES)} utterances")
    assert summary.endswith("; 4 files skipped (not audio: .txt 2, .json 1; hidden 1)"), summary


def test_prepare_folder_of_no_audio_says_what_it_saw(tmp_path):
    root = tmp_path / "docs"
    (root / "x").mkdir(parents=True)
    (root / "x" / "a.txt").write_text("no audio here\n")
    result = _sertool("prepare", "folder", root, "-o", tmp_path / "m.csv", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no audio files (1 file skipped (not audio: .txt 1))" in result.stderr


def test_predict_scores_every_readable_format_in_a_folder_and_counts_the_rest(tmp_path):
    root = _write_tree(tmp_path / "clips")
    result = _sertool("predict", root, "-o", tmp_path / "p.csv", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    assert sorted(Path(r["path"]).relative_to(root).as_posix() for r in rows) == sorted(n for n, *_ in FILES)
    assert all(not r["error"] and np.isfinite(float(r["confidence"])) for r in rows)
    summary = next(line for line in result.stderr.splitlines() if line.startswith("predict:"))
    assert summary.endswith("; 4 files skipped (not audio: .txt 2, .json 1; hidden 1)"), summary
