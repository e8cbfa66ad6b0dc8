"""The README's Python tour runs as written (blocks between the python-tour markers, in order, in a fresh folder)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import RAVDESS

ROOT = Path(__file__).resolve().parents[1]


def tour_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    tour = text.split("<!-- python-tour:start -->")[1].split("<!-- python-tour:end -->")[0]
    return re.findall(r"```python\n(.*?)```", tour, flags=re.S)


def test_the_tour_has_blocks():
    assert len(tour_blocks()) >= 2


@pytest.mark.slow
def test_python_tour_runs(tmp_path, capsys):
    """Block 1 needs only examples/; block 2 the shared RAVDESS copy (skipped without it)."""
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples", work / "examples")
    (tmp_path / "shared").mkdir()
    if RAVDESS.is_dir():
        os.symlink(RAVDESS.parent, tmp_path / "shared" / "data")  # the tour reads ../shared/data
    cwd = os.getcwd()
    os.chdir(work)
    try:
        for k, block in enumerate(tour_blocks()):
            if "../shared/data" in block and not RAVDESS.is_dir():
                pytest.skip("../shared/data/ravdess not available for the second tour block")
            exec(compile(block, f"README.md python-tour block {k + 1}", "exec"), {"__name__": "__tour__"})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert "(6, 9)" in out and "['angry']" in out and "6 0" in out
    if RAVDESS.is_dir():
        assert "frame-level" in out or "utterance" in out  # the ConfigError's message was printed


def layout_section() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("<!-- layout:start -->")[1].split("<!-- layout:end -->")[0]


def test_the_layout_section_names_every_module_and_only_real_ones():
    named = set(re.findall(r"`(sertool/[\w/]+\.py)`", layout_section()))
    actual = {str(p.relative_to(ROOT)) for p in (ROOT / "sertool").rglob("*.py")}
    assert sorted(actual - named) == [], "modules missing from the README's layout section"
    assert sorted(named - actual) == [], "the README's layout section names modules that do not exist"


def test_the_layout_section_states_the_layers_the_layering_test_enforces():
    from tests.test_layering import LAYERS

    section = layout_section()
    for name, layer in LAYERS.items():
        if name not in ("sertool", "__main__"):
            assert re.search(rf"layer {layer}\b[^\n]*`{re.escape(name)}", section), (name, layer)
