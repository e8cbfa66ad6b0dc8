"""The command line: help, exit codes, error messages, prepare and extract end to end."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.store.reader import FeatureStore
from tests.conftest import EMODB, HANG_SECONDS, RAVDESS, needs_emodb, needs_ravdess, stored_entries, wait_for


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_help_lists_every_command_without_heavy_imports():
    code = ("import sys; from sertool.cli.main import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('numpy', 'torch', 'h5py', 'librosa', 'opensmile') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for command in ("prepare", "extract", "augment", "train", "evaluate", "predict"):
        assert command in out
    assert "HEAVY []" in out


def test_python_dash_m_works():
    out = subprocess.run([sys.executable, "-m", "sertool", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("sertool, version")


def test_library_errors_are_one_line_and_exit_1(tmp_path):
    result = CliRunner().invoke(cli, ["prepare", "ravdess", str(tmp_path), "-o", str(tmp_path / "m.csv")])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    debug = CliRunner().invoke(cli, ["--debug", "prepare", "ravdess", str(tmp_path), "-o", str(tmp_path / "m.csv")])
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "CorpusError"


def test_usage_errors_exit_2(tmp_path):
    assert CliRunner().invoke(cli, ["prepare", "timit", str(tmp_path), "-o", "m.csv"]).exit_code == 2
    assert CliRunner().invoke(cli, ["extract", "m.csv"]).exit_code == 2
    result = CliRunner().invoke(cli, ["prepare", "ravdess", str(tmp_path), "-o", "m.csv", "--label-set", "6"])
    assert result.exit_code == 2 and "--label-set do(es) not apply to corpus 'ravdess'" in result.output


def test_print_config_round_trips_through_config(tmp_path):
    printed = run("extract", "--print-config", "lightsernet_mfcc").output
    assert "n_mfcc = 40" in printed and "win_ms = 64.0" in printed and 'type = "mfcc"' in printed
    config = tmp_path / "light.toml"
    config.write_text(printed.replace("n_mfcc = 40", "n_mfcc = 20"))
    again = run("extract", "--print-config", "lightsernet_mfcc", "--config", config, "--hop-ms", "10")
    assert "n_mfcc = 20" in again.output and "hop_ms = 10.0" in again.output
    assert "lightsernet_mfcc" in run("extract", "--list-features").output


def test_prepare_and_extract_with_a_broken_file(tmp_path, tiny_corpus):
    (tiny_corpus / "calm" / "broken.wav").write_text("text renamed to wav")
    manifest = tmp_path / "m.csv"
    prep = CliRunner().invoke(cli, ["prepare", "folder", str(tiny_corpus), "-o", str(manifest)])
    assert prep.exit_code == 3  # one unreadable file, --max-failures 0
    assert "broken.wav" in (tmp_path / "m.failures.csv").read_text()
    rows = list(csv.DictReader(open(manifest)))
    assert len(rows) == 6 and rows[0].keys() >= {"id", "path", "label", "speaker", "gender", "session",
                                                 "duration", "corpus", "source_id"}
    result = CliRunner().invoke(cli, ["extract", str(manifest), "-f", "logmel", "-o", str(tmp_path / "feats"),
                                      "--n-mels", "40", "--set", "fmax=7000"])
    assert result.exit_code == 0, result.output
    store_path = result.stdout.strip()
    with FeatureStore(store_path) as store:
        assert len(store) == 6 and store.dim == 40 and store.attrs["config"]["fmax"] == 7000.0


@needs_ravdess
def test_prepare_ravdess_acceptance(tmp_path):
    result = CliRunner().invoke(cli, ["prepare", "ravdess", str(RAVDESS), "-o", str(tmp_path / "m.csv")])
    assert result.exit_code == 0
    assert "960 utterances, 16 speakers, 8 labels" in result.output
    assert "neutral 64" in result.output and "surprised 128" in result.output


@needs_emodb
def test_prepare_emodb_acceptance(tmp_path):
    result = CliRunner().invoke(cli, ["prepare", "emodb", str(EMODB), "-o", str(tmp_path / "e.csv")])
    assert result.exit_code == 0 and "535 utterances, 10 speakers, 7 labels" in result.output


@pytest.mark.slow
@needs_ravdess
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_sigterm_during_extract_keeps_finished_work(tmp_path, jobs):
    manifest = tmp_path / "r.csv"
    subprocess.run([sys.executable, "-m", "sertool", "prepare", "ravdess", str(RAVDESS), "-o", str(manifest)],
                   check=True, capture_output=True)
    out = tmp_path / "feats"
    cmd = [sys.executable, "-m", "sertool", "extract", str(manifest), "-f", "logmel", "-o", str(out), "-j", jobs]
    # no checkpoint before the signal, however slow the machine: only the handler can save the entries
    proc = subprocess.Popen([*cmd, "--checkpoint-every", "86400"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def written() -> int:  # bytes in the writer's private copy: grows as entries are added
        return sum(p.stat().st_size for p in out.glob(".*.h5.tmp")) if out.exists() else 0

    assert wait_for(lambda: written() >= 2_000_000, proc, what="2 MB of features"), proc.communicate()[1].decode()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=HANG_SECONDS) == 128 + signal.SIGTERM, proc.stderr.read().decode()
    assert "Terminated: finished work is saved" in proc.stderr.read().decode()
    with FeatureStore(next(out.glob("*.h5"))) as store:
        kept = len(store)
    assert 0 < kept < 960
    result = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert f"{960 - kept} extracted, {kept} up to date" in result.stderr


@pytest.mark.slow
@needs_ravdess
@pytest.mark.parametrize("signum,jobs", [(signal.SIGINT, "1"), (signal.SIGINT, "2"), (signal.SIGTERM, "2")])
def test_signals_stop_opensmile_extraction_at_once(tmp_path, signum, jobs):
    """openSMILE calls back into Python through ctypes, where a raised KeyboardInterrupt used to be ignored."""
    manifest = tmp_path / "r.csv"
    subprocess.run([sys.executable, "-m", "sertool", "prepare", "ravdess", str(RAVDESS), "-o", str(manifest)],
                   check=True, capture_output=True)
    out = tmp_path / "feats"
    cmd = [sys.executable, "-m", "sertool", "extract", str(manifest), "-f", "gemaps_functionals", "-o", str(out),
           "-j", jobs, "--no-progress", "--checkpoint-every", "0.05"]  # checkpoints show the work as it goes
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # the signal comes once work is stored, with almost all of the 960 files still to do
    assert wait_for(lambda: (stored_entries(out) or 0) > 0, proc, what="a stored entry"), \
        proc.communicate()[1].decode()
    proc.send_signal(signum)
    code = proc.wait(timeout=HANG_SECONDS)  # only a hang guard: a run that ignored the signal ends at 960 files
    stderr = proc.stderr.read().decode()
    assert code == 128 + signum, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr
    assert stderr.strip().splitlines()[-1].endswith("rerun the same command to continue.")
    with FeatureStore(next(out.glob("*.h5"))) as store:
        assert 0 < len(store) < 960  # stopped before the input ended


@pytest.mark.parametrize("args,expected", [
    (["extract", "m.csv", "-f", "mfcc", "-o", "feats"], ("m.csv", "mfcc", "feats")),
    (["extract", "--features=logmel", "m.csv", "--output", "out", "-j", "2", "--no-progress"],
     ("m.csv", "logmel", "out")),
    (["extract", "m.csv", "-f", "mfcc"], None),                          # no output folder
    (["extract", "m.csv", "-f", "mfcc", "-o", "feats", "--set", "n_mfcc=13"], None),  # overrides: full CLI
    (["extract", "m.csv", "-f", "mfcc", "-o", "feats", "--overwrite"], None),
    (["extract", "m.csv", "-f", "mfcc", "-o", "feats", "-j", "0"], None),  # the full CLI reports the usage error
    (["extract", "m.csv", "other.csv", "-f", "mfcc", "-o", "feats"], None),
    (["train", "m.csv", "-f", "mfcc", "-o", "feats"], None),
    (["extract", "m.csv", "-f"], None),
])
def test_only_plain_extract_lines_skip_the_full_cli(args, expected):
    from sertool.cli.entry import plain_extract

    assert plain_extract(args) == expected


def test_the_up_to_date_answer_matches_the_full_cli(tmp_path, tiny_corpus):
    manifest, out = tmp_path / "m.csv", tmp_path / "feats"
    assert run("prepare", "folder", tiny_corpus, "-o", manifest).exit_code == 0
    sertool = [sys.executable, "-m", "sertool"]
    first = subprocess.run([*sertool, "extract", manifest, "-f", "mfcc", "-o", out], capture_output=True, text=True)
    fast = subprocess.run([*sertool, "extract", manifest, "-f", "mfcc", "-o", out], capture_output=True, text=True)
    full = run("extract", manifest, "-f", "mfcc", "-o", out)  # the click command itself
    assert first.returncode == fast.returncode == full.exit_code == 0
    assert "6 extracted" in first.stderr and fast.stdout == first.stdout
    without_time = lambda text: text.rsplit("(", 1)[0]  # noqa: E731
    assert without_time(fast.stderr) == without_time(full.stderr) == without_time(
        f"extract mfcc: 0 extracted, 6 up to date, 0 failed -> {first.stdout.strip()} (")
    clip = next(tiny_corpus.rglob("*.wav"))
    clip.write_bytes(clip.read_bytes())  # new mtime: the store is no longer current
    again = subprocess.run([*sertool, "extract", manifest, "-f", "mfcc", "-o", out], capture_output=True, text=True)
    assert again.returncode == 0 and "1 extracted, 5 up to date" in again.stderr
