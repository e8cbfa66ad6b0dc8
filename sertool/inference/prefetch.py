"""Feature worker processes for ``predict --jobs N``: decode and features of the next files, in input order."""

from __future__ import annotations

import signal
from pathlib import Path

from sertool.errors import SertoolError
from sertool.inference.engine import Scorer
from sertool.inference.export import load_scoring_model
from sertool.inference.sources import Clip
from sertool.runtime.process import single_thread_env, start_method, tune_worker_process
from sertool.runtime.workers import Workers


class FeatureWorkers:
    """Decode + features of upcoming files in ``jobs - 1`` worker processes; :meth:`take` returns them in order.

    Parameters
    ----------
    checkpoint_path
        The checkpoint each worker loads (for its feature extractors).
    scorer
        This process's scorer: its window options are the workers', decode warnings go to its notes.
    files
        Files to prepare, in scoring order (in-memory clips are left to this process).
    jobs
        Processes in all, this one included (at least 2).
    chunk
        Files per task sent to a worker.
    """

    AHEAD = 4  # chunks queued per worker

    def __init__(self, checkpoint_path, scorer: Scorer, files: list, jobs: int, chunk: int):
        # each file once: ids of a manifest that share a file need its features once
        self.files = list({str(f): f for f in files if not isinstance(f, Clip)}.values())
        self.chunk, self.waiting = chunk, {str(f) for f in self.files}  # waiting: not taken yet
        self.next, self.ready, self.notes, self.checks = 0, {}, scorer.notes, scorer.checks
        crop_tolerance = scorer.plan.crop_tolerance if scorer.plan is not None else 0.0
        options = (str(checkpoint_path), scorer.window_s, scorer.hop_s, crop_tolerance)
        self.workers = Workers(jobs - 1, _feature_chunk, initializer=_init_feature_worker, initargs=options,
                               start_method=start_method())
        with single_thread_env():
            self.workers.start()
        self._fill()

    def _fill(self) -> None:
        while self.next < len(self.files) and self.workers.outstanding < self.AHEAD * len(self.workers):
            self.workers.submit([str(f) for f in self.files[self.next:self.next + self.chunk]])
            self.next += self.chunk

    def take(self, block: list) -> dict:
        """str(path) -> ``(duration, feats, spans)`` (or SertoolError) for the files of ``block`` the workers did.

        A file is handed out once; a later ``block`` holding it again computes it itself.
        """
        wanted = {str(f) for f in block} & self.waiting
        while not wanted <= self.ready.keys() and self.workers.outstanding:
            for key, result, notes, checks in self.workers.get():
                self.ready[key] = SertoolError(result) if isinstance(result, str) else result
                if notes:
                    self.notes.setdefault(key, []).extend(notes)
                if checks is not None:  # the input checks of the audio the worker decoded (the flags column)
                    self.checks[key] = checks
            self._fill()
        self.waiting -= wanted
        return {key: self.ready.pop(key) for key in wanted if key in self.ready}

    def close(self) -> None:
        """Stop the workers."""
        self.workers.__exit__(None, None, None)


_WORKER_SCORER: list = []


def _init_feature_worker(checkpoint_path: str, window_s, hop_s, crop_tolerance) -> None:
    """Worker set-up: a Scorer for the checkpoint's features (one BLAS thread, tuned allocator)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    tune_worker_process()
    # "cpu": the bundled model's ONNX export, when it has one, spares the worker importing torch (features only)
    _WORKER_SCORER.append(Scorer(load_scoring_model(checkpoint_path, device="cpu"), window_s, hop_s, crop_tolerance))


def _feature_chunk(paths: list[str]) -> list:
    """In a worker: ``[(path, (duration, feats, spans) or error text or None, warnings, input checks or None)]``.

    None instead of features: a long file (this process scores it).
    """
    scorer = _WORKER_SCORER[0]
    out = []
    for key in paths:
        path = Path(key)
        try:
            result = None if scorer.is_long(path) else scorer.features(path)
        except SertoolError as exc:
            result = str(exc)
        out.append((key, result, scorer.notes.pop(key, []), scorer.checks.pop(key, None)))
    return out
