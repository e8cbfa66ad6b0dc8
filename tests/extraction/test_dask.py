"""extract --scheduler: a local dask.distributed cluster of 2 worker processes computes, the client writes."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.corpora import folder
from sertool.extraction.pipeline import extract_manifest
from sertool.io.manifest import write_manifest
from sertool.io.report import RunReport
from sertool.store.reader import FeatureStore
from tests.conftest import HANG_SECONDS, write_pitch_corpus

distributed = pytest.importorskip("distributed")


#: Dask's own clocks made hang guards: on a loaded machine a worker may take long to start and connect.
PATIENT = {"distributed.comm.timeouts.connect": f"{HANG_SECONDS}s", "distributed.comm.timeouts.tcp": f"{HANG_SECONDS}s"}


@pytest.fixture(scope="module")
def cluster():
    import dask

    with dask.config.set(PATIENT), distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                            dashboard_address=None, silence_logs=40) as local:
        yield local.scheduler_address


def test_a_cluster_writes_the_store_of_a_local_run(cluster, tmp_path, monkeypatch):
    monkeypatch.setattr("sertool.extraction.dask_backend.CONNECT_TIMEOUT", f"{HANG_SECONDS}s")  # a guard, not a bound
    write_pitch_corpus(tmp_path / "audio", speakers=3, clips=4, seconds=0.6, speaker_step=12, clip_step=3)
    rows = folder.prepare(tmp_path / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    manifest = write_manifest(rows, tmp_path / "m.csv")
    local = extract_manifest(manifest, features="mfcc", output=tmp_path / "local")
    remote = extract_manifest(manifest, features="mfcc", output=tmp_path / "dask", scheduler=cluster)
    assert remote.report.ok == local.report.ok == 24
    assert remote.report.failed == local.report.failed == 0
    with FeatureStore(local.store_path) as a, FeatureStore(remote.store_path) as b:
        assert sorted(a.keys()) == sorted(b.keys()) and a.index() == b.index()
        for key in a.keys():
            assert np.array_equal(a[key], b[key]), key
    again = extract_manifest(manifest, features="mfcc", output=tmp_path / "dask", scheduler=cluster)
    assert again.report.ok == 0  # nothing recomputed on a rerun


def test_no_scheduler_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr("sertool.extraction.dask_backend.CONNECT_TIMEOUT", "2s")
    write_pitch_corpus(tmp_path / "audio", speakers=1, clips=1, seconds=0.3, speaker_step=12, clip_step=3)
    rows = folder.prepare(tmp_path / "audio", report=RunReport(), speaker_regex=r"/(spk\d)_")
    manifest = write_manifest(rows, tmp_path / "m.csv")
    result = CliRunner().invoke(cli, ["extract", str(manifest), "--features", "mfcc", "-o", str(tmp_path / "f"),
                                      "--scheduler", "tcp://127.0.0.1:9"])
    assert result.exit_code == 1 and "no Dask scheduler answered" in result.output
    assert "Traceback" not in result.output
