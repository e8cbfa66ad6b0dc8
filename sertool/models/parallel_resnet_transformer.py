"""Parallel ResNet, CNN and Transformer branches (Han et al., "Speech emotion
recognition based on a parallel neural network of ResNet, CNN and
Transformer"; ../shared/papers/000_8de027a3ffc3358d.txt).

Input: the ``resnet_transformer_map`` preset (40 MFCC + 40 log-Mel at 48 kHz,
3 s -> 282 frames), seen as a one-channel image (feature rows x frames).
Three branches, concatenated, then a linear layer (softmax in the loss):

- ResNet branch (Sec. 3.2): resnet18-like: 7x7/2 stem conv, 3x3/2 max-pool,
  four stages of two basic blocks (64, 128, 256, 512 channels; strides 1,
  2, 2, 2; resnet18's kernels and paddings), GELU instead of ReLU, dropout
  between stages; global average pooling -> 512.
- CNN branch (Sec. 3.3): 3 x (Conv 3x3, BatchNorm, GELU, MaxPool, Dropout
  0.5), max-pool kernel/stride 2 in the first block and 4 in the second and
  third; flattened -> channels x remaining rows, averaged over time.
- Transformer branch (Sec. 3.4): max-pool over time first (282 -> 70 frames
  with ``pool`` 4), 4 encoder layers with multi-head self-attention, GELU,
  dropout 0.4, then the mean over time (a feature-row-sized vector).
- Training (Sec. 4): cross-entropy, SGD, 500 epochs, two white-noise copies
  per utterance (``sertool augment``).

Choices the paper leaves open (config fields): CNN branch channels 16, 32,
64; ResNet stage dropout 0.2; 4 attention heads (the feature rows, 80 here,
must divide by it); feed-forward width 512. Padding frames are masked in
every branch (the paper uses fixed 3 s inputs), so variable lengths work.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sertool.errors import ConfigError
from sertool.models.registry import register_model
from sertool.models.common import Conv2d, TransformerEncoder, conv_lengths, exporting, masked_mean, zero_padding


@dataclass(frozen=True)
class ParallelResnetTransformerConfig:
    resnet_channels: tuple[int, ...] = (64, 128, 256, 512)
    resnet_dropout: float = 0.2
    cnn_channels: tuple[int, ...] = (16, 32, 64)
    #: max-pool size after each CNN block (one per cnn_channels entry)
    cnn_pools: tuple[int, ...] = (2, 4, 4)
    cnn_dropout: float = 0.5
    transformer_pool: int = 4
    transformer_layers: int = 4
    transformer_heads: int = 4
    transformer_ff: int = 512
    transformer_dropout: float = 0.4

    def __post_init__(self):
        if not self.resnet_channels or len(self.cnn_channels) != len(self.cnn_pools):
            raise ConfigError(f"parallel_resnet_transformer needs resnet_channels and one cnn_pools entry per "
                              f"cnn_channels entry (got {len(self.cnn_channels)} and {len(self.cnn_pools)})")
        if min((*self.resnet_channels, *self.cnn_channels, *self.cnn_pools, self.transformer_pool,
                self.transformer_layers, self.transformer_heads, self.transformer_ff)) < 1:
            raise ConfigError("parallel_resnet_transformer sizes must be positive")


class _BasicBlock(nn.Module):
    """resnet18 basic block with GELU, on (B, C, rows, T) with time lengths."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.stride = stride
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x, lengths):
        out_lengths = conv_lengths(lengths, 3, self.stride, 1)
        y = zero_padding(nn.functional.gelu(self.bn1(self.conv1(x))), out_lengths)
        y = self.bn2(self.conv2(y))
        skip = x if self.down is None else self.down(x)
        return zero_padding(nn.functional.gelu(y + skip), out_lengths), out_lengths


class ParallelResnetTransformer(nn.Module):
    """``forward(feats (B, T, D), lengths) -> logits (B, C)``."""

    def __init__(self, config: ParallelResnetTransformerConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        channels = list(config.resnet_channels)
        self.stem = nn.Sequential(Conv2d(1, channels[0], 7, stride=2, padding=3, bias=False),
                                  nn.BatchNorm2d(channels[0]))
        self.stages = nn.ModuleList()
        cin = channels[0]
        for i, cout in enumerate(channels):
            self.stages.append(nn.ModuleList([_BasicBlock(cin, cout, 1 if i == 0 else 2), _BasicBlock(cout, cout, 1)]))
            cin = cout
        self.stage_dropout = nn.Dropout(config.resnet_dropout)
        cnn_channels = list(config.cnn_channels)
        self.cnn_pools = list(config.cnn_pools)
        self.cnn = nn.ModuleList()
        cin, rows = 1, input_dim
        for cout, pool in zip(cnn_channels, self.cnn_pools):
            self.cnn.append(nn.ModuleList([Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout),
                                           nn.Dropout(config.cnn_dropout)]))
            cin, rows = cout, max(1, rows // pool)
        cnn_width = cin * rows
        self.transformer = TransformerEncoder(input_dim, layers=config.transformer_layers,
                                              heads=config.transformer_heads, ff_dim=config.transformer_ff,
                                              dropout=config.transformer_dropout, activation="gelu")
        self.fc = nn.Linear(channels[-1] + cnn_width + input_dim, num_classes)

    def _resnet(self, image, lengths):
        x = zero_padding(self.stem(image), lengths := conv_lengths(lengths, 7, 2, 3))
        x = zero_padding(nn.functional.gelu(x), lengths)
        x = nn.functional.max_pool2d(x, 3, 2, 1)
        lengths = conv_lengths(lengths, 3, 2, 1)
        x = zero_padding(x, lengths)
        for i, (first, second) in enumerate(self.stages):
            if i:
                x = self.stage_dropout(x)
            x, lengths = first(x, lengths)
            x, lengths = second(x, lengths)
        return masked_mean(x.mean(dim=2).transpose(1, 2), lengths)  # over rows, then valid frames

    def _cnn(self, image, lengths):
        x = image
        for (conv, bn, drop), pool in zip(self.cnn, self.cnn_pools):
            x = zero_padding(nn.functional.gelu(bn(conv(x))), lengths)
            row_pool = min(pool, x.shape[2])
            x = nn.functional.max_pool2d(x, (row_pool, pool))
            lengths = conv_lengths(lengths, pool, pool)
            x = zero_padding(drop(x), lengths)
        return masked_mean(x.flatten(1, 2).transpose(1, 2), lengths)

    def _transformer(self, feats, lengths):
        k = self.config.transformer_pool
        x = nn.functional.max_pool1d(zero_padding(feats.transpose(1, 2), lengths), k, ceil_mode=False)
        lengths = conv_lengths(lengths, k, k)
        seq = zero_padding(x, lengths).transpose(1, 2)
        return masked_mean(self.transformer(seq, lengths), lengths)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if feats.shape[1] < 32 and not exporting():
            # the ResNet strides need a few frames; pad (masked) short inputs (exported graphs take >= 32)
            feats = nn.functional.pad(feats, (0, 0, 0, 32 - feats.shape[1]))
        image = zero_padding(feats.transpose(1, 2).unsqueeze(1), lengths)  # (B, 1, D, T)
        return self.fc(torch.cat([self._resnet(image, lengths), self._cnn(image, lengths),
                                  self._transformer(feats, lengths)], dim=-1))


register_model("parallel_resnet_transformer", ParallelResnetTransformerConfig, features="resnet_transformer_map",
               recipe={"epochs": 30, "lr": 1e-3}, min_frames=32,
               onnx_unsupported=("torch.export fixes the frame count of its 2-D ResNet branch to the example's, and the "
                                 "TorchScript-based ONNX exporter fixes nn.MultiheadAttention's reshapes"),
               paper_recipe={"schedule": "constant", "label_smoothing": 0.0, "specaugment": False, "random_crop": False, "selection": "best", "weight_decay": 0.0, "norm": "global", "optimizer": "sgd", "lr": 0.01, "epochs": 500, "patience": 50})(ParallelResnetTransformer)
