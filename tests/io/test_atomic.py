"""Atomic writes: exclusive, unpredictable temporary files; planted symlinks are never written through."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sertool.io.atomic import atomic_write, create_exclusive
from tests.conftest import REPO

EXAMPLES = REPO / "examples" / "ravdess"


def _plant(link, victim):
    victim.write_text("precious\n")
    os.symlink(victim, link)


def test_prepare_never_writes_through_a_symlink_at_the_old_temporary_names(tmp_path):
    out, victim = tmp_path / "out", tmp_path / "victim.txt"
    out.mkdir()
    _plant(out / "m.csv.tmp", victim)  # the name sertool used before
    os.symlink(victim, out / ".m.csv.tmp")
    done = subprocess.run([sys.executable, "-m", "sertool", "prepare", "ravdess", str(EXAMPLES), "-o",
                           str(out / "m.csv")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert victim.read_text() == "precious\n"
    assert not (out / "m.csv").is_symlink() and (out / "m.csv").read_text().startswith("id,")


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    _plant(tmp_path / "m.csv", victim)
    with atomic_write(tmp_path / "m.csv") as fh:
        fh.write("new\n")
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "m.csv").is_symlink() and (tmp_path / "m.csv").read_text() == "new\n"


def test_temporary_files_are_unpredictable_and_follow_the_umask(tmp_path):
    names = set()
    for _ in range(2):
        with atomic_write(tmp_path / "m.csv") as fh:
            names.add(os.path.basename(fh.name))
            mode = os.stat(fh.name).st_mode & 0o777
    assert len(names) == 2 and all(n.startswith(f".m.csv.{os.getpid()}-") and n.endswith(".tmp") for n in names)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.csv"]


def test_a_dead_writers_temporary_file_is_removed_and_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".m.csv.{int(dead.stdout)}-abcdef012345.tmp"
    live = tmp_path / f".m.csv.{os.getppid()}-abcdef012345.tmp"
    stale.write_text("half")
    live.write_text("half")
    with atomic_write(tmp_path / "m.csv") as fh:
        fh.write("x\n")
    assert not stale.exists() and live.exists()


def test_create_exclusive_refuses_anything_already_there(tmp_path):
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(FileExistsError):
        create_exclusive(tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()


def test_extract_never_writes_through_a_symlink_at_the_stores_private_copy(tmp_path):
    manifest = tmp_path / "m.csv"
    subprocess.run([sys.executable, "-m", "sertool", "prepare", "ravdess", str(EXAMPLES), "-o", str(manifest)],
                   check=True, capture_output=True)
    first = subprocess.run([sys.executable, "-m", "sertool", "extract", str(manifest), "-f", "mfcc_stats", "-o",
                            str(tmp_path / "feats")], check=True, capture_output=True, text=True)
    store = tmp_path / "feats" / os.path.basename(first.stdout.strip().splitlines()[-1])
    victim = tmp_path / "victim.txt"
    _plant(store.with_name(f".{store.name}.tmp"), victim)
    again = subprocess.run([sys.executable, "-m", "sertool", "extract", str(manifest), "-f", "mfcc_stats", "-o",
                            str(tmp_path / "feats"), "--overwrite"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert victim.read_text() == "precious\n" and not store.is_symlink()
