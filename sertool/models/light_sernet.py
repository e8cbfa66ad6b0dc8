"""LIGHT-SERNET (Aftab et al., "LIGHT-SERNET: A lightweight fully convolutional
neural network for speech emotion recognition", ICASSP 2022;
../shared/papers/004_5ecc6bcb44bd91bc.txt).

Input: the ``lightsernet_mfcc`` features (40 MFCC, 64 ms / 16 ms), fixed to
``input_frames`` (184 = 3 s; 434 = 7 s) by centre-cropping longer and
zero-padding shorter utterances (Sec. 2.1, 3). Layout inside the network:
(B, 1, coefficients, frames), so 9x1 kernels span coefficients ("spectral")
and 1x11 kernels span frames ("temporal").

- Body I (Sec. 2.2, Fig. 1): three parallel Conv2d paths, 32 filters each,
  kernels 9x1, 1x11, 3x3, "same" padding; each BN, ReLU, AvgPool 2x2;
  concatenated to 96 channels.
- Body II (Sec. 2.3, Fig. 1): LFLBs = Conv (no bias) + BN + ReLU + AvgPool:
  64 ch 3x3 pool 2x2; 96 ch 3x3 pool 2x2; 128 ch 3x3 pool 2x1; 160 ch 3x3
  pool 2x1; 320 ch 1x1 then global average pooling.
- Head (Sec. 2.4): dropout 0.3, linear to the classes (softmax in the loss).

Training (Sec. 3, the authors' code): Adam lr 1e-4, L2 1e-6 on conv kernels,
batch 32, 300 epochs, lr x e^-0.15 every 20 epochs from epoch 50, CE or
focal loss (gamma 2). About 0.46 M parameters.

Deviations and choices (the paper is silent or ambiguous):
- "pool 2x1" in LFLBs 3-4 is taken as pooling over the coefficient axis
  only (first axis of the 2x1 kernel), keeping time resolution; the pooled
  axis does not change the parameter count. Config field ``lflb_pools``.
- Convolutions of Body I have biases (followed by BN, as in the authors' code).
- L2 on kernels is Adam's coupled weight decay on conv weights (train config
  ``weight_decay``), equivalent to the Keras kernel regulariser up to a factor 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sertool.errors import ConfigError
from sertool.models.registry import register_model
from sertool.models.common import Conv2d, fix_length


@dataclass(frozen=True)
class LightSernetConfig:
    """Every LIGHT-SERNET hyperparameter (see the module docstring for sources)."""

    input_frames: int = 184
    path_filters: int = 32
    #: (frequency x time) kernel of each parallel path
    path_kernels: tuple[tuple[int, int], ...] = ((9, 1), (1, 11), (3, 3))
    lflb_channels: tuple[int, ...] = (64, 96, 128, 160, 320)
    lflb_kernels: tuple[tuple[int, int], ...] = ((3, 3), (3, 3), (3, 3), (3, 3), (1, 1))
    #: average-pool size after each LFLB but the last, which ends in global average pooling
    lflb_pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1), (2, 1))
    dropout: float = 0.3

    def __post_init__(self):
        blocks = len(self.lflb_channels)
        if not self.path_kernels or blocks < 1:
            raise ConfigError("light_sernet needs at least one path kernel and one LFLB channel count")
        if len(self.lflb_kernels) != blocks or len(self.lflb_pools) != blocks - 1:
            raise ConfigError(f"light_sernet: {blocks} lflb_channels need {blocks} lflb_kernels and {blocks - 1} "
                              f"lflb_pools (the last block ends in global pooling); got {len(self.lflb_kernels)} "
                              f"and {len(self.lflb_pools)}")
        sizes = [v for pair in (*self.path_kernels, *self.lflb_kernels, *self.lflb_pools) for v in pair]
        if min(sizes) < 1 or min(self.lflb_channels) < 1 or self.path_filters < 1 or self.input_frames < 1:
            raise ConfigError("light_sernet kernel, pool, channel and frame counts must be positive")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"light_sernet dropout {self.dropout} must be in [0, 1)")

    @staticmethod
    def upgrade(values: dict) -> dict:
        """Checkpoints before typed configs wrote ``lflb_pools`` as ``"2x2,...,gap"``."""
        pools = values.get("lflb_pools")
        if isinstance(pools, str) and pools.replace(" ", "").split(",")[-1] == "gap":
            values = {**values, "lflb_pools": ",".join(pools.replace(" ", "").split(",")[:-1])}
        return values


def _conv_bn_relu(cin: int, cout: int, kernel: tuple[int, int], *, bias: bool) -> list[nn.Module]:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return [Conv2d(cin, cout, kernel, padding=padding, bias=bias), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class LightSernet(nn.Module):
    """LIGHT-SERNET; ``forward(feats (B, T, D), lengths (B,)) -> logits (B, C)``."""

    def __init__(self, config: LightSernetConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        kernels, channels, lflb_kernels = config.path_kernels, config.lflb_channels, config.lflb_kernels
        pools = (*config.lflb_pools, None)  # None: global average pooling
        self.paths = nn.ModuleList(
            nn.Sequential(*_conv_bn_relu(1, config.path_filters, k, bias=True), nn.AvgPool2d(2, ceil_mode=True))
            for k in kernels
        )
        layers: list[nn.Module] = []
        cin = config.path_filters * len(kernels)
        for cout, kernel, pool in zip(channels, lflb_kernels, pools):
            layers += _conv_bn_relu(cin, cout, kernel, bias=False)
            layers.append(nn.AdaptiveAvgPool2d(1) if pool is None else nn.AvgPool2d(pool, ceil_mode=True))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(config.dropout), nn.Linear(cin, num_classes))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = fix_length(feats, lengths, self.config.input_frames)  # (B, frames, D)
        x = x.transpose(1, 2).unsqueeze(1)  # (B, 1, D, frames)
        x = torch.cat([path(x) for path in self.paths], dim=1)
        return self.head(self.body(x))


#: Measured on RAVDESS 01-16, 4 speaker folds (README, "Results"): speaker normalisation +0.9 UA points over global.
DEFAULT_RECIPE = {"epochs": 40, "lr": 2e-3, "weight_decay": 1e-3, "norm": "speaker"}
#: Sec. 3 and the authors' code: Adam 1e-4, L2 1e-6 on kernels, x e^-0.15 every 20 epochs from 50, 300 epochs.
PAPER_RECIPE = {"epochs": 300, "optimizer": "adam", "lr": 1e-4, "weight_decay": 1e-6, "decay_params": "conv",
                "schedule": "step", "patience": 30, "label_smoothing": 0.0, "specaugment": False,
                "random_crop": False, "selection": "best", "norm": "global"}

register_model("light_sernet", LightSernetConfig, features="lightsernet_mfcc", recipe=DEFAULT_RECIPE,
               paper_recipe=PAPER_RECIPE, fixed_frames=True)(LightSernet)
