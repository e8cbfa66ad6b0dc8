"""Option helpers shared by the commands: choice lists read from the registries, config overrides, raw PCM.

Every choice list comes from the table that defines it (a registry, or a
config field's ``metadata["choices"]``), read by :class:`LazyChoice` only
when an option is parsed or its help is shown: ``sertool --help`` imports
neither numpy nor torch.
"""

from __future__ import annotations

from typing import Callable, Iterable

import click

from sertool import api
from sertool.configs import choices, parse_assignments
from sertool.errors import ConfigError
from sertool.models import RECIPES
from sertool.training.splits import PROTOCOLS, valid_amount

MAX_FAILURES_HELP = "Failed files tolerated before the exit code becomes 3."


class LazyChoice(click.Choice):
    """A Choice whose values come from ``values()``, called only when the option is parsed or shown."""

    def __init__(self, values: Callable[[], Iterable[str]]):
        self._values = values
        super().__init__([])

    @property
    def choices(self):
        return tuple(self._values())

    @choices.setter
    def choices(self, value):
        pass


# --------------------------------------------------------------------------- the registries
#: The choice lists that are not a config field's: option -> the registry that lists them.
REGISTRIES = {
    "model": api.model_names,          # sertool.models.MODELS (loads the model families: torch)
    "features": api.feature_names,     # sertool.features.PRESETS
    "corpus": api.corpus_names,        # sertool.corpora.PREPARERS
    "protocol": lambda: PROTOCOLS,     # sertool.training.splits.PROTOCOLS
    "recipe": lambda: RECIPES,         # sertool.models.RECIPES
}


def registry_choice(name: str) -> LazyChoice:
    """The choice type of a registry.

    Parameters
    ----------
    name
        A key of :data:`REGISTRIES`: ``model``, ``features``, ``corpus``, ``protocol`` or ``recipe``.

    Returns
    -------
    LazyChoice
        Reads the registry when the option is parsed or its help is shown.
    """
    return LazyChoice(REGISTRIES[name])


def pcm_format_choices() -> tuple[str, ...]:
    """Raw PCM sample formats (the keys of the PCM formats table)."""
    from sertool.io.pcm import PCM_FORMATS  # numpy: heavy, loaded only when the choice is used

    return tuple(PCM_FORMATS)


def train_choices(name: str) -> Callable[[], tuple[str, ...]]:
    """A ``values`` callable for :class:`LazyChoice`: the ``metadata["choices"]`` of TrainConfig field ``name``."""

    def values() -> tuple[str, ...]:
        from sertool.training.config import TrainConfig  # numpy: heavy, loaded only when the choice is used

        return choices(TrainConfig, name)

    return values


def train_choice(name: str) -> LazyChoice:
    """The choice type of TrainConfig field ``name``."""
    return LazyChoice(train_choices(name))


def device_option(default: str | None = "cpu"):
    """``--device``: cpu, cuda or auto (the choices of TrainConfig's ``device`` field)."""
    return click.option("--device", type=train_choice("device"), default=default, show_default=default is not None,
                        help="cpu, cuda, or auto (CUDA when available).")


# --------------------------------------------------------------------------- common options
class ValidSpeakers(click.ParamType):
    """``--valid-speakers``: a count of speakers (an integer >= 0) or a share of the training files (0 < x < 1)."""

    name = "N|SHARE"

    def convert(self, value, param, ctx):
        try:
            return valid_amount(value)
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def valid_speakers_option(help_text: str):
    return click.option("--valid-speakers", type=ValidSpeakers(), default=2, show_default=True, help=help_text)


def max_failures_option():
    return click.option("--max-failures", default=0, show_default=True, help=MAX_FAILURES_HELP)


def progress_option():
    return click.option("--progress/--no-progress", default=None,
                        help="Progress bar (default: when stderr is a terminal).")


def jobs_option(help_text: str):
    return click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(1), help=help_text)


def config_file_options(config_help: str, set_help: str):
    """``-c/--config FILE`` (TOML) and repeatable ``--set KEY=VALUE``, as ``config_file`` and ``sets``."""

    def apply(command):
        command = click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help=set_help)(command)
        return click.option("-c", "--config", "config_file", type=click.Path(dir_okay=False),
                            help=config_help)(command)

    return apply


def overrides(sets: Iterable[str], options: dict | None = None) -> dict:
    """Config values: the ``--set KEY=VALUE`` assignments, then the options that were given (not None).

    Raises
    ------
    ConfigError
        A ``--set`` item without ``=``.
    """
    values = parse_assignments(sets)
    values.update({k: v for k, v in (options or {}).items() if v is not None})
    return values


def floats(text: str, option: str, count: int | None = None) -> list[float]:
    """Numbers from a comma-separated option value.

    Parameters
    ----------
    text
        The value, e.g. ``"1,2.5"``.
    option
        The option's name, for the message (``--weights``).
    count
        How many numbers it must hold (None: any).

    Returns
    -------
    list of float

    Raises
    ------
    click.BadParameter
        Not numbers, or not ``count`` of them (a usage error: exit 2).
    """
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers", param_hint=option) from None
    if count and len(values) != count:
        raise click.BadParameter(f"{text!r}: expected {count} numbers", param_hint=option)
    return values


def comma_list(text: str | None) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]``; None or ``""`` -> None."""
    return text.split(",") if text else None


def raw_pcm_options(prefix: str, default: str):
    """``--rate``, ``--format`` (as ``pcm_format``), ``--channels``: stdin as raw PCM.

    ``prefix`` opens each help text; ``default`` names what stdin is without ``--rate``.
    """
    options = [
        click.option("--rate", type=click.IntRange(1), default=None,
                     help=f"{prefix}stdin is raw PCM at this rate in Hz (default: a {default})."),
        click.option("--format", "pcm_format", type=LazyChoice(pcm_format_choices), default="s16le",
                     show_default=True, help=f"{prefix}with --rate: the raw PCM sample format."),
        click.option("--channels", type=click.IntRange(1), default=1, show_default=True,
                     help=f"{prefix}with --rate: interleaved channels (mixed to mono)."),
    ]

    def apply(command):
        for option in reversed(options):
            command = option(command)
        return command

    return apply


#: The one rule for code named by a file (:mod:`sertool.features.trust`), as every command's --trust-code says it.
TRUST_CODE_HELP = ("Run code that a checkpoint, export or --config/--set names (an embedding provider python, "
                   "torchscript or onnx; a TorchScript export) and load the Hugging Face folder an ssl checkpoint "
                   "names. Refused without it.")


def trust_code_option(help_text: str = TRUST_CODE_HELP):
    """``--trust-code`` (``trust_code``): allow what :mod:`sertool.features.trust` gates."""
    return click.option("--trust-code", is_flag=True, help=help_text)


def label_options(command):
    """``--labels SET`` (label_set) and ``--map FROM=TO`` (label_map, repeatable): :mod:`sertool.corpora.labels`."""
    command = click.option("--map", "label_map", multiple=True, metavar="FROM=TO",
                           help="Rename a label before --labels (e.g. excited=happy); repeatable.")(command)
    return click.option("--labels", "label_set", default=None, metavar="SET",
                        help="Only these labels: big4, big6, big7, all, or names separated by commas "
                             "(default: every label).")(command)


def manifests_and_store(inputs: tuple, output) -> tuple[list[str], str]:
    """``MANIFEST... STORE`` arguments as (manifests, store); a usage error naming what is missing."""
    manifests, store = list(inputs[:-1]), inputs[-1] if inputs else None
    missing = [n for n, v in (("MANIFEST", manifests), ("STORE", store), ("--output", output)) if not v]
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}")
    return manifests, store
