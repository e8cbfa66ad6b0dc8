"""Self-supervised speech encoders from a local Hugging Face model folder (``ssl``), fully offline.

``--features ssl --set model=PATH`` reads a ``transformers`` model folder the
user already has (``config.json`` plus ``model.safetensors`` or
``pytorch_model.bin``; optionally ``preprocessor_config.json``) of a
wav2vec 2.0, HuBERT, WavLM or data2vec-audio encoder, or of a Whisper
model (its encoder only; the decoder's weights are never loaded).
Nothing is downloaded
(``local_files_only``) and no code from the folder runs
(``trust_remote_code`` stays off: only model types ``transformers`` ships).
Needs the ssl extra: ``pip install 'sertool[ssl]'``.

Config fields:

- ``layer``: which hidden state (0 = the CNN features after projection,
  1..L the transformer layers, -1 the last); ``layers = "all"`` stores every
  hidden state side by side, ``(frames, (L + 1) x H)``, for a learnt
  weighted sum (``--model ssl_head``).
- ``pooling``: ``none`` (frame level, one row per encoder frame, 20 ms for
  these models), ``mean`` or ``mean_std`` (utterance level, over frames).
  Whisper: the log-mel input of its feature extractor, each chunk padded to
  the encoder's fixed input (30 s for the published models, as they were
  trained) and only the frames of real audio kept.
- ``dtype``: ``float32`` or ``float16`` storage (half the store size).
- ``chunk_seconds``: longer files are encoded in independent chunks of this
  length, so memory stays bounded (frames next to a chunk edge see less
  context than in one pass); for Whisper at most its input length.
- ``device``: ``cpu``, ``cuda`` or ``auto``; ``batch``: chunks of a long
  file per forward pass (1 by default; raise it on a GPU). Chunks of a
  waveform encoder share a pass only when of one length, so no padding
  changes a result; files are encoded one at a time.
- ``model_id``: the folder's identity, filled in when the config is built:
  the SHA-256 of ``config.json`` and ``preprocessor_config.json`` and of the
  weight file, so another model at the same path is another store; a
  checkpoint or store whose ``model_id`` no longer matches the folder is
  refused.

Raw-waveform encoders: audio is normalised to zero mean and unit variance
per file (chunk) when the folder's ``preprocessor_config.json`` says
``do_normalize`` (the default when it has none), as the models were trained.
Whisper: the folder's ``WhisperFeatureExtractor`` settings (or its defaults
with the model's ``num_mel_bins`` when the folder has none).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from sertool.errors import ConfigError, FeatureError, optional_import
from sertool.features.base import FeatureConfig, FeatureExtractor, register
from sertool.runtime.process import torch_device

POOLINGS = ("none", "mean", "mean_std")
DTYPES = ("float32", "float16")
#: ``model_type`` values of config.json this extractor runs (raw-waveform encoders).
WAVEFORM_TYPES = ("wav2vec2", "hubert", "wavlm", "data2vec-audio", "wav2vec2-conformer")
#: Log-mel encoders: the encoder of an encoder-decoder model, fed its feature extractor's log-mel frames.
MEL_TYPES = ("whisper",)
MODEL_TYPES = WAVEFORM_TYPES + MEL_TYPES
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_IDENTITIES: dict[tuple, str] = {}
#: Whisper's log-mel analysis at 16 kHz: 10 ms hop, 25 ms window (samples).
WHISPER_HOP, WHISPER_WINDOW = 160, 400


#: config.json keys the extractor reads, by kind of encoder: key -> whether it is a list of counts (else one count).
WAVEFORM_KEYS = {"num_hidden_layers": False, "hidden_size": False, "conv_kernel": True, "conv_stride": True}
MEL_KEYS = {"encoder_layers": False, "d_model": False, "max_source_positions": False, "num_mel_bins": False}
#: config.json keys that ask transformers to import code from the folder or the Hub (never honoured here).
REMOTE_CODE_KEYS = ("auto_map", "custom_pipelines")


def _read_json(path: Path, folder: Path) -> dict:
    """A JSON object file of a model folder; ConfigError naming it when unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not readable JSON ({type(exc).__name__}); restore the model folder {folder}") \
            from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: not a JSON object; restore the model folder {folder}")
    return data


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def check_model_folder(folder: str | os.PathLike) -> dict:
    """The parsed ``config.json`` of a usable encoder folder; ConfigError naming the folder otherwise.

    Usable: a folder holding ``config.json`` (a JSON object of a :data:`MODEL_TYPES` model, no
    :data:`REMOTE_CODE_KEYS`, every key the extractor reads a positive whole number or a list of them),
    a weight file (:data:`WEIGHT_FILES`), and, when present, a JSON-object ``preprocessor_config.json``.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ConfigError(f"{folder}: model folder not found; --set model=PATH must be a local Hugging Face model "
                          "folder (config.json + model.safetensors or pytorch_model.bin)")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: not a folder; --set model=PATH must be a Hugging Face model folder "
                          "(config.json + model.safetensors or pytorch_model.bin), not a file in it")
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder}: no config.json; --set model=PATH must be a Hugging Face model folder "
                          "(config.json + model.safetensors or pytorch_model.bin), copied onto this machine")
    config = _read_json(folder / "config.json", folder)
    remote = [k for k in REMOTE_CODE_KEYS if config.get(k)]
    if remote:
        raise ConfigError(f"{folder}: config.json asks for code from the folder or the Hub ({', '.join(remote)}); "
                          "sertool runs only model types transformers ships and never remote code")
    model_type = config.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ConfigError(f"{folder}: model_type {model_type!r} is not an encoder this extractor runs "
                          f"({', '.join(MODEL_TYPES)})")
    for key, is_list in (MEL_KEYS if model_type in MEL_TYPES else WAVEFORM_KEYS).items():
        value = config.get(key)
        if not (isinstance(value, list) and value and all(map(_is_count, value)) if is_list else _is_count(value)):
            raise ConfigError(f"{folder}: config.json key {key!r} must be a positive whole number"
                              f"{' list' if is_list else ''}, not {value!r}; restore the model folder")
    if model_type not in MEL_TYPES and len(config["conv_kernel"]) != len(config["conv_stride"]):
        raise ConfigError(f"{folder}: config.json conv_kernel and conv_stride differ in length; restore the folder")
    if (folder / "preprocessor_config.json").is_file():
        _read_json(folder / "preprocessor_config.json", folder)
    return config


def folder_identity(folder: str | os.PathLike) -> str:
    """``<sha256 of the configs, 16 hex>-<sha256 of the weights, 16 hex>`` of a model folder (cached per mtime).

    The folder is checked first (:func:`check_model_folder`).
    """
    folder = Path(folder)
    check_model_folder(folder)
    config = folder / "config.json"
    weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    if weights is None:
        raise ConfigError(f"{folder}: no {' or '.join(WEIGHT_FILES)}; copy the model's weight file into the folder")
    files = [config, folder / "preprocessor_config.json", weights]
    key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())
    if key not in _IDENTITIES:
        configs = hashlib.sha256(b"".join(f.read_bytes() for f in files[:2] if f.is_file())).hexdigest()
        digest = hashlib.sha256()
        with open(weights, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
        _IDENTITIES[key] = f"{configs[:16]}-{digest.hexdigest()[:16]}"
    return _IDENTITIES[key]


@dataclass(frozen=True)
class SslConfig(FeatureConfig):
    model: str = ""
    layer: int = -1
    layers: str = ""
    pooling: str = "none"
    dtype: str = "float32"
    chunk_seconds: float = 30.0
    device: str = "cpu"
    batch: int = 1
    sample_rate: int = 16000
    model_id: str = ""

    def __post_init__(self):
        if not self.model:
            raise ConfigError("ssl features need --set model=PATH, a local Hugging Face model folder")
        for name, value, allowed in (("pooling", self.pooling, POOLINGS), ("dtype", self.dtype, DTYPES),
                                     ("layers", self.layers, ("", "all")),
                                     ("device", self.device, ("cpu", "cuda", "auto"))):
            if value not in allowed:
                raise ConfigError(f"ssl {name} {value!r} must be one of {', '.join(map(repr, allowed))}")
        if self.batch < 1:
            raise ConfigError(f"ssl batch {self.batch} must be at least 1")
        if self.chunk_seconds < 1:
            raise ConfigError(f"ssl chunk_seconds {self.chunk_seconds} must be at least 1")
        current = folder_identity(self.model)
        if not self.model_id:
            object.__setattr__(self, "model_id", current)
        elif self.model_id != current:
            raise ConfigError(f"{self.model}: the model folder changed since these features were made (identity "
                              f"{self.model_id}, now {current}); restore that model, or extract again with "
                              "--overwrite and retrain")


@register
class SslExtractor(FeatureExtractor):
    """Hidden states of a local wav2vec 2.0 / HuBERT / WavLM / data2vec-audio / Whisper model folder."""

    name = "ssl"
    config_cls = SslConfig
    #: the encoder attends over the whole utterance: no block-by-block computation
    streams = streams_blocks = streams_live = False

    @property
    def level(self) -> str:
        return "frame" if self.config.pooling == "none" else "utterance"

    @cached_property
    def model_config(self) -> dict:
        """The folder's ``config.json``, checked (:func:`check_model_folder`)."""
        return check_model_folder(self.config.model)

    @cached_property
    def _normalise(self) -> bool:
        pre = Path(self.config.model) / "preprocessor_config.json"
        return bool(_read_json(pre, Path(self.config.model)).get("do_normalize", True)) if pre.is_file() else True

    @property
    def is_whisper(self) -> bool:
        return self.model_config.get("model_type") in MEL_TYPES

    @property
    def hidden_states(self) -> int:
        """Hidden states the encoder returns (CNN projection + one per transformer layer)."""
        key = "encoder_layers" if self.is_whisper else "num_hidden_layers"
        return int(self.model_config[key]) + 1

    @property
    def hidden_size(self) -> int:
        return int(self.model_config["d_model" if self.is_whisper else "hidden_size"])

    @property
    def dim(self) -> int:
        width = self.hidden_size * (self.hidden_states if self.config.layers == "all" else 1)
        return width * (2 if self.config.pooling == "mean_std" else 1)

    @property
    def min_duration(self) -> float:
        return self._receptive_field / self.sample_rate

    @cached_property
    def _receptive_field(self) -> int:
        if self.is_whisper:  # 25 ms STFT windows, two kernel-3 convolutions (the second of stride 2): 5 mel frames
            return 4 * WHISPER_HOP + WHISPER_WINDOW
        span, jump = 1, 1
        for kernel, stride in zip(self.model_config["conv_kernel"], self.model_config["conv_stride"]):
            span += (kernel - 1) * jump
            jump *= stride
        return span

    @property
    def frame_timing(self):
        if self.level == "utterance":
            return None
        if self.is_whisper:  # output frame j covers samples 320 j - 520 ... 320 j + 520 (centred STFT)
            return 2 * WHISPER_HOP / self.sample_rate, self._receptive_field / self.sample_rate, \
                self._receptive_field / 2 / self.sample_rate
        shift = int(np.prod(self.model_config["conv_stride"])) / self.sample_rate
        return shift, self._receptive_field / self.sample_rate, 0.0

    @property
    def feature_names(self) -> list[str]:
        states = range(self.hidden_states) if self.config.layers == "all" else [self._layer_index]
        names = [f"ssl_l{s:02d}_{h:04d}" for s in states for h in range(self.hidden_size)]
        if self.config.pooling == "mean_std":
            return [f"{n}_mean" for n in names] + [f"{n}_std" for n in names]
        return names

    @property
    def _layer_index(self) -> int:
        index = self.config.layer if self.config.layer >= 0 else self.hidden_states + self.config.layer
        if not 0 <= index < self.hidden_states:
            raise ConfigError(f"ssl layer {self.config.layer} is outside 0..{self.hidden_states - 1} "
                              f"(this model has {self.hidden_states} hidden states)")
        return index

    @cached_property
    def encoder(self):
        """The ``transformers`` model in eval mode (loaded once, local files only, no remote code)."""
        transformers = optional_import("transformers", "ssl features", "ssl")
        self._layer_index  # noqa: B018 - a bad layer fails before the weights load
        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        try:
            model = self._load_encoder(transformers)
        except Exception as exc:  # transformers raises many types for damaged weights or configs
            raise ConfigError(f"{self.config.model}: transformers cannot load the model ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); restore the folder") from None
        self._device = torch_device(self.config.device)
        return model.to(self._device).eval()

    def _load_encoder(self, transformers):
        """The folder's encoder: local files only, no remote code; Whisper's encoder without its decoder."""
        if self.is_whisper:  # the audio-classification class holds the encoder only: decoder weights never load
            return transformers.WhisperForAudioClassification.from_pretrained(
                self.config.model, local_files_only=True, trust_remote_code=False).encoder
        return transformers.AutoModel.from_pretrained(self.config.model, local_files_only=True,
                                                      trust_remote_code=False)

    @cached_property
    def _mel(self):
        """Whisper's feature extractor: the folder's preprocessor_config.json, else defaults with its mel bins."""
        transformers = optional_import("transformers", "ssl features", "ssl")
        if (Path(self.config.model) / "preprocessor_config.json").is_file():
            return transformers.WhisperFeatureExtractor.from_pretrained(self.config.model, local_files_only=True)
        return transformers.WhisperFeatureExtractor(feature_size=int(self.model_config["num_mel_bins"]))

    @property
    def _whisper_samples(self) -> int:
        """Samples of the encoder's fixed input: max_source_positions x 2 mel frames (30 s for the published ones)."""
        return int(self.model_config["max_source_positions"]) * 2 * WHISPER_HOP

    def _encode(self, pieces: list[np.ndarray]):
        """Hidden states of a batch of chunks: a tuple of ``(B, frames, H)`` tensors.

        Raw-waveform encoders take chunks of one length (no padding: results
        equal one chunk at a time); Whisper pads every chunk to its input anyway.
        """
        import torch  # heavy (~1 s): loaded only when an encoder runs

        if self.is_whisper:
            mel = self._mel([p.astype(np.float32) for p in pieces], sampling_rate=self.sample_rate,
                            return_tensors="np", padding="max_length", max_length=self._whisper_samples)
            with torch.no_grad():
                return self.encoder(torch.from_numpy(mel.input_features).to(self._device),
                                    output_hidden_states=True).hidden_states
        x = np.stack(pieces).astype(np.float32)
        if self._normalise:
            x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-7)
        with torch.no_grad():
            return self.encoder(torch.from_numpy(x).to(self._device), output_hidden_states=True).hidden_states

    def _hidden(self, pieces: list[np.ndarray]) -> list[np.ndarray]:
        """``(frames, width)`` float32 per chunk of a batch: the chosen hidden state(s), side by side."""
        import torch  # heavy (~1 s): loaded only when an encoder runs

        states = self._encode(pieces)
        chosen = states if self.config.layers == "all" else [states[self._layer_index]]
        joined = torch.cat(chosen, dim=-1).float().cpu().numpy()
        if self.is_whisper:  # keep the output frames of real audio; the rest is padding
            return [joined[k, :-(-p.shape[0] // (2 * WHISPER_HOP))] for k, p in enumerate(pieces)]
        return list(joined)

    def _batches(self, pieces: list[np.ndarray]):
        """Consecutive runs of up to ``batch`` chunks that can share a forward pass."""
        group: list[np.ndarray] = []
        for piece in pieces:
            if group and (len(group) == self.config.batch or
                          (not self.is_whisper and piece.shape[0] != group[0].shape[0])):
                yield group
                group = []
            group.append(piece)
        if group:
            yield group

    def extract(self, samples: np.ndarray, sr: int) -> np.ndarray:
        self.check_input(samples, sr)
        chunk = int(self.config.chunk_seconds * sr)
        if self.is_whisper:  # whole output frames (320 samples) per chunk, so frame times do not drift
            step = 2 * WHISPER_HOP
            chunk = max(step, min(chunk, self._whisper_samples) // step * step)
        pieces = [samples[i:i + chunk] for i in range(0, samples.shape[0], chunk)]
        if len(pieces) > 1 and pieces[-1].shape[0] < self._receptive_field and not self.is_whisper:
            pieces[-2:] = [np.concatenate(pieces[-2:])]  # a tail shorter than one frame joins the chunk before
        frames = np.concatenate([h for group in self._batches(pieces) for h in self._hidden(group)])
        if not np.isfinite(frames).all():
            raise FeatureError(f"{self.config.model}: the encoder returned NaN or infinite values")
        if self.config.pooling == "mean":
            frames = frames.mean(axis=0, keepdims=True)
        elif self.config.pooling == "mean_std":
            frames = np.concatenate([frames.mean(axis=0), frames.std(axis=0)])[None]
        return frames.astype(self.config.dtype)
