"""scoring/timeline.py and ``sertool timeline``: a ``predict --segments`` CSV as a picture over time."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from PIL import Image

from sertool.cli.main import cli
from sertool.errors import ConfigError, SertoolError
from sertool.scoring.timeline import MAX_FILES, read_segments, timeline
from tests.conftest import tone

SR = 16000


@pytest.fixture(scope="module")
def segments(tmp_path_factory):
    """``predict --segments`` of the bundled model on two files: one with 2 s of silence in the middle."""
    root = tmp_path_factory.mktemp("timeline")
    silence = np.zeros(2 * SR, np.float32)
    sf.write(root / "talk.wav",
             np.concatenate([tone(3.0, freq=180), silence, tone(3.0, freq=260, seed=1)]), SR)
    sf.write(root / "short.wav", tone(3.0, freq=220, seed=2), SR)
    output = root / "seg.csv"
    result = CliRunner().invoke(cli, ["predict", "--segments", "--window", "1", "--hop", "0.5", "--no-progress",
                                      str(root / "talk.wav"), str(root / "short.wav"), "-o", str(output)])
    assert result.exit_code == 0, result.output
    return output


def _rows(path):
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames), list(reader)


def _write(path, columns, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_predict_segments_columns_are_read(segments):
    columns, rows = _rows(segments)
    read = read_segments(segments)
    assert read.classes == [c[2:] for c in columns if c.startswith("p_")] and read.targets == []
    talk = read.tracks[rows[0]["path"]]
    assert len(talk.start) == sum(r["path"] == rows[0]["path"] for r in rows)
    assert np.allclose(talk.probs.sum(axis=1), 1, atol=1e-3) and talk.end.max() == pytest.approx(8.0)


def test_one_panel_per_file_with_flagged_windows_hatched(segments, tmp_path):
    result = CliRunner().invoke(cli, ["timeline", str(segments), "-o", str(tmp_path / "t.png")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "t.png")
    image = Image.open(tmp_path / "t.png")
    grey = np.asarray(image.convert("L"))
    assert image.format == "PNG" and grey.std() > 20
    read = read_segments(segments)
    talk = next(t for p, t in read.tracks.items() if p.endswith("talk.wav"))
    from sertool.scoring.timeline import _intervals

    flagged = _intervals(talk)
    assert flagged, "the silent middle of talk.wav is flagged"
    # every flagged stretch covers part of the silence (3 s - 5 s), with the flag names of its windows
    assert all(lo < 5.0 and hi > 3.0 for lo, hi, _ in flagged)
    assert any("no_speech" in names for _, _, names in flagged)
    single = timeline(segments, tmp_path / "one.png", file="short.wav")
    assert single.files == [p for p in read.tracks if p.endswith("short.wav")] and single.left_out == 0
    assert Image.open(tmp_path / "one.png").size[1] < image.size[1]  # one panel, not two


def test_regression_columns_get_line_panels(segments, tmp_path):
    columns, rows = _rows(segments)
    for k, r in enumerate(rows):
        r["pred_arousal"] = f"{0.1 * (k % 7):.3f}"
        r["pred_valence"] = f"{-0.05 * (k % 5):.3f}"
    both = _write(tmp_path / "reg.csv", columns + ["pred_arousal", "pred_valence"], rows)
    result = timeline(both, tmp_path / "reg.png")
    assert result.targets == ["pred_arousal", "pred_valence"] and result.classes
    assert Image.open(tmp_path / "reg.png").size[1] > Image.open(timeline(segments, tmp_path / "p.png").output).size[1]
    only = _write(tmp_path / "only.csv", [c for c in columns if not c.startswith("p_")] + ["pred_arousal"],
                  [{k: v for k, v in r.items() if not k.startswith("p_") and k != "pred_valence"} for r in rows])
    result = timeline(only, tmp_path / "only.svg")
    assert result.classes == [] and result.targets == ["pred_arousal"]
    assert (tmp_path / "only.svg").read_text().lstrip().startswith("<?xml")


def test_more_files_than_the_cap_are_left_out_and_said(segments, tmp_path):
    columns, rows = _rows(segments)
    first = rows[0]["path"]
    many = [{**r, "path": f"/rec/{n:02d}.wav"} for n in range(MAX_FILES + 2) for r in rows if r["path"] == first]
    path = _write(tmp_path / "many.csv", columns, many)
    result = CliRunner().invoke(cli, ["timeline", str(path), "-o", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert f"timeline: {MAX_FILES + 2} files in {path}; drew the first {MAX_FILES} (pick another with --file PATH)" \
        in result.stderr
    picked = timeline(path, tmp_path / "13.png", file="13.wav")
    assert picked.files == ["/rec/13.wav"] and picked.total == MAX_FILES + 2


def test_bad_inputs_are_one_line_errors(segments, tmp_path):
    columns, rows = _rows(segments)
    run = CliRunner()

    def error(*args) -> str:
        result = run.invoke(cli, ["timeline", *map(str, args)])
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        return result.output

    per_file = _write(tmp_path / "files.csv", [c for c in columns if c not in ("start", "end")],
                      [{k: v for k, v in r.items() if k not in ("start", "end")} for r in rows])
    assert "no start/end column(s); it has one row per file: score again with `sertool predict --segments`" \
        in error(per_file, "-o", tmp_path / "x.png")
    damaged = _write(tmp_path / "damaged.csv", columns, [rows[0], {**rows[1], columns[5]: "0.4x"}])
    message = error(damaged, "-o", tmp_path / "x.png")
    assert f"damaged.csv line 3: column '{columns[5]}' is '0.4x', not a number" in message
    failed = _write(tmp_path / "failed.csv", columns, [{"path": "/a.wav", "error": "decode: not audio"}])
    assert "no scored window to draw (decode: not audio)" in error(failed, "-o", tmp_path / "x.png")
    failed_values = _write(tmp_path / "failed_values.csv", ["path", "start", "end", "pred_level", "duration", "flags",
                                                            "error"], [{"path": "/a.wav", "error": "too few files"}])
    assert "no scored window to draw (too few files)" in error(failed_values, "-o", tmp_path / "x.png")
    (tmp_path / "empty.csv").write_text("")
    assert "empty.csv: empty" in error(tmp_path / "empty.csv", "-o", tmp_path / "x.png")
    assert "no rows of that file; its 2 file(s):" in error(segments, "-o", tmp_path / "x.png", "--file", "nope.wav")
    assert "the picture must end in .png, .svg, .pdf" in error(segments, "-o", tmp_path / "x.jpg")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.jpg").exists()
    with pytest.raises(ConfigError):
        timeline(segments, tmp_path / "x.gif")
    with pytest.raises(SertoolError, match="no such file"):
        timeline(tmp_path / "missing.csv", tmp_path / "x.png")
