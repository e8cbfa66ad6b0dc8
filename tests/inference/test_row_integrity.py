"""predict rows are keyed by what they score (a manifest id, or a path), and resume never trusts a partial file.

- A manifest may list one audio file under many ids (segments, duplicates):
  every id gets its own row(s), once, also after a resumed run, with
  ``--segments``, feature workers, set or speaker normalisation, and in the
  in-memory API.
- ``--segments`` writes several rows per file: an output cut inside a file's
  rows (a kill, a full disk, a file size limit) is resumed to exactly the
  rows of an uninterrupted run: no window missing, none twice.
"""

from __future__ import annotations

import csv
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from sertool import api
from sertool.cli.main import cli
from sertool.errors import SertoolError
from sertool.inference.rows import header, resume
from tests.conftest import write_audio

FILES, IDS_PER_FILE = 5, 10


def _manifest(folder: Path, speakers: int = 1) -> Path:
    """``FILES`` tone files, each listed under ``IDS_PER_FILE`` ids (``f<i>_<k>``), as one manifest."""
    lines = ["id,path,label,speaker"]
    for i in range(FILES):
        seconds = 7.0 if i == 3 else 1.0 + 0.25 * i  # clip3: several windows
        write_audio(folder / f"clip{i}.wav", seconds=seconds, freq=150.0 + 40 * i, seed=i)
        lines += [f"f{i}_{k},clip{i}.wav,calm,spk{k % speakers}" for k in range(IDS_PER_FILE)]
    (folder / "m.csv").write_text("\n".join(lines) + "\n")
    return folder / "m.csv"


def _predict(*args) -> "object":
    result = CliRunner().invoke(cli, ["predict", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def _rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path, newline="", encoding="utf-8")))


@pytest.mark.parametrize("options", [[], ["--segments"], ["--jobs", "2"], ["-m", "default"]])
def test_ids_sharing_a_file_each_get_their_rows_and_resume_keeps_them(tmp_path, options):
    manifest = _manifest(tmp_path)
    out = tmp_path / "p.csv"
    model = [] if "-m" in options else ["-m", "ravdess"]
    first = _predict(manifest, *model, *options, "-o", out)
    rows = _rows(out)
    ids = [f"f{i}_{k}" for i in range(FILES) for k in range(IDS_PER_FILE)]
    keys = [(r["id"], r.get("start"), r.get("end")) for r in rows]
    assert sorted({r["id"] for r in rows}) == sorted(ids) and len(keys) == len(set(keys))  # every id, once
    assert all(r["predicted"] and not r["error"] for r in rows)
    if "--segments" not in options:
        assert len(rows) == FILES * IDS_PER_FILE and f"{FILES * IDS_PER_FILE} scored" in first.output
    by_file = {}
    for r in rows:  # ids of one file carry the file's scores
        by_file.setdefault((r["path"], r.get("start")), set()).add(r["p_" + rows[0]["predicted"]])
    assert all(len(v) == 1 for v in by_file.values())
    again = _predict(manifest, *model, *options, "-o", out)
    assert _rows(out) == rows  # resumed: the same rows, none twice
    if "--segments" not in options:
        assert f"0 scored, {FILES * IDS_PER_FILE} already" in again.output


def test_speaker_model_groups_ids_by_their_own_speaker(tmp_path):
    lines = ["id,path,label,speaker"]
    for i in range(10):  # ten files of one speaker, each listed twice: 20 ids, statistics of the 10 files
        write_audio(tmp_path / f"c{i}.wav", seconds=1.0, freq=140.0 + 20 * i, seed=i)
        lines += [f"a{i},c{i}.wav,calm,spk1", f"b{i},c{i}.wav,calm,spk1"]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.csv"
    _predict(tmp_path / "m.csv", "-m", "ravdess-speaker", "-o", out)
    rows = _rows(out)
    assert sorted(r["id"] for r in rows) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)])
    assert all(r["predicted"] and not r["error"] for r in rows)
    scores = {r["id"]: r["confidence"] for r in rows}
    assert all(scores[f"a{i}"] == scores[f"b{i}"] for i in range(10))


def test_warnings_are_kept_per_id_on_resume(tmp_path):
    good = write_audio(tmp_path / "good.flac", seconds=3.0)
    (tmp_path / "cut.flac").write_bytes(good.read_bytes()[:good.stat().st_size // 2])  # truncated: a warning
    (tmp_path / "m.csv").write_text("id,path\nx1,cut.flac\nx2,cut.flac\ny,good.flac\n")
    out = tmp_path / "p.csv"
    _predict(tmp_path / "m.csv", "-m", "ravdess", "-o", out)
    warnings = tmp_path / "p.warnings.csv"
    first = sorted(r["id"] for r in _rows(warnings))
    assert first == ["x1", "x2"] and len(_rows(out)) == 3
    _predict(tmp_path / "m.csv", "-m", "ravdess", "-o", out)  # everything resumed: the warnings stay
    assert sorted(r["id"] for r in _rows(warnings)) == first


def test_in_memory_predict_scores_every_manifest_row(tmp_path):
    manifest = _manifest(tmp_path)
    scored = api.predict("ravdess", manifest)
    assert len(scored) == FILES * IDS_PER_FILE
    assert scored.ids == [f"f{i}_{k}" for i in range(FILES) for k in range(IDS_PER_FILE)]
    assert scored.names[0] == scored.names[IDS_PER_FILE - 1] == str(tmp_path / "clip0.wav")
    np.testing.assert_array_equal(scored.probabilities[0], scored.probabilities[IDS_PER_FILE - 1])
    paths = api.predict("ravdess", [tmp_path / "clip0.wav", tmp_path / "clip1.wav", tmp_path / "clip0.wav"])
    assert len(paths) == 3 and paths.ids == paths.names  # a path given twice: two entries, as given


# ---------------------------------------------------------------------------------------------------- --segments cuts
@pytest.fixture(scope="module")
def long_files(tmp_path_factory):
    """Three files of several windows each, and the uninterrupted ``--segments`` output's bytes."""
    folder = tmp_path_factory.mktemp("segments")
    paths = [write_audio(folder / "in" / f"{name}.wav", seconds=seconds, freq=freq, seed=k)
             for k, (name, seconds, freq) in enumerate([("a", 7.0, 180.0), ("b", 9.5, 240.0), ("c", 6.0, 300.0)])]
    reference = folder / "ref.csv"
    _predict(folder / "in", "-m", "ravdess", "--segments", "-o", reference)
    return folder / "in", paths, reference.read_bytes()


def _block_offsets(data: bytes, path: Path) -> tuple[int, int]:
    """Byte offsets of the first and the last line start of ``path``'s rows in the CSV ``data``."""
    starts, offset = [], 0
    for line in data.splitlines(keepends=True):
        if line.startswith(str(path).encode() + b","):
            starts.append(offset)
        offset += len(line)
    assert len(starts) >= 4, "the test needs files of several windows"
    return starts[0], starts[-1]


@pytest.mark.parametrize("cut", ["mid_line", "row_boundary", "after_first_row", "last_file_row_boundary",
                                 "block_boundary"])
def test_segments_output_cut_inside_a_file_resumes_to_the_uninterrupted_rows(long_files, tmp_path, cut):
    folder, paths, reference = long_files
    first_b, last_b = _block_offsets(reference, paths[1])
    first_c, last_c = _block_offsets(reference, paths[2])
    second_b = reference.index(b"\n", first_b) + 1
    offset = {"mid_line": (first_b + last_b) // 2 + 7, "row_boundary": last_b, "after_first_row": second_b,
              "last_file_row_boundary": last_c, "block_boundary": first_c}[cut]
    out = tmp_path / "p.csv"
    out.write_bytes(reference[:offset])
    _predict(folder, "-m", "ravdess", "--segments", "-o", out)
    assert out.read_bytes() == reference


def test_segments_run_stopped_by_a_file_size_limit_resumes_to_the_uninterrupted_rows(long_files, tmp_path):
    folder, paths, reference = long_files
    first_b, last_b = _block_offsets(reference, paths[1])
    limit = (first_b + last_b) // 2  # the limit falls inside b's rows

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    out = tmp_path / "p.csv"
    command = [sys.executable, "-m", "sertool", "predict", str(folder), "-m", "ravdess", "--segments", "-o", str(out)]
    cut = subprocess.run(command, preexec_fn=limited, capture_output=True, text=True)
    assert cut.returncode == 1 and len(out.read_bytes()) == limit and "Traceback" not in cut.stderr
    assert cut.stderr.startswith(f"Error: {out}: File too large") and cut.stderr.count("\n") == 1
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == reference


def test_a_finished_segments_output_is_resumed_unchanged(long_files, tmp_path):
    folder, _, reference = long_files
    out = tmp_path / "p.csv"
    out.write_bytes(reference)
    _predict(folder, "-m", "ravdess", "--segments", "-o", out)
    assert out.read_bytes() == reference


def test_resume_of_an_output_cut_inside_a_utf8_character(tmp_path):
    columns = header(["a", "b"], False)
    row = ["/x/caf\u00e9.wav", "a", "0.6000", "0.6000", "0.4000", "1.000", "", ""]
    text = "\r\n".join(",".join(r) for r in [columns, row, row[:1]]).encode()
    out = tmp_path / "p.csv"
    out.write_bytes(text[:text.rindex("\u00e9".encode()) + 1])  # the last line ends inside the two bytes of its é
    assert resume(out, columns) == {("", row[0])}
    assert list(csv.reader(open(out, encoding="utf-8"))) == [columns, row]
    out.write_bytes(b"path\xff,predicted\r\n" + text)  # not UTF-8 before its end: not ours, not rewritten
    with pytest.raises(SertoolError, match="not UTF-8"):
        resume(out, columns)
