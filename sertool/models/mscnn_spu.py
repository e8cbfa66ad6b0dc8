"""MSCNN-SPU and MSCNN-SPU-ATT, audio branch (Peng et al., "Efficient speech
emotion recognition using multi-scale CNN and attention", ICASSP 2021;
../shared/papers/001_d24be2ec471cd2e3.txt).

Input: 32 MFCC + deltas + delta-deltas (96-dim, 25 ms / 10 ms; the
``mscnn_mfcc96`` preset). Pipeline:

- Multi-scale CNN (Sec. 3.1): parallel single-layer convolutions over time,
  each kernel spanning the full feature dimension (s x d), 128 filters per
  kernel size, ReLU.
- Statistical pooling unit (Sec. 3.2): global max, mean and std over time
  of every branch, concatenated.
- Optional speaker embedding (Sec. 4, "x-vector"): with ``speaker_dim > 0``
  the LAST ``speaker_dim`` input columns hold an utterance-level vector
  (repeated on every frame, e.g. a speaker-embedding store joined to the
  audio features); it is taken from the first frame and appended after the
  audio SPU.
- Attention (Sec. 3.3), ``mscnn_spu_att``: the paper attends from the audio
  SPU vectors (queries) over the TEXT feature maps. This audio-only variant
  attends from each SPU statistic (max, mean, std; projected) over the
  audio multi-scale feature maps instead, and appends the three context
  vectors. The text branch and SWEM are not implemented (no transcripts or
  word embeddings here).
- Classifier: dropout 0.3, a fully connected layer with ReLU, linear output.
  Training (Sec. 4): Adam lr 5e-4, gradient-norm clip 1, batch 64.

Choices the paper leaves open (config fields): kernel sizes 3, 5, 7, 9
frames ("same" padding, masked, so every branch keeps the input length),
FC width 256, attention width 128.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sertool.errors import ConfigError
from sertool.models.registry import register_model
from sertool.models.common import Conv1d, statistics_pooling, time_mask, zero_padding


@dataclass(frozen=True)
class MscnnSpuConfig:
    kernel_sizes: tuple[int, ...] = (3, 5, 7, 9)
    filters: int = 128
    fc_units: int = 256
    dropout: float = 0.3
    speaker_dim: int = 0
    attention: bool = False
    attention_dim: int = 128

    def __post_init__(self):
        if not self.kernel_sizes or min(self.kernel_sizes) < 1 or self.filters < 1 or self.fc_units < 1:
            raise ConfigError("mscnn_spu kernel_sizes, filters and fc_units must be positive (and at least one kernel)")
        if self.speaker_dim < 0:
            raise ConfigError(f"mscnn_spu speaker_dim {self.speaker_dim} must be >= 0")


class MscnnSpu(nn.Module):
    """``forward(feats (B, T, D), lengths) -> logits (B, C)``."""

    def __init__(self, config: MscnnSpuConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config = config
        audio_dim = input_dim - config.speaker_dim
        if audio_dim < 1:
            raise ConfigError(f"speaker_dim {config.speaker_dim} leaves no audio columns of {input_dim}")
        kernels = list(config.kernel_sizes)
        self.branches = nn.ModuleList(Conv1d(audio_dim, config.filters, k, padding=k // 2) for k in kernels)
        self.kernels = kernels
        width = 3 * config.filters * len(kernels)
        maps = config.filters * len(kernels)
        if config.attention:
            self.query = nn.Linear(config.filters * len(kernels), config.attention_dim)
            self.key = nn.Linear(maps, config.attention_dim)
            width += 3 * maps
        width += config.speaker_dim
        self.classifier = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(width, config.fc_units), nn.ReLU(),
                                        nn.Dropout(config.dropout), nn.Linear(config.fc_units, num_classes))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        speaker_dim = self.config.speaker_dim
        audio = feats[..., : feats.shape[-1] - speaker_dim] if speaker_dim else feats
        x = zero_padding(audio.transpose(1, 2), lengths)
        maps = [zero_padding(torch.relu(conv(x))[..., : x.shape[-1]], lengths) for conv in self.branches]
        seqs = [m.transpose(1, 2) for m in maps]  # (B, T, filters) each
        pooled = [statistics_pooling(s, lengths) for s in seqs]  # (B, 3 * filters) each
        parts = list(pooled)
        if self.config.attention:
            f = self.config.filters
            stats = [torch.cat([p[:, k * f:(k + 1) * f] for p in pooled], dim=-1) for k in range(3)]
            memory = torch.cat(seqs, dim=-1)  # (B, T, filters * branches)
            keys = torch.tanh(self.key(memory))
            valid = time_mask(lengths, memory.shape[1])
            for stat in stats:  # max, mean, std as queries
                scores = (keys @ self.query(stat).unsqueeze(-1)).squeeze(-1)
                weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
                parts.append((weights.unsqueeze(-1) * memory).sum(1))
        if speaker_dim:
            parts.append(feats[:, 0, -speaker_dim:])
        return self.classifier(torch.cat(parts, dim=-1))


DEFAULT_RECIPE = {"epochs": 40, "lr": 1e-3, "grad_clip": 1.0}
#: Sec. 3: Adam 5e-4, gradient-norm clip 1, batch 64 (epochs not given: 100 with patience 30).
PAPER_RECIPE = {"optimizer": "adam", "schedule": "constant", "label_smoothing": 0.0, "specaugment": False, "random_crop": False, "selection": "best", "weight_decay": 0.0, "norm": "global", "lr": 5e-4, "grad_clip": 1.0, "batch_size": 64, "epochs": 100, "patience": 30}

register_model("mscnn_spu", MscnnSpuConfig, features="mscnn_mfcc96", recipe=DEFAULT_RECIPE,
               paper_recipe=PAPER_RECIPE, takes_utterance_vector=True)(MscnnSpu)


@dataclass(frozen=True)
class MscnnSpuAttConfig(MscnnSpuConfig):
    attention: bool = True


register_model("mscnn_spu_att", MscnnSpuAttConfig, features="mscnn_mfcc96", recipe=DEFAULT_RECIPE,
               paper_recipe=PAPER_RECIPE, takes_utterance_vector=True)(type("MscnnSpuAtt", (MscnnSpu,), {}))
