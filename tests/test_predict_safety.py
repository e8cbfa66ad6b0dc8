"""predict: one writer per output file, and resume drops duplicated rows."""

from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from sertool.cli import cli
from sertool.locks import OutputLock

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


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
