"""Features of one file, as every extraction backend computes them: ``(id, features or None, error or None, warnings)``."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from sertool.errors import SertoolError
from sertool.io.audio import TruncatedAudioWarning

if TYPE_CHECKING:
    import numpy as np


def compute_one(extractor, utt_id: str, path: str) -> tuple[str, "np.ndarray | None", str | None, list[str]]:
    """``(id, features or None, error or None, warnings)`` of one file (warnings: e.g. decoded short)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncatedAudioWarning)
        try:
            feats, error = extractor.extract_file(path), None
        except SertoolError as exc:
            message = str(exc)
            feats, error = None, message if message.startswith(str(path)) else f"{path}: {message}"
    notes = [str(w.message) for w in caught if issubclass(w.category, TruncatedAudioWarning)]
    return utt_id, feats, error, notes

