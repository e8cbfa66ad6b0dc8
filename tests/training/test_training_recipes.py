"""Training recipes and learning-rate schedules; mixup, balanced sampling and the checkpoint selections."""

from __future__ import annotations

import math

import pytest
import torch
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.errors import ConfigError
from sertool.models.checkpoint import Checkpoint
from sertool.scoring.evaluate import evaluate_run
from sertool.training.trainer import TrainConfig, build_train_config, train_run
from tests.conftest import assert_evaluation_consistent

#: Just short of the end of a run: the schedules' final learning rates.
END = 1 - 1e-7


def test_recipes_pick_their_settings_and_options_beat_them():
    paper = build_train_config(model="light_sernet", recipe="paper")
    assert (paper.lr, paper.schedule, paper.epochs, paper.specaugment) == (1e-4, "step", 300, False)
    assert paper.lr_at(49) == 1e-4 and math.isclose(paper.lr_at(50), 1e-4 * math.exp(-0.15))
    default = build_train_config(model="light_sernet")
    assert (default.epochs, default.lr, default.schedule, default.specaugment, default.norm) == \
        (40, 2e-3, "onecycle", True, "speaker")
    assert build_train_config({"lr": 0.5}, model="light_sernet").lr == 0.5  # options beat the recipe
    with pytest.raises(ConfigError, match="schedule 'weird' must be one of onecycle, cosine, step, constant"):
        TrainConfig(schedule="weird")
    result = CliRunner().invoke(cli, ["train", "--print-config", "-m", "light_sernet", "--recipe", "paper"])
    assert result.exit_code == 0 and 'schedule = "step"' in result.output and "lightsernet_mfcc" in result.output


def test_onecycle_rises_from_lr_over_25_to_lr_then_decays_to_lr_over_1e4():
    one = TrainConfig(epochs=10, lr=1.0, schedule="onecycle")
    assert math.isclose(one.lr_at(1), 1 / 25) and math.isclose(one.lr_at(4), 1.0)  # the peak at 30 % of the run
    assert one.lr_at(6) < one.lr_at(5) < one.lr_at(4)
    assert one.lr_at(10, END) == pytest.approx(1e-4, rel=1e-6)


def test_cosine_warms_up_linearly_then_decays_to_zero():
    cosine = TrainConfig(epochs=10, lr=1.0, schedule="cosine", warmup_epochs=2)
    assert [cosine.lr_at(k) for k in (1, 2, 3)] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert cosine.lr_at(4) < cosine.lr_at(3)
    assert cosine.lr_at(10, END) == pytest.approx(0.0, abs=1e-9)


def test_mixup_balanced_sampling_and_checkpoint_selections(pitch_corpus, tmp_path):
    config = TrainConfig(epochs=3, batch_size=8, lr=3e-3, mixup=0.4, balance="sampler", label_smoothing=0.1,
                         selection="average", average_last=2, norm="global")
    train_run(pitch_corpus.manifest, pitch_corpus.frames, model="light_sernet", output=tmp_path / "r",
              protocol="loso", fold=0, valid_speakers=1, train_config=config)
    fold = tmp_path / "r" / "fold-0"
    names = {p.name for p in fold.glob("checkpoint*.pt")}
    assert names == {"checkpoint.pt", "checkpoint-best.pt", "checkpoint-last.pt", "checkpoint-average.pt"}
    chosen, average, last = (Checkpoint.load(fold / n) for n in ("checkpoint.pt", "checkpoint-average.pt",
                                                                  "checkpoint-last.pt"))
    assert chosen.metrics["selection"] == "average"
    key = next(k for k, v in last.state_dict.items() if v.is_floating_point() and "weight" in k)
    assert torch.equal(chosen.state_dict[key], average.state_dict[key])
    assert not torch.equal(average.state_dict[key], last.state_dict[key])
    for selection in ("best", "average", "last"):
        assert_evaluation_consistent(tmp_path / "r", evaluate_run(tmp_path / "r", selection=selection))
