"""The ``sertool`` Click group: the one place errors become messages and exit codes.

Every :class:`~sertool.errors.SertoolError` becomes ``Error: <message>`` on
stderr with exit code 1 (``--debug`` shows the traceback); usage errors exit
2; a run with more failed files than ``--max-failures`` exits 3; Ctrl-C
exits 130 and SIGTERM 143 after saving finished work. The commands
themselves live in one module each and are added by :mod:`sertool.cli.main`.
"""

from __future__ import annotations

import os
import signal
import sys

import click

from sertool import __version__
from sertool.errors import SertoolError


class SertoolGroup(click.Group):
    """Turns library errors into one-line messages and exit codes."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SertoolError as exc:
            if ctx.params.get("debug"):
                raise
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)
        except BrokenPipeError:  # `| head` closed stdout early: normal in a pipeline, exit quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except OSError as exc:  # outputs: read-only folder, full disk, a directory where a file goes
            if ctx.params.get("debug"):
                raise
            where = exc.filename or "an output file"
            click.echo(f"Error: {where}: {exc.strerror or exc}; check the path, its permissions and the free disk "
                       "space (finished work is kept)", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            if ctx.params.get("debug"):
                raise
            click.echo("Interrupted: finished work is saved; rerun the same command to continue.", err=True)
            ctx.exit(130)
        except SystemExit as exc:
            if exc.code == 143:  # SIGTERM, turned into SystemExit by the long-running commands
                click.echo("Terminated: finished work is saved; rerun the same command to continue.", err=True)
            raise


@click.group(cls=SertoolGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sertool")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Speech emotion recognition: prepare corpora, extract features, train, evaluate, predict."""


def log(message: str) -> None:
    """``message`` on stderr (stdout carries only results: paths, CSV rows, tables)."""
    click.echo(message, err=True)


def log_warnings(report, shown: int = 5) -> None:
    """The first ``shown`` warnings of ``report`` (a RunReport) on stderr, and where the rest are."""
    for warning in report.warnings[:shown]:
        log(f"  warning: {warning.error}")
    if report.warnings:
        more = f"{len(report.warnings) - shown} more not shown" if len(report.warnings) > shown else "all shown"
        where = f", listed in {report.warnings_path}" if report.warnings_path else ""
        log(f"  {len(report.warnings)} warning(s) ({more}{where})")


def sigterm_exits() -> None:
    """SIGTERM raises SystemExit(143), so a long command ends with the group's clean "Terminated" line.

    Everything these commands finish is already durable (atomic state files, flushed CSV rows).
    """

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
