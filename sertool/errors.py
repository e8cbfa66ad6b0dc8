"""The exception hierarchy: one root, :class:`SertoolError`, and every kind sertool raises.

Every message names the bad value and, where there is one, the fix. The CLI
prints ``Error: <message>`` and exits 1 for any of these; loops over files
catch them per item and record them in a :class:`~sertool.io.report.RunReport`.
"""

import importlib


class SertoolError(Exception):
    """Root of every error sertool raises on purpose."""


class ConfigError(SertoolError):
    """A configuration value or file is invalid."""


class CorpusError(SertoolError):
    """A corpus folder does not have the expected layout or label codes."""


class ManifestError(SertoolError):
    """A manifest CSV is missing, malformed or inconsistent."""


class AudioError(SertoolError):
    """One audio file cannot be used (empty, unreadable, non-finite, too short)."""


class FeatureError(SertoolError):
    """Feature extraction produced unusable output for one file."""


class StoreError(SertoolError):
    """A feature store is missing, unreadable or does not match what was asked."""


class CheckpointError(SertoolError):
    """A checkpoint file is missing, unsafe, or lacks a field."""


class ExportError(SertoolError):
    """A model cannot be exported, or an exported file cannot be used."""


class UntrustedCodeError(SertoolError):
    """A checkpoint, export or config names code (or a model folder) to run, and ``trust_code`` was not given."""


#: Every error kind, root first (the names :mod:`sertool` exports).
ERROR_KINDS = ("SertoolError", "ConfigError", "CorpusError", "ManifestError", "AudioError", "FeatureError",
               "StoreError", "CheckpointError", "ExportError", "UntrustedCodeError")


def optional_import(module: str, needed_by: str, extra: str, error: type[SertoolError] = ConfigError):
    """``importlib.import_module(module)``, or ``error``: "<needed_by> needs <module>: pip install 'sertool[<extra>]'"."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise error(f"{needed_by} needs {module}: pip install 'sertool[{extra}]'") from None
