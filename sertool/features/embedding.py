"""Speaker-embedding hooks: one vector per utterance from a pluggable provider.

``embedding`` is an utterance-level extractor ((1, dim) per file) whose
``provider`` is one of

- ``resemblyzer``: the pretrained GE2E speaker encoder shipped inside the
  PyPI package ``resemblyzer`` (256-dim, weights inside the package, no
  download; ``pip install 'sertool[embeddings]'``). Audio is trimmed of long
  silences by resemblyzer's own VAD; when that leaves under 0.5 s, the
  untrimmed audio is used.
- ``torchscript``: a TorchScript file at ``path`` (e.g. an x-vector or ECAPA
  model exported elsewhere), loaded on the CPU. ``input = "waveform"`` feeds
  float32 samples ``(1, num_samples)``; ``input = "fbank"`` feeds
  ``(1, frames, n_mels)`` log-Mel filterbanks (25 ms / 10 ms, Hamming,
  ln(mel + 1e-6)) computed by sertool's ``logmel`` extractor.
- ``onnx``: the same for an ONNX file (needs ``onnxruntime``).
- ``python``: ``path = "package.module:function"``, called as
  ``function(samples, sample_rate)`` and returning a vector.

The model's output is flattened to one vector; ``normalize = true`` scales it
to unit length. ``dim`` is found by running the provider once on a second
of low noise. The config holds the model path, not its content: after
replacing a model file in place, rerun ``extract`` with ``--overwrite``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from sertool.errors import ConfigError, FeatureError
from sertool.features.base import FeatureConfig, FeatureExtractor, add_preset, build_extractor, register

PROVIDERS = ("resemblyzer", "torchscript", "onnx", "python")


@dataclass(frozen=True)
class EmbeddingConfig(FeatureConfig):
    provider: str = "resemblyzer"
    path: str = ""
    input: str = "waveform"
    sample_rate: int = 16000
    n_mels: int = 80
    normalize: bool = False

    def __post_init__(self):
        if self.provider not in PROVIDERS:
            raise ConfigError(f"provider {self.provider!r} must be one of {', '.join(PROVIDERS)}")
        if self.provider != "resemblyzer" and not self.path:
            raise ConfigError(f"provider {self.provider!r} needs path (a model file, or package.module:function)")
        if self.input not in ("waveform", "fbank"):
            raise ConfigError("input must be waveform or fbank")


@register
class EmbeddingExtractor(FeatureExtractor):
    """Utterance-level embedding from resemblyzer, a TorchScript/ONNX file or a Python function."""

    name = "embedding"
    config_cls = EmbeddingConfig
    level = "utterance"
    #: one vector of the whole utterance: no block-by-block computation
    streams = streams_blocks = streams_live = False

    @property
    def min_duration(self) -> float:
        return 0.1

    @cached_property
    def _model(self):
        c = self.config
        if c.provider == "resemblyzer":
            try:
                from resemblyzer import VoiceEncoder  # pulls in torch (~1 s): only for this provider
            except ImportError as exc:
                raise ConfigError(f"provider resemblyzer needs the resemblyzer package ({exc}); "
                                  "pip install 'sertool[embeddings]'") from None
            return VoiceEncoder(device="cpu", verbose=False)
        if c.provider == "torchscript":
            import torch  # heavy (~1 s): only for this provider

            try:
                return torch.jit.load(c.path, map_location="cpu").eval()
            except (RuntimeError, ValueError, OSError) as exc:
                raise ConfigError(f"{c.path}: not a loadable TorchScript model ({str(exc).splitlines()[0]})") from None
        if c.provider == "onnx":
            try:
                import onnxruntime  # heavy, optional: only for this provider
            except ImportError:
                raise ConfigError("provider onnx needs onnxruntime: pip install onnxruntime") from None
            try:
                return onnxruntime.InferenceSession(c.path, providers=["CPUExecutionProvider"])
            except Exception as exc:  # onnxruntime raises its own exception types for a file it cannot load
                raise ConfigError(f"{c.path}: not a loadable ONNX model ({str(exc).splitlines()[0][:120]})") from None
        return _entry_point(c.path)

    @cached_property
    def _fbank(self):
        return build_extractor("logmel", {"sample_rate": self.config.sample_rate, "n_mels": self.config.n_mels,
                                          "n_fft": 512, "win_ms": 25.0, "hop_ms": 10.0})

    @cached_property
    def dim(self) -> int:
        """Length of the vector, from one run of the provider on a second of low noise (ConfigError if it fails)."""
        probe = np.random.default_rng(0).standard_normal(self.sample_rate).astype(np.float32) * 0.01
        try:
            vector = self._embed(probe)
        except (ConfigError, FeatureError):
            raise
        except Exception as exc:  # a user model failing on the probe: its config is unusable, not one file
            raise ConfigError(f"{self._name}: failed on a second of noise ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:120] if str(exc) else ''}); check the model") from None
        if vector.shape[0] == 0:
            raise ConfigError(f"{self._name}: returned an empty vector; it must return one number per dimension")
        return int(vector.shape[0])

    @property
    def _name(self) -> str:
        """The provider and its model, for messages (``python embedding 'pkg.mod:fn'``)."""
        c = self.config
        return f"{c.provider} embedding" + (f" {c.path!r}" if c.path else "")

    def _embed(self, samples):
        c = self.config
        if c.provider == "resemblyzer":
            if not np.any(samples):
                raise FeatureError("silent audio: no speaker to embed")
            from resemblyzer import preprocess_wav  # pulls in torch: only for this provider
            from resemblyzer.audio import normalize_volume  # (see above)

            wav = preprocess_wav(samples, source_sr=c.sample_rate)
            if wav.shape[0] < c.sample_rate // 2:
                wav = normalize_volume(samples, -30, increase_only=True)
            vector = self._model.embed_utterance(wav)
        else:
            x = self._fbank.extract(samples, c.sample_rate)[None] if c.input == "fbank" else samples[None]
            if c.provider == "torchscript":
                import torch  # heavy (~1 s): only for this provider

                with torch.no_grad():
                    vector = self._model(torch.from_numpy(np.ascontiguousarray(x))).numpy()
            elif c.provider == "onnx":
                session = self._model
                vector = session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0]
            else:
                vector = self._model(samples, c.sample_rate)
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        if c.normalize:
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        return vector

    def extract(self, samples, sr):
        self.check_input(samples, sr)
        try:
            vector = self._embed(samples)
        except (ConfigError, FeatureError):
            raise
        except Exception as exc:  # a user model failing on one file is a per-file error
            raise FeatureError(f"{self.config.provider} embedding failed ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:120] if str(exc) else ''})") from None
        if not np.isfinite(vector).all():
            raise FeatureError(f"{self.config.provider} embedding has NaN or infinite values")
        return vector[None, :]


def _entry_point(spec: str):
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(f"python provider path {spec!r} must be package.module:function")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot load {spec!r} ({exc}); check that the module is importable") from None
    if not callable(function):
        raise ConfigError(f"{spec!r} is not callable")
    _check_signature(function, spec)
    return function


def _check_signature(function, spec: str) -> None:
    """ConfigError unless ``function`` can be called as ``function(samples, sample_rate)``."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without a signature: its first call will tell
        return
    try:
        signature.bind(np.zeros(1, np.float32), 16000)
    except TypeError:
        raise ConfigError(f"python provider {spec!r} takes {signature}; it must take (samples, sample_rate) and "
                          "return a vector") from None


add_preset("resemblyzer", "embedding",
           "256-dim GE2E speaker embedding from the resemblyzer package (one row per utterance)",
           provider="resemblyzer")
