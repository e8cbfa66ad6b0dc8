"""Transformer integrations with CNN and LSTM: baselines, ILT and CAT (He et al.,
"Integrating transformer with LSTM/CNN for speech emotion recognition";
../shared/papers/002_8ea6cf6e7dec5dec.txt).

Input: 40-band log-Mel, 25 ms / 10 ms (the ``transformer_logmel`` preset);
the paper pads or cuts utterances to 7.5 s (750 frames), here padding is
masked so any length works. Models (one registry name each):

- ``cnn_transformer`` (Table 1 baseline): CNN -> Transformer (``positional``
  encoding on or off) -> mean over time -> FC.
- ``cnn_lstm_transformer`` (Table 1 baseline): CNN -> BiLSTM -> Transformer.
- ``ilt`` (Sec. 2.2, Fig. 1): CNN output feeds a BiLSTM with attention
  pooling (eq. 9-10) and, in parallel, a Transformer (mean over time);
  ``fusion`` = ``concat`` | ``plus`` (fixed weight ``alpha`` on the LSTM
  side) | ``trainable_plus`` (softmax over two learned weights).
- ``cat`` (Sec. 2.3, Fig. 2): the input goes through the CNN and, in
  parallel, a strided 1-D convolution (length reduction) + LSTM; two
  cross-attention transformers, CNN queries over LSTM keys/values (CtoL) and
  the reverse (LtoC); their time-averaged outputs are added, then FC.
  ``cross`` = ``both`` | ``c2l`` | ``l2c`` gives the Table 2 ablations.

Conv blocks (Sec. 2.2): Conv2d 3x3, BatchNorm, ReLU, AvgPool 2x2, Dropout,
over (mel bands x frames); the output (channels x remaining bands) at each
time step is projected to ``d_model``. Training (Sec. 3.2): Adam lr 1e-4,
betas (0.9, 0.99), batch 40, 100 epochs.

Choices the paper leaves open (config fields): 3 conv blocks of 16, 32, 64
channels, dropout 0.2, d_model 128, 4 heads, 2 encoder layers, feed-forward
512, LSTM 64 units per direction, CAT length-reduction stride 4 and 128
conv channels, ``alpha`` 0.5; a ReLU after each BatchNorm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

from sertool.errors import ConfigError
from sertool.models.registry import register_model
from sertool.models.common import (AttentionPooling, Conv1d, Conv2d, CrossAttentionLayer, TransformerEncoder,
                                   conv_lengths, masked_mean, run_lstm, zero_padding)


@dataclass(frozen=True)
class _FrontEndConfig:
    """What all four models use: the CNN front end and the attention sizes."""

    #: output channels of the conv blocks (each: Conv 3x3, BN, ReLU, AvgPool 2, Dropout)
    conv_channels: tuple[int, ...] = (16, 32, 64)
    conv_dropout: float = 0.2
    d_model: int = 128
    heads: int = 4
    ff_dim: int = 512
    dropout: float = 0.1

    def __post_init__(self):
        if not self.conv_channels or min((*self.conv_channels, self.d_model, self.heads, self.ff_dim)) < 1:
            raise ConfigError(f"{type(self).__name__}: conv_channels, d_model, heads and ff_dim must be positive")
        if self.d_model % self.heads:
            raise ConfigError(f"d_model {self.d_model} must be a multiple of heads {self.heads}")
        for name in ("fusion", "cross"):
            allowed = _CHOICES.get(name)
            if hasattr(self, name) and getattr(self, name) not in allowed:
                raise ConfigError(f"{name} {getattr(self, name)!r} must be one of {', '.join(allowed)}")

    @classmethod
    def upgrade(cls, values: dict) -> dict:
        """Checkpoints before per-model configs stored every field of the shared config: drop the unused ones."""
        used = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in values.items() if k in used or k not in _SHARED_FIELDS}


_CHOICES = {"fusion": ("concat", "plus", "trainable_plus"), "cross": ("both", "c2l", "l2c")}


@dataclass(frozen=True)
class CnnTransformerConfig(_FrontEndConfig):
    """CNN front end + transformer encoder (cnn_transformer)."""

    layers: int = 2
    positional: bool = True


@dataclass(frozen=True)
class CnnLstmTransformerConfig(CnnTransformerConfig):
    """CNN + BiLSTM + transformer (cnn_lstm_transformer)."""

    lstm_hidden: int = 64


@dataclass(frozen=True)
class IltConfig(CnnLstmTransformerConfig):
    """ILT: BiLSTM with attention pooling parallel to the transformer, fused by ``fusion`` (``alpha`` for plus)."""

    fusion: str = "trainable_plus"
    alpha: float = 0.5


@dataclass(frozen=True)
class CatConfig(_FrontEndConfig):
    """CAT: CNN and (1-D conv + BiLSTM) branches joined by cross-attention ``cross``; no transformer stack."""

    cross: str = "both"
    reduce_stride: int = 4
    reduce_channels: int = 128


#: Every field the four models shared before each got its own config (checkpoints may hold all of them).
_SHARED_FIELDS = ("conv_channels", "conv_dropout", "d_model", "heads", "layers", "ff_dim", "dropout", "positional",
                  "lstm_hidden", "fusion", "alpha", "cross", "reduce_stride", "reduce_channels")


class ConvFrontEnd(nn.Module):
    """Conv blocks over (bands x frames): (B, T, D) -> sequence (B, T / 2^blocks, d_model) + lengths."""

    def __init__(self, input_dim: int, channels: list[int], dropout: float, d_model: int):
        super().__init__()
        blocks, cin, bands = [], 1, input_dim
        for cout in channels:
            blocks.append(nn.ModuleList([Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                         nn.AvgPool2d(2), nn.Dropout(dropout)]))
            cin, bands = cout, max(1, bands // 2)
        self.blocks = nn.ModuleList(blocks)
        self.project = nn.Linear(cin * bands, d_model)

    def forward(self, feats, lengths):
        x = zero_padding(feats.transpose(1, 2).unsqueeze(1), lengths)  # (B, 1, D, T)
        for conv, bn, pool, drop in self.blocks:
            x = zero_padding(torch.relu(bn(conv(x))), lengths)
            x = pool(x) if x.shape[2] > 1 else nn.functional.avg_pool2d(x, (1, 2))
            lengths = conv_lengths(lengths, 2, 2)
            x = zero_padding(drop(x), lengths)
        seq = x.flatten(1, 2).transpose(1, 2)  # (B, T', C * bands)
        return self.project(seq), lengths


def _front(config, input_dim):
    return ConvFrontEnd(input_dim, list(config.conv_channels), config.conv_dropout, config.d_model)


def _encoder(config, dim):
    return TransformerEncoder(dim, layers=config.layers, heads=config.heads, ff_dim=config.ff_dim,
                              dropout=config.dropout, positional=config.positional)


class CnnTransformer(nn.Module):
    """CNN -> (BiLSTM ->) Transformer -> mean over time -> FC."""

    with_lstm = False

    def __init__(self, config: CnnTransformerConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        self.cnn = _front(config, input_dim)
        dim = config.d_model
        if self.with_lstm:
            self.lstm = nn.LSTM(dim, config.lstm_hidden, batch_first=True, bidirectional=True)
            dim = 2 * config.lstm_hidden
        self.transformer = _encoder(config, dim)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, feats, lengths):
        x, lengths = self.cnn(feats, lengths)
        if self.with_lstm:
            x, _ = run_lstm(self.lstm, x, lengths)
        return self.fc(masked_mean(self.transformer(x, lengths), lengths))


class CnnLstmTransformer(CnnTransformer):
    with_lstm = True


class Ilt(nn.Module):
    """ILT: CNN -> [BiLSTM + attention pooling] || [Transformer + mean] -> fusion -> FC."""

    def __init__(self, config: IltConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        self.cnn = _front(config, input_dim)
        self.lstm = nn.LSTM(config.d_model, config.lstm_hidden, batch_first=True, bidirectional=True)
        self.pool = AttentionPooling(2 * config.lstm_hidden)
        self.lstm_out = nn.Linear(2 * config.lstm_hidden, config.d_model)
        self.transformer = _encoder(config, config.d_model)
        self.weights = nn.Parameter(torch.zeros(2)) if config.fusion == "trainable_plus" else None
        width = 2 * config.d_model if config.fusion == "concat" else config.d_model
        self.fc = nn.Linear(width, num_classes)

    def forward(self, feats, lengths):
        x, lengths = self.cnn(feats, lengths)
        h, _ = run_lstm(self.lstm, x, lengths)
        lstm_vec = self.lstm_out(self.pool(h, lengths))
        trans_vec = masked_mean(self.transformer(x, lengths), lengths)
        if self.config.fusion == "concat":
            fused = torch.cat([lstm_vec, trans_vec], dim=-1)
        elif self.config.fusion == "plus":
            fused = self.config.alpha * lstm_vec + (1 - self.config.alpha) * trans_vec
        else:
            w = torch.softmax(self.weights, dim=0)
            fused = w[0] * lstm_vec + w[1] * trans_vec
        return self.fc(fused)


class Cat(nn.Module):
    """CAT: CNN and (1-D conv + LSTM) in parallel, cross-attention both ways, outputs added -> FC."""

    def __init__(self, config: CatConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        self.cnn = _front(config, input_dim)
        k = config.reduce_stride
        self.reduce = Conv1d(input_dim, config.reduce_channels, 2 * k, stride=k, padding=k // 2)
        self.lstm = nn.LSTM(config.reduce_channels, config.d_model // 2, batch_first=True, bidirectional=True)
        layer = lambda: CrossAttentionLayer(config.d_model, heads=config.heads, ff_dim=config.ff_dim,  # noqa: E731
                                            dropout=config.dropout)
        self.c2l = layer() if config.cross in ("both", "c2l") else None
        self.l2c = layer() if config.cross in ("both", "l2c") else None
        self.fc = nn.Linear(config.d_model, num_classes)

    def forward(self, feats, lengths):
        c, c_lengths = self.cnn(feats, lengths)
        k = self.config.reduce_stride
        r = torch.relu(self.reduce(zero_padding(feats.transpose(1, 2), lengths)))
        r_lengths = conv_lengths(lengths, 2 * k, k, k // 2)
        r = zero_padding(r, r_lengths).transpose(1, 2)
        h, _ = run_lstm(self.lstm, r, r_lengths)
        out = 0
        if self.c2l is not None:
            out = out + masked_mean(self.c2l(c, c_lengths, h, r_lengths), c_lengths)
        if self.l2c is not None:
            out = out + masked_mean(self.l2c(h, r_lengths, c, c_lengths), r_lengths)
        return self.fc(out)


#: Speaker normalisation chosen on the RAVDESS 4-fold pooled UA (bench/results.py): cnn_transformer 0.387 with
#: global normalisation, 0.434 with speaker normalisation (ilt 0.381 and cat 0.405 with global).
DEFAULT_RECIPE = {"epochs": 30, "lr": 5e-4, "norm": "speaker"}
#: Sec. 4: Adam 1e-4, betas (0.9, 0.99), batch 40, 100 epochs.
PAPER_RECIPE = {"optimizer": "adam", "schedule": "constant", "label_smoothing": 0.0, "specaugment": False,
                "random_crop": False, "selection": "best", "weight_decay": 0.0, "norm": "global", "lr": 1e-4,
                "beta2": 0.99, "batch_size": 40, "epochs": 100, "patience": 30}

#: Why these models do not export to ONNX with torch 2.13 (they export to TorchScript).
ONNX_UNSUPPORTED = ("torch.export fixes an LSTM's sequence length to the example's (the graph would accept one clip "
                    "length only), and the TorchScript-based ONNX exporter fixes nn.MultiheadAttention's reshapes; "
                    "this model has both")

for _name, _cls, _config, _onnx in (("cnn_transformer", CnnTransformer, CnnTransformerConfig, ""),
                                    ("cnn_lstm_transformer", CnnLstmTransformer, CnnLstmTransformerConfig,
                                     ONNX_UNSUPPORTED),
                                    ("ilt", Ilt, IltConfig, ONNX_UNSUPPORTED), ("cat", Cat, CatConfig, ONNX_UNSUPPORTED)):
    register_model(_name, _config, features="transformer_logmel", recipe=DEFAULT_RECIPE,
                   paper_recipe=PAPER_RECIPE, onnx_unsupported=_onnx)(_cls)
