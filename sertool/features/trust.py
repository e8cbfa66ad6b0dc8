"""Named code: what a feature config would import, load or read from elsewhere, and the one gate in front of it.

Files that come from elsewhere (a checkpoint, an exported model, a TOML
config) can name things sertool would run:

- code (:func:`named_code`): an ``embedding`` feature config with provider
  ``python`` (a function ``package.module:function`` to import and call),
  ``torchscript`` (a TorchScript program) or ``onnx`` (a graph run by
  onnxruntime);
- model folders (:func:`named_folders`): an ``ssl`` feature config's local
  Hugging Face encoder folder (``model``).

The rule, the same in every command and API call: nothing named as code runs
unless the caller passes ``--trust-code`` (``trust_code=True``); a model folder
named by a checkpoint or an export is loaded only with that same flag (in
``extract`` the folder is the one the user named). Every entry point calls
:func:`require_trust` before anything named is imported or loaded.
"""

from __future__ import annotations

from typing import Any, Iterable

from sertool.errors import UntrustedCodeError

#: Embedding providers whose ``path`` names code, and what loading it runs.
CODE_PROVIDERS = {"python": "a Python function", "torchscript": "a TorchScript program", "onnx": "an ONNX model"}


def _as_dict(config: Any) -> dict:
    """A feature config (a dict with a ``type`` tag, or a :class:`~sertool.features.base.FeatureConfig`) as a dict."""
    if isinstance(config, dict):
        return config
    to_dict = getattr(config, "to_dict", None)
    return to_dict() if callable(to_dict) else {}


def named_code(config: Any) -> list[str]:
    """What running ``config``'s extractor would import or load as code, one phrase each (empty: nothing).

    Parameters
    ----------
    config
        A feature config dict (``{"type": ..., ...}``) or a ``FeatureConfig``.

    Returns
    -------
    list of str
        E.g. ``["python 'pkg.mod:fn' (embedding provider: a Python function)"]``.
    """
    config = _as_dict(config)
    provider = config.get("provider")
    if config.get("type") == "embedding" and provider in CODE_PROVIDERS:
        return [f"{provider} {config.get('path', '')!r} (embedding provider: {CODE_PROVIDERS[provider]})"]
    return []


def named_folders(config: Any) -> list[str]:
    """The model folders outside the file that ``config``'s extractor would load (an ssl encoder), one phrase each."""
    config = _as_dict(config)
    if config.get("type") == "ssl":
        return [f"ssl {config.get('model', '')!r} (a Hugging Face model folder)"]
    return []


def require_trust(references: Iterable[str], where: str, *, trust_code: bool) -> None:
    """The gate: UntrustedCodeError naming ``where`` and each reference, unless there is none or ``trust_code``.

    Parameters
    ----------
    references
        What would be run or loaded (from :func:`named_code`, :func:`named_folders`, or a model file's own).
    where
        The file or settings that name them (a checkpoint path, ``"--config cfg.toml / --set"``).
    trust_code
        The caller trusts ``where`` (``--trust-code``).

    Raises
    ------
    UntrustedCodeError
        There are references and ``trust_code`` is False.
    """
    references = list(references)
    if references and not trust_code:
        raise UntrustedCodeError(f"{where}: sertool would run or load what it names: {'; '.join(references)}; pass "
                                 "--trust-code (trust_code=True) only if you trust where it came from")
