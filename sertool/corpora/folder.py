"""Any folder of audio: ``DIR/<label>/**/*.(wav|flac|ogg|mp3|aiff|au|opus|...)``.

Audio is every file of a format the decoders read (:data:`sertool.io.scan.AUDIO_SUFFIXES`); the other
files are counted by suffix in the summary line (``3 files skipped (not audio: .txt 2, .json 1)``).

The label is the name of the first sub-folder. With ``labels=False`` every
audio file under ``DIR`` (recursively) is listed with an empty label, for
scoring with ``sertool predict``.

id: the path relative to ``DIR``, suffix kept, '/' replaced by '__' (``angry/take1.wav`` ->
``angry__take1.wav``), so ``a.wav`` and ``a.flac`` in one folder stay two utterances.
speaker: empty, or the first group of ``speaker_regex`` searched in that
relative path (e.g. ``'^[^/]+/(spk\\d+)'``); a file it does not match is an
error, so speaker-independent splits never silently lose a speaker.
"""

from __future__ import annotations

import re
from pathlib import Path

from sertool.corpora.common import audio_files, require_dir, with_duration
from sertool.corpora.fake import write_tone
from sertool.errors import CorpusError
from sertool.io.manifest import Utterance
from sertool.io.report import RunReport

LABELS: tuple[str, ...] = ()  # whatever sub-folders exist
EXPECTED = ("DIR/<label>/**/*.wav|flac|ogg|mp3|aiff|au|opus|... (the folder layout; or any audio under DIR with "
            "--no-labels)")
#: ``prepare`` options for :func:`fake_tree`'s layout: the speaker is the folder below the label.
FAKE_SPEAKER_REGEX = r"^[^/]+/(spk\d+)/"


def prepare(corpus_dir: Path, *, report: RunReport, labels: bool = True,
            speaker_regex: str | None = None) -> list[Utterance]:
    """List the audio files of ``corpus_dir`` as manifest rows.

    Raises
    ------
    CorpusError
        No audio files, audio files directly under ``DIR`` when labels are
        expected, or a path the speaker regex does not match.
    """
    corpus_dir = require_dir(corpus_dir, EXPECTED)
    try:
        pattern = re.compile(speaker_regex) if speaker_regex else None
    except re.error as exc:
        raise CorpusError(f"--speaker-regex {speaker_regex!r} is not a valid regex ({exc})") from None
    files = audio_files(corpus_dir, recursive=True, report=report)
    if not files:
        skipped = f" ({report.scan.text()})" if report.scan.total else ""
        raise CorpusError(f"{corpus_dir}: no audio files{skipped}; expected {EXPECTED}")
    rows = []
    for path in files:
        rel = path.relative_to(corpus_dir)
        label = ""
        if labels:
            if len(rel.parts) < 2:
                raise CorpusError(
                    f"{path}: audio directly under {corpus_dir}; put it in a <label>/ sub-folder "
                    "or pass --no-labels"
                )
            label = rel.parts[0]
        speaker = ""
        if pattern:
            m = pattern.search(rel.as_posix())
            if not m or not m.groups():
                raise CorpusError(f"{path}: --speaker-regex {speaker_regex!r} does not match {rel.as_posix()!r}")
            speaker = m.group(1)
        rows.append(
            Utterance(id=rel.as_posix().replace("/", "__"), path=path, label=label,
                      speaker=speaker, corpus="folder")
        )
    return with_duration(rows, report)


def fake_tree(root: Path) -> Path:
    """A small labelled tree under ``root``: ``<label>/spk<N>/<i>.wav``, two labels, two speakers each.

    Speakers are parsed with ``speaker_regex=FAKE_SPEAKER_REGEX``.
    """
    root = Path(root)
    for i, label in enumerate(("calm", "angry")):
        for speaker in (1, 2):
            for clip in range(2):
                write_tone(root / label / f"spk{speaker}" / f"{clip}.wav", freq=150.0 + 80 * i + 10 * clip,
                           seed=100 * i + 10 * speaker + clip)
    return root
