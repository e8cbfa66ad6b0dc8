"""Building blocks shared by the models: fixed-length crop/pad, focal loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fix_length(feats: torch.Tensor, lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Centre-crop or zero-pad every utterance to ``frames`` frames.

    ``feats`` (B, T, D) with valid frames ``[:lengths[b]]`` -> (B, frames, D).
    Longer utterances keep their middle ``frames``; shorter ones are padded
    with zeros at the end. Batch padding beyond ``lengths`` is ignored, so the
    result does not depend on how much padding the batch had.
    """
    batch, _, dim = feats.shape
    out = feats.new_zeros(batch, frames, dim)
    for b in range(batch):
        n = int(lengths[b])
        if n >= frames:
            start = (n - frames) // 2
            out[b] = feats[b, start:start + frames]
        else:
            out[b, :n] = feats[b, :n]
    return out


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017): mean of ``-(1 - p_t)^gamma log p_t``."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()
