"""``predict``: score audio files, folders or manifests with a checkpoint into CSV.

Features are recomputed from the checkpoint's own feature config and
normalisation, so the caller never passes feature options. Long files are
scored in overlapping windows of the model's input length; window
probabilities are averaged (or written one row per window with
``segments=True``). Bad files get a row with the error and no prediction.

Rows are written and flushed one file at a time; with ``resume`` (the
default) a rerun keeps the rows of files already scored and only scores the
rest (files that failed before are tried again), so a killed run over a
large folder never restarts from zero.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from sertool.audio import AUDIO_SUFFIXES
from sertool.errors import SertoolError
from sertool.report import RunReport


#: The model trained on all 16 RAVDESS actors of ../shared/data, shipped inside the package.
DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "models" / "default" / "light_sernet_ravdess.pt"


def default_checkpoint() -> Path:
    """Path of the bundled model (see ``sertool/models/default/README.md``)."""
    if not DEFAULT_CHECKPOINT.is_file():
        raise SertoolError(f"{DEFAULT_CHECKPOINT}: the bundled model is missing from this installation; "
                           "pass a checkpoint with --model")
    return DEFAULT_CHECKPOINT


def expand_inputs(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, folders searched recursively for audio, manifests (.csv) read for their paths."""
    from sertool.manifest import read_manifest

    files: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files.extend(sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
                                and not p.name.startswith(".")))
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


@dataclass
class Scorer:
    """Checkpoint + extractor + model: ``score(path) -> (duration s, [((start s, end s), probs (C,))])``.

    start/end give the span of audio the window's frames cover.
    """

    checkpoint: object
    window_s: float | None
    hop_s: float | None

    def __post_init__(self):
        import torch

        from sertool.features import build_extractor

        self.extractor = build_extractor(self.checkpoint.feature_config)
        extra = self.checkpoint.utterance_feature_config
        self.utterance_extractor = build_extractor(extra) if extra else None
        self.model = self.checkpoint.build_model()
        self.mean = self.checkpoint.norm_mean.numpy()
        self.std = self.checkpoint.norm_std.numpy()
        self.frame_s = self.extractor.config.hop_ms / 1000.0
        model_frames = self.checkpoint.model_config.get("input_frames")
        window_s = self.window_s if self.window_s else (model_frames * self.frame_s if model_frames else None)
        self.window = max(1, round(window_s / self.frame_s)) if window_s else None
        hop_s = self.hop_s if self.hop_s else (window_s / 2 if window_s else None)
        self.hop = max(1, round(hop_s / self.frame_s)) if hop_s else None
        self._torch = torch

    def score(self, path: Path):
        from sertool.audio import load_audio

        sr = self.extractor.sample_rate
        samples = load_audio(path, sr=sr, min_duration=self.extractor.min_duration)
        feats = self.extractor.extract(samples, sr)
        if self.utterance_extractor is not None:
            extra = self.utterance_extractor
            vector = extra.extract(load_audio(path, sr=extra.sample_rate, min_duration=extra.min_duration)
                                   if extra.sample_rate != sr else samples, extra.sample_rate)
            feats = np.concatenate([feats, np.repeat(vector, feats.shape[0], axis=0)], axis=1)
        feats = (feats - self.mean) / self.std
        total = feats.shape[0]
        if self.window is None or total <= self.window:
            starts = [0]
        else:
            starts = list(range(0, total - self.window + 1, self.hop))
            if starts[-1] + self.window < total:
                starts.append(total - self.window)  # the end of the file is always covered
        size = total if self.window is None else min(self.window, total)
        windows = np.stack([feats[s:s + size] for s in starts])
        torch = self._torch
        with torch.no_grad():
            logits = self.model(torch.from_numpy(windows), torch.full((len(starts),), size, dtype=torch.long))
            probs = torch.softmax(logits, dim=-1).numpy()
        duration = samples.shape[0] / sr
        win_s = self.extractor.config.win_length / sr
        lead = win_s / 2 if self.extractor.config.center else 0.0  # centred frames start half a window early
        spans = [(max(0.0, s * self.frame_s - lead), min(duration, (s + size - 1) * self.frame_s - lead + win_s))
                 for s in starts]
        return duration, list(zip(spans, probs))


def _header(labels: list[str], segments: bool) -> list[str]:
    lead = ["path", "start", "end"] if segments else ["path"]
    return lead + ["predicted", "confidence", *(f"p_{c}" for c in labels), "duration", "error"]


def _rows_for(path: Path, duration: float, windows, labels: list[str], segments: bool) -> list[list[str]]:
    def row(probs, lead):
        k = int(np.argmax(probs))
        return [str(path), *lead, labels[k], f"{probs[k]:.4f}", *(f"{p:.4f}" for p in probs), f"{duration:.3f}", ""]

    if segments:
        return [row(p, [f"{a:.3f}", f"{b:.3f}"]) for (a, b), p in windows]
    return [row(np.mean([p for _, p in windows], axis=0), [])]


def _error_row(path: Path, error: str, labels: list[str], segments: bool) -> list[str]:
    blanks = (2 if segments else 0) + 2 + len(labels) + 1
    return [str(path), *[""] * blanks, error]


def _resume(output: Path, header: list[str]) -> set[str]:
    """Keep the good rows of an earlier run (dropping error rows and a torn last line); return their paths."""
    with open(output, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        return set()
    if rows[0] != header:
        raise SertoolError(f"{output}: written by another model or mode (other columns); use another -o "
                           "or --no-resume to overwrite it")
    good = [r for r in rows[1:] if len(r) == len(header) and not r[-1]]
    tmp = output.with_name(output.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *good])
    os.replace(tmp, output)
    return {r[0] for r in good}


def predict_files(checkpoint_path, inputs, output, *, window_s: float | None = None, hop_s: float | None = None,
                  segments: bool = False, resume: bool = True, max_failures: int = 0,
                  progress: bool | None = None) -> RunReport:
    """Score ``inputs`` with the checkpoint and write CSV rows to ``output`` (a path or ``"-"`` for stdout).

    Returns the run report (``ok`` scored, ``skipped`` kept from an earlier
    run, ``failures`` with their errors, also in the CSV's ``error`` column).
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    # One OpenBLAS thread for numpy's small feature products (the CLI also sets OPENBLAS_NUM_THREADS):
    # OpenBLAS threads spinning between calls took the cores from torch's threads (predict ran 2.4x slower).
    with threadpool_limits(limits={"openblas": 1}):
        return _predict(checkpoint_path, inputs, output, window_s=window_s, hop_s=hop_s, segments=segments,
                        resume=resume, max_failures=max_failures, progress=progress)


def _predict(checkpoint_path, inputs, output, *, window_s, hop_s, segments, resume, max_failures,
             progress) -> RunReport:
    """:func:`predict_files` once its thread settings are in place."""
    from sertool.checkpoint import Checkpoint
    from sertool.progress import progress_bar

    checkpoint = Checkpoint.load(checkpoint_path)
    labels = list(checkpoint.labels)
    header = _header(labels, segments)
    files = expand_inputs(inputs)
    if not files:
        raise SertoolError(f"no audio files found in {', '.join(map(str, inputs))}")
    report = RunReport(max_failures=max_failures)
    to_stdout = str(output) == "-"
    done: set[str] = set()
    if not to_stdout:
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        if resume and output.exists():
            done = _resume(output, header)
        else:
            with open(output, "w", newline="", encoding="utf-8") as fh:
                csv.writer(fh).writerow(header)
    todo = [f for f in files if str(f) not in done]
    report.skipped = len(files) - len(todo)
    scorer = Scorer(checkpoint, window_s, hop_s)
    sink = sys.stdout if to_stdout else open(output, "a", newline="", encoding="utf-8")
    try:
        writer = csv.writer(sink)
        if to_stdout:
            writer.writerow(header)
        with progress_bar(len(todo), progress, desc="predict") as bar:
            for path in todo:
                try:
                    duration, windows = scorer.score(path)
                    writer.writerows(_rows_for(path, duration, windows, labels, segments))
                    report.ok += 1
                except SertoolError as exc:
                    message = str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}"
                    writer.writerow(_error_row(path, message, labels, segments))
                    report.fail(path.stem, path, "predict", message)
                sink.flush()  # every finished file is on disk before the next starts
                bar.update()
    finally:
        if not to_stdout:
            sink.close()
    return report
