"""Every choice list of the command line is read from the registry or config field that defines it."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from sertool.cli.main import cli
from sertool.cli.options import LazyChoice, ValidSpeakers


def _choice_params(group: click.Group, prefix: str = ""):
    """``("command", param name) -> param`` for every Choice-typed parameter, subcommands included."""
    found = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_choice_params(command, f"{prefix}{name} "))
            continue
        for param in command.params:
            if isinstance(param.type, click.Choice):
                found[(f"{prefix}{name}", param.name)] = param
    return found


def _registries() -> dict[tuple[str, str], tuple[str, ...]]:
    """What each choice option must offer, read from the tables themselves."""
    from sertool.configs import choices
    from sertool.corpora import PREPARERS
    from sertool.features import PRESETS
    from sertool.io.pcm import PCM_FORMATS
    from sertool.models import RECIPES, model_names
    from sertool.training.config import TrainConfig
    from sertool.training.splits import PROTOCOLS

    train_fields = ("norm", "optimizer", "schedule", "loss", "balance", "selection", "precision", "device")
    expected = {
        ("prepare", "corpus"): tuple(sorted(PREPARERS)),
        ("extract", "features"): tuple(sorted(PRESETS)),
        ("extract", "print_config"): tuple(sorted(PRESETS)),
        ("train", "model"): tuple(model_names()),
        ("train", "protocol"): tuple(PROTOCOLS),
        ("train", "recipe"): tuple(RECIPES),
        **{("train", field): choices(TrainConfig, field) for field in train_fields},
        ("evaluate", "selection"): choices(TrainConfig, "selection"),
        ("crosscorpus", "model"): tuple(model_names()),
        ("crosscorpus", "recipe"): tuple(RECIPES),
        **{("crosscorpus", field): choices(TrainConfig, field) for field in train_fields},
    }
    for command in ("evaluate", "predict", "stream"):
        expected[(command, "device")] = choices(TrainConfig, "device")
    for command in ("predict", "stream"):
        expected[(command, "pcm_format")] = tuple(PCM_FORMATS)
    return expected


def test_every_choice_list_equals_its_registry():
    found = _choice_params(cli)
    expected = _registries()
    assert set(found) == set(expected), "a new choice option: add its registry to _registries()"
    for key, param in found.items():
        assert isinstance(param.type, LazyChoice), f"{key}: typed by hand instead of read from its registry"
        assert tuple(param.type.choices) == expected[key], key
        assert all(expected[key]), key


def test_a_value_outside_the_registry_is_a_usage_error_naming_the_choices(tmp_path):
    from click.testing import CliRunner

    result = CliRunner().invoke(cli, ["train", "m.csv", "s.h5", "-o", str(tmp_path), "--optimizer", "lbfgs"])
    assert result.exit_code == 2
    assert "'lbfgs' is not one of 'adamw', 'adam', 'sgd'" in result.output


@pytest.mark.parametrize("command", ["prepare", "extract", "store", "augment", "evaluate", "compare", "fuse",
                                     "export"])
def test_command_help_loads_no_torch(command):
    code = ("import sys; from sertool.cli.main import main\n"
            f"try:\n    main([{command!r}, '--help'])\nexcept SystemExit:\n    pass\n"
            "print('HEAVY', [m for m in ('torch', 'h5py', 'librosa', 'opensmile') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Usage: sertool" in out and "HEAVY []" in out


def test_every_command_module_stays_small():
    from pathlib import Path

    import sertool.cli

    for path in Path(sertool.cli.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 500, path.name


@pytest.mark.parametrize("text,value", [("0", 0), ("2", 2), ("3.0", 3), ("0.2", 0.2)])
def test_valid_speakers_takes_a_count_or_a_share(text, value):
    assert ValidSpeakers().convert(text, None, None) == value
    assert isinstance(ValidSpeakers().convert(text, None, None), type(value))


@pytest.mark.parametrize("text", ["1.5", "-1", "two", "nan"])
def test_valid_speakers_refuses_what_is_neither(text):
    result = CliRunner().invoke(cli, ["train", "m.csv", "--valid-speakers", text, "-o", "run"])
    assert result.exit_code == 2 and "neither a speaker count" in result.output
