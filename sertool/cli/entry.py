"""Console entry point: answers an up-to-date ``sertool extract`` before loading the full CLI.

Makefiles run ``sertool extract`` on every build. When the store is
current, the answer needs only the manifest's paths and one ``stat`` per
file; importing click and the command definitions would cost more than
that (about 30 ms of a 70 ms no-op here). So a plain
``sertool extract MANIFEST -f NAME -o DIR [-j N] [--[no-]progress]`` is
checked first with :func:`sertool.extraction.stamps.current_store`; anything else,
or a store that is not current, goes to :mod:`sertool.cli.main` unchanged.
"""

from __future__ import annotations

import sys
import time

from sertool.errors import SertoolError
from sertool.io.report import RunReport

_VALUE_OPTIONS = {"-f": "features", "--features": "features", "-o": "output", "--output": "output",
                  "-j": "jobs", "--jobs": "jobs"}
_FLAGS = ("--progress", "--no-progress")


def plain_extract(args: list[str]) -> tuple[str, str, str] | None:
    """``(manifest, features, output)`` of a plain ``extract`` command line, else None."""
    if not args or args[0] != "extract":
        return None
    manifest, values = None, {}
    rest = iter(args[1:])
    for arg in rest:
        key, has_value, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if key in _VALUE_OPTIONS:
            value = value if has_value else next(rest, None)
            if not value:
                return None
            values[_VALUE_OPTIONS[key]] = value
        elif arg in _FLAGS:
            continue
        elif arg.startswith("-") or manifest is not None:
            return None
        else:
            manifest = arg
    if manifest is None or "features" not in values or "output" not in values:
        return None
    if "jobs" in values and not (values["jobs"].isdigit() and int(values["jobs"]) >= 1):
        return None  # the full CLI explains the usage error
    return manifest, values["features"], values["output"]


def _answer_up_to_date(args: list[str]) -> bool:
    """Print what ``extract`` prints for a current store and return True; False to run the full CLI."""
    plain = plain_extract(args)
    if plain is None:
        return False
    start = time.monotonic()
    # stamps (hashlib, the store's file identity): only an extract line needs them, not `sertool --help`
    from sertool.extraction.stamps import current_store, failures_path_for, summary

    manifest, features, output = plain
    try:
        current = current_store(manifest, features, output)
    except (SertoolError, OSError, ValueError):
        return False  # the full CLI reports it properly
    if current is None:
        return False
    store, rows = current
    failures_path_for(store).unlink(missing_ok=True)
    print(summary(features, RunReport(skipped=rows), store, time.monotonic() - start), file=sys.stderr)
    print(store)
    return True


def main() -> None:
    """``sertool``: the up-to-date answer when it applies, else the click CLI."""
    if _answer_up_to_date(sys.argv[1:]):
        return
    from sertool.cli.main import main as cli_main  # click and every command: not needed by the fast path

    cli_main()
