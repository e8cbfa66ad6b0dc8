"""``sertool prepare``: its help lists every registered corpus, and the report's warnings reach stderr and a file."""

from __future__ import annotations

import csv
import re

from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.corpora import PREPARERS


def _squeezed(text: str) -> str:
    """``text`` without whitespace, so a layout wrapped over several help lines still matches."""
    return re.sub(r"\s+", "", text)


def _help_section(help_text: str, heading: str) -> list[str]:
    """The lines of one help section (after ``heading``, up to the next blank line)."""
    lines = help_text.splitlines()
    start = lines.index(heading) + 1
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


def test_help_lists_every_registered_corpus_with_its_layout():
    result = CliRunner().invoke(cli, ["prepare", "--help"], prog_name="sertool")
    assert result.exit_code == 0
    assert result.output.startswith("Usage: sertool prepare [OPTIONS] CORPUS DIR")
    section = _help_section(result.output, "CORPUS layouts (under DIR):")
    listed = [line.split()[0] for line in section if line.startswith("  ") and not line.startswith("   ")]
    assert listed == list(PREPARERS), "the layouts must come from the registry, in its order"
    squeezed = _squeezed("\n".join(section))
    for name, corpus in PREPARERS.items():
        assert _squeezed(name + corpus.expected) in squeezed, name


def test_warnings_go_to_stderr_and_a_warnings_file(tmp_path):
    tree = PREPARERS["ased"].fake_tree(tmp_path / "ased")  # speaker 02 has one file with the female code
    manifest = tmp_path / "ased.csv"
    result = CliRunner().invoke(cli, ["prepare", "ased", str(tree), "-o", str(manifest)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    stderr = result.stderr.splitlines()
    assert re.fullmatch(r"prepare ased: 20 utterances, 2 speakers, 5 labels -> .*ased\.csv \(\d+\.\d s\)", stderr[0])
    assert [line for line in stderr if line.startswith("  warning: ")] == [
        "  warning: ASED speaker 02's files carry gender codes 01 (1 file) and 02 (9 files); gender set to m by the "
        "majority"]
    assert stderr[-1] == f"  1 warning(s) (all shown, listed in {tmp_path / 'ased.warnings.csv'})"
    with open(tmp_path / "ased.warnings.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [row["id"] for row in rows] == ["speaker 02"]


def test_a_clean_rerun_removes_the_stale_warnings_file(tmp_path):
    tree = PREPARERS["ased"].fake_tree(tmp_path / "ased")
    manifest = tmp_path / "ased.csv"
    assert CliRunner().invoke(cli, ["prepare", "ased", str(tree), "-o", str(manifest)]).exit_code == 0
    assert (tmp_path / "ased.warnings.csv").exists()
    (tree / "01Neutral" / "n1-01-02-01-02.wav").unlink()  # the outvoted female code of speaker 02
    result = CliRunner().invoke(cli, ["prepare", "ased", str(tree), "-o", str(manifest)])
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert not (tmp_path / "ased.warnings.csv").exists()
