"""Downstream head for self-supervised encoder features (``--features ssl``), as in SUPERB and EmoBox.

Input: frame-level ``ssl`` features. With ``layers = "all"`` stores, the
frame holds every hidden state side by side, ``(T, S x H)``; the head learns
a softmax-weighted sum of the S states (initialised equal), then pools over
time (masked mean, or additive attention with ``pooling = "attention"``)
and classifies with a small MLP (``hidden`` units, ReLU, dropout). With a
single stored layer (S = 1) the weighting is skipped. ``layers`` (S) is set
from the store when training (the encoder's hidden-state count); pass
``--set layers=S`` only to override it. Utterance-level ``ssl`` stores
(``pooling = mean`` / ``mean_std``) go to the classic models instead
(``--model mlp``, ``svm``, ``logreg``).

Default recipe: AdamW 1e-3, one-cycle, 30 epochs, no SpecAugment (the
features are not spectra), global normalisation; not tuned on real encoders
here (no encoder weights can be downloaded on the development machines).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sertool.errors import ConfigError
from sertool.features import build_extractor
from sertool.models.registry import register_model
from sertool.models.common import AttentionPooling, masked_mean


@dataclass(frozen=True)
class SslHeadConfig:
    #: hidden states stacked side by side in each frame (S); 1 for a single-layer store
    layers: int = 1
    #: "mean" (masked mean over frames) or "attention" (additive attention pooling)
    pooling: str = "mean"
    hidden: tuple[int, ...] = (256,)
    dropout: float = 0.2

    def __post_init__(self):
        if self.layers < 1 or min(self.hidden, default=1) < 1:
            raise ConfigError("ssl_head layers and hidden sizes must be positive")
        if self.pooling not in ("mean", "attention"):
            raise ConfigError(f"ssl_head pooling {self.pooling!r} must be mean or attention")


class SslHead(nn.Module):
    """Weighted sum of layers -> pooling over time -> MLP; ``forward(feats (B, T, S*H), lengths) -> (B, C)``."""

    def __init__(self, config: SslHeadConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        if input_dim % config.layers:
            raise ConfigError(f"ssl_head: {input_dim} features per frame do not split into {config.layers} layers")
        self.config = config
        self.width = input_dim // config.layers
        self.layer_weights = nn.Parameter(torch.zeros(config.layers)) if config.layers > 1 else None
        self.pool = AttentionPooling(self.width) if config.pooling == "attention" else None
        layers, width = [], self.width
        for units in config.hidden:
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(config.dropout)]
            width = units
        self.classifier = nn.Sequential(*layers, nn.Linear(width, num_classes))

    def layer_mixture(self) -> torch.Tensor:
        """The learnt weight of each hidden state, ``(S,)``, summing to 1."""
        if self.layer_weights is None:
            return torch.ones(1)
        return torch.softmax(self.layer_weights, dim=0)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, frames, _ = feats.shape
        x = feats
        if self.layer_weights is not None:
            x = (feats.reshape(batch, frames, self.config.layers, self.width)
                 * self.layer_mixture()[None, None, :, None]).sum(dim=2)
        pooled = self.pool(x, lengths) if self.pool is not None else masked_mean(x, lengths)
        return self.classifier(pooled)


def layers_from_features(feature_config: dict) -> dict:
    """Model overrides from the store's feature config: S = the encoder's hidden states for ``layers = "all"``."""
    if feature_config.get("type") != "ssl" or feature_config.get("layers") != "all":
        return {}
    return {"layers": build_extractor(feature_config).hidden_states}


register_model("ssl_head", SslHeadConfig, features="ssl", adapt=layers_from_features,
               recipe={"epochs": 30, "lr": 1e-3, "specaugment": False, "random_crop": False, "norm": "global"},
               paper_recipe={"epochs": 30, "lr": 1e-4, "optimizer": "adam", "schedule": "constant",
                             "specaugment": False, "random_crop": False, "label_smoothing": 0.0,
                             "weight_decay": 0.0, "selection": "best", "norm": "global"})(SslHead)
