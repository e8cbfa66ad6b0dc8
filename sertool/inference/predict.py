"""``predict``: score audio files, folders or manifests with a checkpoint into CSV.

Features are recomputed from the checkpoint's own feature config and
normalisation, so the caller never passes feature options. Long files are
scored in overlapping windows of the model's input length; window
probabilities are averaged (or written one row per window with
``segments=True``). Bad files get a row with the error and no prediction.

Rows are written and flushed one file at a time; with ``resume`` (the
default) a rerun keeps the rows of files already scored and only scores the
rest (files that failed before are tried again), so a killed run over a
large folder never restarts from zero. Rows are keyed by what they score:
a manifest row by its id (rows that share an audio file each get their
own), any other input by its path. With ``segments=True`` the input
written last is scored again on resume: an interruption may have cut its
windows short, and nothing in the CSV says they were all written.

The pieces live in their own modules: :mod:`~sertool.inference.engine`
(scoring), :mod:`~sertool.inference.rows` (the CSV layout and resume),
:mod:`~sertool.inference.inputs`, :mod:`~sertool.inference.groups`,
:mod:`~sertool.inference.prefetch`, :mod:`~sertool.inference.bundled` and
:mod:`~sertool.inference.memory` (``predict_audio``); the names the command
line and the API use are importable from here.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from sertool.errors import SertoolError
from sertool.features.normalise import SCORED_SET
from sertool.inference.bundled import BUNDLED, DEFAULT_CHECKPOINT, checkpoint_path, default_checkpoint  # noqa: F401
from sertool.inference.engine import Scorer
from sertool.inference.export import ExportedModel, load_scoring_model
from sertool.inference.groups import (BLOCK, SET_NOTE, Entry, entries_of, entry_speakers, fused, score_block,
                                      score_group, work_units)
from sertool.inference.inputs import expand_inputs  # noqa: F401 (importable from here)
from sertool.inference.memory import Predictions, predict_audio  # noqa: F401
from sertool.inference.prefetch import FeatureWorkers
from sertool.inference.rows import error_row, header, resume as resume_rows, rows_for
from sertool.inference.runner import WINDOW_BATCH
from sertool.inference.sources import Clip
from sertool.inference.windows import CROP_TOLERANCE
from sertool.io.locks import OutputLock
from sertool.io.progress import progress_bar
from sertool.io.report import RunReport
from sertool.io.scan import ScanSkips
from sertool.runtime.process import blas_threads, torch_threads

__all__ = ["BUNDLED", "CROP_TOLERANCE", "Clip", "DEFAULT_CHECKPOINT", "Predictions", "WINDOW_BATCH",
           "checkpoint_path", "default_checkpoint", "expand_inputs", "predict_audio", "predict_files"]


def predict_files(checkpoint, inputs, output, *, window: float | None = None, hop: float | None = None,
                  segments: bool = False, resume: bool = True, max_failures: int = 0,
                  speaker_regex: str | None = None, trust_code: bool = False,
                  progress: bool | None = None, crop_tolerance: float = CROP_TOLERANCE,
                  batch_size: int = WINDOW_BATCH, device: str = "cpu", stdin: Clip | None = None,
                  vad: bool = False, jobs: int = 1) -> RunReport:
    """Score ``inputs`` with the checkpoint and write CSV rows to ``output`` (a path or ``"-"`` for stdout).

    ``checkpoint``: a checkpoint or exported model file (see :func:`checkpoint_path` for bundled names).
    ``window``, ``hop``: window length and hop in seconds (default: the model's input length, and half of it).

    A checkpoint trained with ``--norm speaker`` needs every file's speaker:
    from a manifest input's ``speaker`` column or ``speaker_regex`` (first
    group, searched in the path). Each speaker's statistics come from all of
    that speaker's files in the inputs; a speaker with fewer than
    :data:`sertool.features.normalise.MIN_SPEAKER_UTTERANCES` scorable files gets error rows.

    A checkpoint whose features would import a Python function or load a
    TorchScript/ONNX file (embedding providers) is refused unless ``trust_code``.

    ``jobs``: processes; with more than one, ``jobs - 1`` workers decode and
    compute features of the next files while this process runs the model
    and writes (rows stay in input order).

    ``vad``: score only the speech regions Silero VAD finds; with ``segments``
    one row per region (its start and end).

    An input ``"-"`` is ``stdin``: a :class:`Clip` (audio read from standard
    input, see :func:`sertool.io.audio.decode_bytes`), scored like a file and
    written with path ``-``.

    Returns the run report (``ok`` scored, ``skipped`` kept from an earlier
    run, ``failures`` with their errors, also in the CSV's ``error`` column).
    """
    # One OpenBLAS thread for numpy's small feature products (the CLI also sets OPENBLAS_NUM_THREADS):
    # OpenBLAS threads spinning between calls took the cores from torch's threads (predict ran 2.4x slower).
    # With feature workers, the model gets the cores they leave: more threads than cores made both 1.4x slower.
    threads = max(1, (os.cpu_count() or 1) - (jobs - 1))
    with blas_threads(1):
        job = _Job.prepare(checkpoint, inputs, segments=segments, speaker_regex=speaker_regex,
                           trust_code=trust_code, stdin=stdin, vad=vad, jobs=jobs, threads=threads,
                           options=(window, hop, crop_tolerance, batch_size, device, vad))
        # a model on onnxruntime (the bundled one) got its threads when it was opened, and needs no torch
        with torch_threads(threads, loaded_only=True):
            return job.write(output, resume=resume, max_failures=max_failures, progress=progress)


@dataclass
class _Job:
    """One predict run once its inputs, scorers and speakers are known."""

    checkpoint_path: object
    entries: list[Entry]
    scorers: list[Scorer]
    weights: list[float]
    labels: list[str]
    segments: bool
    speakers: dict | None
    jobs: int
    manifest: bool  # whether the rows have the manifest columns (some input is a manifest row)
    scan: ScanSkips  # what the folder scans passed over (the summary line counts it)

    @classmethod
    def prepare(cls, checkpoint_path, inputs, *, segments, speaker_regex, trust_code, stdin, vad, jobs, threads,
                options) -> "_Job":
        """Load the checkpoint, expand the inputs and find the speakers (SertoolError for what cannot work)."""
        checkpoint = load_scoring_model(checkpoint_path, device=options[4])
        if isinstance(checkpoint, ExportedModel) and jobs > 1:
            checkpoint.threads = threads  # onnxruntime's default is one thread per core
        checkpoint.check_no_code(checkpoint_path, trust_code=trust_code)
        members = checkpoint.member_checkpoints() if checkpoint.is_fusion else [checkpoint]
        weights = checkpoint.model_config["weights"] if checkpoint.is_fusion else [1.0]
        if checkpoint.is_fusion and segments:
            raise SertoolError(f"{checkpoint_path}: a fused model scores whole files (its members' windows differ); "
                               "drop --segments, or score a member's checkpoint with --segments")
        scan = ScanSkips()
        entries = entries_of(inputs, stdin, skips=scan)
        if not entries:
            raise SertoolError(f"no audio files found in {', '.join(map(str, inputs))}")
        scorers = [Scorer(m, *options) for m in members]
        needs_speakers = any(s.needs_speakers for s in scorers)
        if vad and (needs_speakers or any(s.needs_set for s in scorers)):
            raise SertoolError(f"{checkpoint_path}: --vad scores speech regions one file at a time; it does not "
                               "work with a speaker- or set-normalised model yet: drop --vad, or use --model ravdess")
        speakers = entry_speakers(entries, speaker_regex) if needs_speakers else None
        if speakers is None and any(s.needs_set for s in scorers):  # one set: every file scored in this run
            speakers = {e.key: SCORED_SET for e in entries}
        if needs_speakers and not speakers:
            raise SertoolError(f"{checkpoint_path}: this model normalises features per speaker (trained with --norm "
                               "speaker), so predict needs each file's speaker: pass a manifest CSV with a speaker "
                               "column, or --speaker-regex REGEX whose first group is the speaker in the path")
        return cls(checkpoint_path, entries, scorers, weights, checkpoint.outputs, segments, speakers, jobs,
                   any(e.utterance is not None for e in entries), scan)

    @property
    def columns(self) -> list[str]:
        return header(self.labels, self.segments, manifest=self.manifest)

    def extra(self, entry: Entry) -> list[str]:
        """The manifest columns of ``entry``'s rows (none without manifest inputs)."""
        if not self.manifest:
            return []
        utt = entry.utterance
        return [utt.id, utt.speaker, utt.label] if utt is not None else ["", "", ""]

    def write(self, output, *, resume: bool, max_failures: int, progress) -> RunReport:
        """Write the rows into ``output`` (resuming it, under its lock) or to stdout (``"-"``)."""
        if str(output) == "-":
            report = RunReport(max_failures=max_failures, scan=self.scan)
            return self._write_rows(sys.stdout, self.entries, 0, report, progress)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        lock = OutputLock(output, f"{output}: another sertool predict is writing this file; wait for it to finish "
                                  "or use another -o").acquire()
        try:
            done: set[tuple[str, str]] = set()
            if resume and output.exists():
                done = resume_rows(output, self.columns)
            else:
                with open(output, "w", newline="", encoding="utf-8") as fh:
                    csv.writer(fh).writerow(self.columns)
            report = RunReport(max_failures=max_failures, scan=self.scan)
            todo = [e for e in self.entries if e.key not in done]
            try:
                skipped = len(self.entries) - len(todo)
                with open(output, "a", newline="", encoding="utf-8") as sink:
                    return self._write_rows(sink, todo, skipped, report, progress, write_header=False)
            except OSError as exc:  # a write into the output failed (full disk, file size limit): name the file
                if exc.filename is not None:
                    raise
                raise OSError(exc.errno, exc.strerror, str(output)) from None
            finally:  # warnings of entries an earlier run did are kept (a manifest id, or a file named by its stem)
                report.write_warnings(output.with_name(output.stem + ".warnings.csv"),
                                      keep=lambda row: (row["id"], row["path"]) in done or ("", row["path"]) in done)
        finally:
            lock.release()

    def _write_rows(self, sink, todo: list[Entry], skipped: int, report: RunReport, progress,
                    write_header: bool = True):
        """Score ``todo`` and write each entry's rows to ``sink``, flushed entry by entry."""
        report.skip(skipped)
        writer = csv.writer(sink)
        if write_header:
            writer.writerow(self.columns)
        prefetch = None
        if self.jobs > 1 and len(self.scorers) == 1 and not self.scorers[0].vad and self.speakers is None \
                and len(todo) > 1:
            prefetch = FeatureWorkers(self.checkpoint_path, self.scorers[0], [e.source for e in todo], self.jobs,
                                      chunk=4)
        try:
            with progress_bar(len(todo), progress, desc="predict") as bar:
                for group, wanted in work_units(self.entries, todo, self.speakers, self.scorers[0].batch_size):
                    if group is BLOCK:  # files scored alone: their windows go through the model together
                        computed = prefetch.take([e.source for e in wanted]) if prefetch is not None else {}
                        results = [score_block(scorer, wanted, computed) for scorer in self.scorers]
                    else:
                        results = [score_group(scorer, group, wanted) for scorer in self.scorers]
                    for entry in wanted:
                        self._write_entry(writer, report, entry, fused([r[entry.key] for r in results], self.weights))
                        sink.flush()  # each entry's rows are on disk before the next entry's are written
                        bar.update()
                    self._forget(wanted if group is BLOCK or group is None else group[1])
        finally:
            if prefetch is not None:
                prefetch.close()
        return report

    def _forget(self, entries: list[Entry]) -> None:
        """Drop the input checks and notes of the files of a written unit (kept until all its entries are written)."""
        for scorer in self.scorers:
            for e in entries:
                scorer.checks.pop(str(e.source), None)
                scorer.notes.pop(str(e.source), None)

    def _write_entry(self, writer, report: RunReport, entry: Entry, outcome) -> None:
        """The rows (or error row) of one entry, and its report entries."""
        path = entry.source
        checks = self.scorers[0].checks.get(str(path))  # members measure alike
        if isinstance(outcome, SertoolError):
            message = str(outcome) if str(outcome).startswith(str(path)) else f"{path}: {outcome}"
            writer.writerow(error_row(path, message, self.labels, self.segments, self.extra(entry)))
            report.fail(entry.name, path, "predict", message)
        else:
            rows = rows_for(path, *outcome, self.labels, self.segments, self.extra(entry),
                            flags=checks.flags if checks is not None else None)
            writer.writerows(rows)
            report.done()
            report.flag({name for row in rows for name in row[-2].split(";") if name})
        for message in {m for scorer in self.scorers for m in scorer.notes.get(str(path), [])}:
            report.warn(entry.name, path, "normalise" if message.startswith(SET_NOTE) else "decode", message)
