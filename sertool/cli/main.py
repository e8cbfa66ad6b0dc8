"""The ``sertool`` command line: the group of :mod:`sertool.cli.app` with every command added.

Each command lives in a module of its own (:mod:`sertool.cli.prepare` ...),
parses its options, makes one :mod:`sertool.api` call and prints a summary
on stderr. Kept import-light: ``sertool --help`` imports neither numpy nor
torch (choice lists load their registries only when used).
"""

from __future__ import annotations

import sys

from sertool.cli.app import cli
from sertool.cli.augment import augment
from sertool.cli.compare import compare
from sertool.cli.crosscorpus import crosscorpus
from sertool.cli.evaluate import evaluate
from sertool.cli.export import export
from sertool.cli.extract import extract
from sertool.cli.fuse import fuse
from sertool.cli.options import pcm_format_choices
from sertool.cli.predict import predict
from sertool.cli.prepare import prepare
from sertool.cli.report import report
from sertool.cli.store import store
from sertool.cli.stream import stream
from sertool.cli.timeline import timeline
from sertool.cli.train import train

#: Every command (``sertool --help`` lists them by name).
COMMANDS = (prepare, extract, store, augment, train, evaluate, compare, crosscorpus, fuse, predict, stream,
            export, report, timeline)

for _command in COMMANDS:
    cli.add_command(_command)

__all__ = ["cli", "main", "COMMANDS"]


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (``sertool``; see :mod:`sertool.cli.entry` for the fast path)."""
    cli.main(args=argv, prog_name="sertool")


def __getattr__(name: str):
    """``RAW_PCM_FORMATS``: the raw PCM format names, read from the PCM formats table when asked for."""
    if name == "RAW_PCM_FORMATS":
        return pcm_format_choices()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
