"""predict: one writer per output file, and resume drops duplicated rows."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.io.locks import OutputLock

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_a_second_predict_into_the_same_file_is_refused(tmp_path):
    out = tmp_path / "p.csv"
    with OutputLock(out, "held by the test"):
        result = CliRunner().invoke(cli, ["predict", str(EXAMPLES), "-o", str(out)])
    assert result.exit_code == 1 and "another sertool predict is writing" in result.output
    assert not out.exists() or out.read_text() == ""  # nothing written by the refused run
    assert CliRunner().invoke(cli, ["predict", str(EXAMPLES), "-o", str(out)]).exit_code == 0  # lock released


def test_resume_drops_duplicated_rows(tmp_path):
    out = tmp_path / "p.csv"
    assert CliRunner().invoke(cli, ["predict", str(EXAMPLES), "-o", str(out)]).exit_code == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines + lines[1:4]) + "\n")  # three rows written twice, as two racing runs did
    result = CliRunner().invoke(cli, ["predict", str(EXAMPLES), "-o", str(out)])
    assert result.exit_code == 0 and "0 scored, 6 already" in result.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 6 and len({r["path"] for r in rows}) == 6


def test_malformed_manifests_are_one_line_errors_naming_the_line(tmp_path):
    import pytest

    from sertool.errors import ManifestError
    from sertool.io.manifest import read_manifest

    cases = {"short": "id,path,label\na,x.wav\n", "wide": "id,path\na,x.wav,extra\n",
             "huge": "id,path\nb," + "x" * 200_000 + "\n", "dot": "id,path\n.,x.wav\n", "dotdot": "id,path\n..,x.wav\n"}
    messages = {"short": "line 2: 2 fields where the header has 3", "wide": "line 2: 3 fields",
                "huge": "line 2: not valid CSV", "dot": "invalid ids", "dotdot": "invalid ids"}
    for name, text in cases.items():
        (tmp_path / f"{name}.csv").write_text(text)
        with pytest.raises(ManifestError, match=messages[name]):
            read_manifest(tmp_path / f"{name}.csv")
        result = CliRunner().invoke(cli, ["extract", str(tmp_path / f"{name}.csv"), "-f", "mfcc", "-o",
                                          str(tmp_path / "feats")])
        assert result.exit_code == 1 and result.output.count("\n") == 1 and f"{name}.csv" in result.output


def test_output_errors_are_one_line_errors(tmp_path):
    (tmp_path / "out.csv").mkdir()
    result = CliRunner().invoke(cli, ["predict", str(EXAMPLES), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 1 and "Is a directory" in result.output and "Traceback" not in result.output


def test_checkpoint_with_mismatched_normalisation_is_refused(tmp_path):
    import pytest
    import torch

    from sertool.models.checkpoint import Checkpoint, CheckpointError
    from sertool.inference.predict import default_checkpoint

    ckpt = Checkpoint.load(default_checkpoint())
    ckpt.norm_mean = torch.zeros(39)
    ckpt.save(tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="norm_mean and norm_std"):
        Checkpoint.load(tmp_path / "bad.pt")


def test_manifest_with_a_byte_order_mark_is_read(tmp_path):
    from sertool.io.manifest import read_manifest

    (tmp_path / "m.csv").write_text("id,path,label\na,x.wav,calm\n", encoding="utf-8-sig")
    assert [(u.id, u.label) for u in read_manifest(tmp_path / "m.csv")] == [("a", "calm")]


def test_store_describe_cli_usage_and_closed_pipes(tmp_path):
    import subprocess
    import sys

    store = [sys.executable, "-m", "sertool", "store", "describe"]
    usage = subprocess.run(store, capture_output=True, text=True)
    assert usage.returncode == 2 and "Usage" in usage.stderr
    assert subprocess.run(store + ["--help"], capture_output=True).returncode == 0
    missing = subprocess.run(store + [str(tmp_path / "no.h5")], capture_output=True, text=True)
    assert missing.returncode in (1, 2) and "no.h5" in missing.stderr and "Traceback" not in missing.stderr
    piped = subprocess.run(f"{sys.executable} -m sertool predict {EXAMPLES} -o - | head -1", shell=True,
                           capture_output=True, text=True, executable="/bin/bash")
    assert piped.stdout.startswith("path,") and "Traceback" not in piped.stderr and "Error" not in piped.stderr


def test_symlinks_are_followed_and_broken_ones_reported(tmp_path):
    import os

    from sertool.corpora import folder
    from sertool.io.report import RunReport
    from tests.conftest import write_audio

    root = tmp_path / "c" / "calm"
    good = write_audio(root / "good.wav", seconds=0.5)
    os.symlink(good, root / "link.wav")
    os.symlink(tmp_path / "gone.wav", root / "dangling.wav")
    os.symlink(root / "loop2.wav", root / "loop1.wav")
    os.symlink(root / "loop1.wav", root / "loop2.wav")
    os.symlink(tmp_path / "c", root / "back")  # a folder loop: walked once, never forever
    report = RunReport()
    rows = folder.prepare(tmp_path / "c", report=report)
    assert sorted(r.id for r in rows) == ["calm__good.wav", "calm__link.wav"]
    errors = {Path(f.path).name: f.error for f in report.failures}
    assert set(errors) == {"dangling.wav", "loop1.wav", "loop2.wav"}
    assert "broken symbolic link" in errors["dangling.wav"] and "symbolic link" in errors["loop1.wav"]
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(cli, ["predict", str(tmp_path / "c"), "-o", str(out), "--max-failures", "3"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 5 and sum(1 for r in rows if r["error"]) == 3


def test_an_extraction_where_every_file_fails_leaves_no_debris(tmp_path):
    from sertool.io.manifest import Utterance, write_manifest

    for k in range(3):
        (tmp_path / f"t{k}.wav").write_text("not audio")
    manifest = write_manifest([Utterance(id=f"t{k}", path=tmp_path / f"t{k}.wav") for k in range(3)],
                              tmp_path / "m.csv")
    result = CliRunner().invoke(cli, ["extract", str(manifest), "-f", "mfcc", "-o", str(tmp_path / "feats")])
    assert result.exit_code == 3 and "no store written" in result.output
    left = sorted(p.name for p in (tmp_path / "feats").iterdir())
    assert left == ["m.mfcc-57afd75a.failures.csv"], left
