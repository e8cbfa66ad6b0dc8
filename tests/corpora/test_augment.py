"""sertool augment: measured SNRs, lineage, reproducibility, every augmentation's effect; SpecAugment."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from sertool.corpora import augment as aug
from sertool.cli.main import cli
from sertool.corpora import ravdess
from sertool.training.data import SpecAugment
from sertool.io.manifest import read_manifest, write_manifest
from sertool.io.report import RunReport
from sertool.training.splits import make_folds
from tests.conftest import tone


@pytest.fixture
def real_manifest(tmp_path, ravdess_subset):
    rows = [r for r in ravdess.prepare(ravdess_subset, report=RunReport()) if r.id.endswith(("01-01", "01-02"))]
    return write_manifest(rows[:6] + rows[-6:], tmp_path / "m.csv")


def snr_db(clean, noisy):
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean((noisy - clean).astype(np.float64) ** 2))


def test_white_noise_snr_is_measured_on_the_written_files(real_manifest, tmp_path):
    report = aug.augment_manifest(real_manifest, tmp_path / "aug.csv", tmp_path / "audio",
                                  [(aug.WhiteNoise(10.0), 2), (aug.WhiteNoise(20.0), 1)], seed=3)
    assert report.ok == 12 * 3 and report.failed == 0
    rows = {u.id: u for u in read_manifest(tmp_path / "aug.csv")}
    assert len(rows) == 12 * 4
    for utt in read_manifest(real_manifest):
        clean, _ = sf.read(utt.path, dtype="float64")
        for suffix, target in (("wn10-0", 10), ("wn10-1", 10), ("wn20", 20)):
            copy = rows[f"{utt.id}+{suffix}"]
            noisy, sr = sf.read(copy.path, dtype="float64")
            assert sr == 16000 and noisy.shape == clean.shape
            assert abs(snr_db(clean, noisy) - target) < 0.5
            assert (copy.source_id, copy.speaker, copy.label, copy.gender) == (utt.id, utt.speaker, utt.label, utt.gender)
    a = sf.read(rows[f"{utt.id}+wn10-0"].path)[0]
    b = sf.read(rows[f"{utt.id}+wn10-1"].path)[0]
    assert not np.array_equal(a, b)  # two copies, two noise draws


def test_noise_folder_mixing_snr(real_manifest, tmp_path):
    (tmp_path / "noises").mkdir()
    for i in range(3):  # short noise files at another rate: resampled, looped and cut by NoiseMix
        noise = np.random.default_rng(i).uniform(-0.5, 0.5, 8000 + 3000 * i).astype(np.float32)
        sf.write(tmp_path / "noises" / f"n{i}.wav", noise, 8000)
    aug.augment_manifest(real_manifest, tmp_path / "aug.csv", tmp_path / "audio",
                         [(aug.NoiseMix(str(tmp_path / "noises"), 15.0, 15.0), 1)], seed=1)
    for utt in read_manifest(real_manifest):
        clean, _ = sf.read(utt.path, dtype="float64")
        noisy, _ = sf.read(tmp_path / "audio" / f"{utt.id}+noise.flac", dtype="float64")
        assert abs(snr_db(clean, noisy) - 15) < 0.5


def test_same_seed_same_bytes_other_seed_other_bytes(real_manifest, tmp_path):
    chosen = [(aug.WhiteNoise(15.0), 1), (aug.TimeShift(0.3), 1), (aug.Speed(1.1), 1)]
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        aug.augment_manifest(real_manifest, tmp_path / f"{name}.csv", tmp_path / name, chosen, seed=seed)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == 36
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert (tmp_path / "a" / files[0]).read_bytes() != (tmp_path / "c" / files[0]).read_bytes()


def test_each_augmentation_does_what_it_says(tmp_path):
    rng = np.random.default_rng(0)
    y = tone(2.0, freq=200.0)
    assert aug.Speed(1.25)(y, 16000, rng).shape[0] == pytest.approx(y.shape[0] / 1.25, abs=2)
    shifted = aug.PitchShift(12)(y, 16000, rng)
    assert shifted.shape == y.shape
    peak = lambda s: np.argmax(np.abs(np.fft.rfft(s))) * 16000 / s.shape[0]  # noqa: E731
    assert peak(shifted) == pytest.approx(2 * peak(y), rel=0.05)  # one octave up
    np.testing.assert_allclose(aug.Gain(-6)(y, 16000, rng), y * 10 ** (-6 / 20), rtol=1e-6)
    rolled = aug.TimeShift(0.5)(y, 16000, rng)
    assert sorted(rolled.tolist()) == sorted(y.tolist()) and not np.array_equal(rolled, y)
    rir_dir = tmp_path / "rirs"
    rir = np.zeros(4000, np.float32)
    rir[0], rir[800], rir[2000] = 1.0, 0.5, 0.25
    rir_dir.mkdir()
    sf.write(rir_dir / "room.wav", rir, 16000)
    wet = aug.Reverb(str(rir_dir))(y, 16000, rng)
    assert wet.shape == y.shape and np.sqrt(np.mean(wet ** 2)) == pytest.approx(np.sqrt(np.mean(y ** 2)), rel=1e-3)
    expected = np.convolve(y, rir)[: y.shape[0]]
    np.testing.assert_allclose(wet / np.linalg.norm(wet), expected / np.linalg.norm(expected), atol=1e-5)


def test_lineage_keeps_copies_with_their_source_in_every_split(real_manifest, tmp_path):
    aug.augment_manifest(real_manifest, tmp_path / "aug.csv", tmp_path / "audio", [(aug.Gain(3.0), 1)])
    rows = read_manifest(tmp_path / "aug.csv")
    for f in make_folds(rows, "random", seed=0) + make_folds(rows, "holdout", test_speakers=["Actor_02"],
                                                             valid_speakers=0):
        for u in rows:
            if u.source_id:
                assert (u.id in f.train) == (u.source_id in f.train) and u.id not in f.test


def test_selection_resume_and_cli(real_manifest, tmp_path):
    out = tmp_path / "aug.csv"
    args = ["augment", str(real_manifest), "-o", str(out), "--audio-dir", str(tmp_path / "audio"),
            "--white-noise", "20", "--copies", "2", "--speakers", "Actor_01", "--seed", "4"]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    assert "12 files written" in first.output
    rows = read_manifest(out)
    copies = [u for u in rows if u.source_id]
    assert len(copies) == 12 and {u.speaker for u in copies} == {"Actor_01"}
    second = CliRunner().invoke(cli, args)
    assert "0 files written, 12 already there" in second.output
    again = read_manifest(out)
    assert [u.id for u in again] == [u.id for u in rows]  # rerun gives the same manifest
    nothing = CliRunner().invoke(cli, ["augment", str(real_manifest), "-o", str(out), "--audio-dir", str(tmp_path)])
    assert nothing.exit_code == 1 and "no augmentation chosen" in nothing.output


def test_specaugment_masks_bands_and_frames():
    torch.manual_seed(0)
    x = torch.ones(100, 40)
    masked = SpecAugment(2, 8, 2, 20)(x)
    assert masked.shape == x.shape and torch.equal(x, torch.ones(100, 40))  # input untouched
    bands = (masked == 0).all(dim=0)  # (40,): frequency bands masked over every frame
    frames = (masked == 0).all(dim=1)  # (100,): frames masked over every band
    assert 0 < bands.sum() <= 2 * 8 and 0 < frames.sum() <= 2 * 20  # 2 masks of at most 8 bands, 2 of 20 frames
    # nothing else changed: zeros exactly on the masked bands and frames, ones elsewhere
    assert torch.equal(masked, (~(bands[None, :] | frames[:, None])).float())
