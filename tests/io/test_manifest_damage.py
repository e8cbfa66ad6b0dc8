"""Damaged manifests, warnings files and configs: one line ``Error: <file>, line <n>: <what>; <fix>``, never a traceback.

Issue 23 items 3 and 11: an id with a NUL byte made ``extract`` fail with an HDF5 error after creating the
store; a manifest that is not UTF-8 was a UnicodeDecodeError traceback in ``extract`` and ``predict``; a
damaged warnings file was a traceback when a run was resumed. Every case runs the real CLI in a subprocess.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from sertool.errors import ManifestError
from sertool.io.manifest import Utterance, id_problem, read_manifest, read_sources, write_manifest
from tests.conftest import tone

#: name -> (manifest bytes, what the one-line error says). ``a.wav`` / ``b.wav`` exist beside the manifest.
CASES = {
    "nul_in_id": (b"id,path\nx\x00y,a.wav\nb,b.wav\n", "line 2: a NUL byte"),
    "latin1": ("id,path,label\nb,b.wav,col\u00e8re\n".encode("latin1"), "line 2: not UTF-8 text (byte 0xe8)"),
    "utf16": ("id,path\na,a.wav\n".encode("utf-16"), "UTF-16 text, not UTF-8"),
    "unclosed_quote": (b'id,path\na,a.wav\n"b,b.wav\nc,a.wav\n', "line 3: not valid CSV: a quote"),
    "text_after_quote": (b'id,path\n"a"x,a.wav\n', "line 2: not valid CSV: text follows a closing quote"),
    "missing_column": (b"id,label\na,x\n", "missing column(s) path"),
    "column_twice": (b"id,path,label,label\na,a.wav,x,y\n", "'label' appear more than once in the header"),
    "short_row": (b"id,path,label\na,a.wav,x\nb,b.wav\n", "line 3: 2 fields where the header has 3"),
    "long_row": (b"id,path\na,a.wav,x\n", "line 2: 3 fields where the header has 2"),
    "duplicate_id": (b"id,path\na,a.wav\nb,b.wav\na,b.wav\n", "lines 2 and 4: duplicate utterance ids: 'a'"),
    "control_id": (b"id,path\n\x1b[31ma,a.wav\n", r"line 2: invalid ids: '\x1b[31ma' contains the control character"),
    "slash_id": (b"id,path\nspk1/a,a.wav\n", "line 2: invalid ids: 'spk1/a' contains '/'"),
    "empty_id": (b"id,path\na,a.wav\n,b.wav\n", "line 3: invalid ids: '' is empty"),
    "multiline_field": (b'id,path,text\na,a.wav,"two\nlines"\n.,b.wav,x\n', "line 4: invalid ids: '.'"),
    "bad_duration": (b"id,path,duration\na,a.wav,nan\n", "line 2: duration 'nan' is not a number"),
}


def _sertool(*args, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sertool", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


def _assert_one_line_error(result: subprocess.CompletedProcess, name: str, says: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (1, 2), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {name}"), result.stderr
    assert says in lines[0], lines[0]


@pytest.fixture(scope="module")
def manifests(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("manifests")
    for audio in ("a.wav", "b.wav"):
        sf.write(folder / audio, tone(1.0), 16000)
    for name, (data, _) in CASES.items():
        (folder / f"{name}.csv").write_bytes(data)
    return folder


@pytest.mark.parametrize("name", CASES)
def test_a_damaged_manifest_is_one_line_from_the_library(manifests, name):
    for read in (read_manifest, read_sources):
        with pytest.raises(ManifestError) as caught:
            read(manifests / f"{name}.csv")
        assert str(caught.value).startswith(str(manifests / f"{name}.csv")) and CASES[name][1] in str(caught.value)


@pytest.mark.parametrize("name", CASES)
def test_extract_stops_on_a_damaged_manifest_before_any_work(manifests, name):
    out = manifests / f"feats-{name}"
    result = _sertool("extract", f"{name}.csv", "-f", "mfcc", "-o", out, cwd=manifests)
    _assert_one_line_error(result, f"{name}.csv", CASES[name][1])
    assert not out.exists() or not list(out.iterdir()), "extract created files before reading its manifest"


@pytest.mark.parametrize("name", ["nul_in_id", "latin1", "utf16", "unclosed_quote", "duplicate_id", "control_id"])
def test_predict_stops_on_a_damaged_manifest(manifests, name):
    result = _sertool("predict", f"{name}.csv", "-o", f"p-{name}.csv", cwd=manifests)
    _assert_one_line_error(result, f"{name}.csv", CASES[name][1])
    assert not (manifests / f"p-{name}.csv").exists()


def test_ids_that_no_store_can_hold_are_refused_when_written_too(tmp_path):
    for bad in ("x\x00y", "tab\there", "", "..", "a/b", "bell\x07"):
        assert id_problem(bad)
        with pytest.raises(ManifestError, match="invalid ids"):
            write_manifest([Utterance(id=bad, path=Path("x.wav"))], tmp_path / "m.csv")
    assert id_problem("Ses01F_impro01_M000 (take 2).wav") is None and id_problem("col\u00e8re_\u4e2d") is None
    with pytest.raises(ManifestError, match="'a' on rows 1 and 3"):
        write_manifest([Utterance(id=i, path=Path("x.wav")) for i in "aba"], tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_a_manifest_saved_by_a_spreadsheet_still_reads(tmp_path):
    sf.write(tmp_path / "a.wav", tone(1.0), 16000)
    (tmp_path / "m.csv").write_bytes("\ufeffid,path,label,text\r\na,a.wav,calm,\"d\u00e9j\u00e0, \"\"vu\"\"\"\r\n"
                                     .encode("utf-8"))
    (row,) = read_manifest(tmp_path / "m.csv")
    assert row.id == "a" and row.extra == {"text": 'd\u00e9j\u00e0, "vu"'} and row.path == tmp_path / "a.wav"


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """A folder of two clips scored once into ``p.csv``, with its ``p.warnings.csv`` (set normalisation)."""
    folder = tmp_path_factory.mktemp("scored")
    (folder / "clips").mkdir()
    for i, name in enumerate(("a.wav", "b.wav")):
        sf.write(folder / "clips" / name, tone(1.0, freq=200.0 + 40 * i), 16000)
    result = _sertool("predict", "clips", "-o", "p.csv", cwd=folder)
    assert result.returncode == 0 and (folder / "p.warnings.csv").is_file(), result.stderr
    return folder


@pytest.mark.parametrize("damage, says", [
    ("id,path,stage,warning\na,clips/a.wav,decode,trop court \u00e9\n".encode("latin1"), "line 2: not UTF-8 text"),
    (b"id,path,stage,warning\na,clips/a.wav,decode,\x00\x00\n", "line 2: a NUL byte"),
    (b"x,y\n1,2\n", "not a warnings file (no id, path, stage, warning column)"),
    (b'id,path,stage,warning\n"a,clips/a.wav,decode,cut\n', "line 2: not valid CSV: a quote"),
])
def test_a_damaged_warnings_file_is_replaced_on_resume_with_one_warning(scored, damage, says):
    warnings = scored / "p.warnings.csv"
    warnings.write_bytes(damage)
    result = _sertool("predict", "clips", "-o", "p.csv", cwd=scored)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert "0 scored, 2 already in p.csv" in result.stderr
    note = [line for line in result.stderr.splitlines() if "p.warnings.csv" in line and says in line]
    assert len(note) == 1 and "it was replaced by this run's warnings" in note[0], result.stderr
    assert not warnings.exists() or list(csv.DictReader(open(warnings, encoding="utf-8"))) == []


TOML_CASES = [
    pytest.param("not_toml", b"n_mfcc = [\n", "invalid TOML", id="not_toml"),
    pytest.param("latin1", "n_mfcc = 20 # f\u00fcr\n".encode("latin1"), "not UTF-8", id="latin1"),
    pytest.param("wrong_type", b'n_mfcc = "twenty"\n', "n_mfcc", id="wrong_type"),
]


@pytest.mark.parametrize("name, data, says", TOML_CASES)
def test_a_damaged_extract_config_is_one_line_naming_the_file(manifests, name, data, says):
    """``--config`` files are read by sertool/configs.py (another helper's): any failure is reported to the lead."""
    (manifests / f"{name}.toml").write_bytes(data)
    (manifests / "good.csv").write_text("id,path\na,a.wav\n")
    result = _sertool("extract", "good.csv", "-f", "mfcc", "-c", f"{name}.toml", "-o", manifests / "tfeats",
                      cwd=manifests)
    _assert_one_line_error(result, f"{name}.toml", says)
