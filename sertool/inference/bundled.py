"""The models shipped inside the package, found by name (``--model default``, ``ravdess``, ``ravdess-speaker``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sertool.errors import SertoolError

_BUNDLE = Path(__file__).resolve().parents[1] / "models" / "default"
#: Models shipped inside the package (``--model NAME``; see ``sertool/models/default/README.md``):
#: ``default`` the multi-corpus model (RAVDESS 01-16 + EMO-DB-2s + ASED 01-40, ``set`` normalisation: score files
#: together); ``ravdess`` LIGHT-SERNET on RAVDESS 01-16 (global normalisation, any file alone);
#: ``ravdess-speaker`` (alias ``speaker``) the same with speaker normalisation (10+ files of each speaker).
BUNDLED = {"default": _BUNDLE / "multicorpus.pt", "ravdess": _BUNDLE / "light_sernet_ravdess.pt",
           "ravdess-speaker": _BUNDLE / "light_sernet_ravdess_speaker.pt",
           "speaker": _BUNDLE / "light_sernet_ravdess_speaker.pt"}
DEFAULT_CHECKPOINT = BUNDLED["default"]


def default_checkpoint(name: str = "default") -> Path:
    """Path of bundled model ``name`` (see ``sertool/models/default/README.md``).

    Raises
    ------
    SertoolError
        The bundled file is missing from this installation.
    """
    path = BUNDLED[name]
    if not path.is_file():
        raise SertoolError(f"{path}: the bundled model is missing from this installation; "
                           "pass a checkpoint with --model")
    return path


def checkpoint_path(checkpoint) -> Path:
    """A bundled model name (:data:`BUNDLED`) as its file, anything else as a path."""
    return default_checkpoint(str(checkpoint)) if str(checkpoint) in BUNDLED else Path(checkpoint)


def bundled_export(checkpoint) -> Path | None:
    """The ONNX export shipped beside bundled checkpoint ``checkpoint``, when it and onnxruntime are installed.

    Parameters
    ----------
    checkpoint
        A checkpoint path (any path: only the bundled ones have an export beside them).

    Returns
    -------
    Path or None
        ``<bundled model>.onnx`` (written by ``sertool export <name> -o ...``; whether it was written from
        exactly this checkpoint is checked when it is loaded), or None for any other file.
    """
    try:
        path = Path(checkpoint).resolve()
    except (OSError, TypeError, ValueError):
        return None
    if path not in BUNDLED.values() or importlib.util.find_spec("onnxruntime") is None:
        return None
    export = path.with_suffix(".onnx")
    return export if export.is_file() else None
