"""Building blocks shared by the models.

Fixed-length crop/pad, focal loss, length arithmetic and masks, masked
pooling (mean, std, max, statistics, attention), transformer encoders with
padding masks and optional positional encoding, cross-attention, and packed
LSTMs. Every block ignores frames beyond ``lengths``, which is what makes
each model's output independent of batch padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def fast_layout(model: nn.Module) -> nn.Module:
    """``model`` with its 4-D weights in channels-last layout (in place; returns it).

    oneDNN's 2-D convolutions and pooling run faster on channels-last
    tensors: a LIGHT-SERNET training step (batch 32, 184 x 40) took 148 ms
    instead of 212 ms on 2 cores, cnn_transformer 167 instead of 208 ms,
    MSCNN-SPU the same (``bench/bench_train.py``). Outputs agree to float
    rounding; models without 4-D weights are unchanged.
    """
    return model.to(memory_format=torch.channels_last)



class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` whose kernel takes weight decay under ``TrainConfig.decay_params = "conv"``."""

    decay_kernels = True


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` whose kernel takes weight decay under ``TrainConfig.decay_params = "conv"``."""

    decay_kernels = True

def fix_length(feats: torch.Tensor, lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """Centre-crop or zero-pad every utterance to ``frames`` frames.

    ``feats`` (B, T, D) with valid frames ``[:lengths[b]]`` -> (B, frames, D).
    Longer utterances keep their middle ``frames``; shorter ones are padded
    with zeros at the end. Batch padding beyond ``lengths`` is ignored, so the
    result does not depend on how much padding the batch had.
    """
    batch, total, dim = feats.shape
    # One gather instead of a loop over the batch: no Python control flow on lengths, so the
    # function traces and exports (ONNX, TorchScript) for any batch size and length.
    lengths = lengths.to(feats.device).clamp(max=total)
    start = torch.div(lengths - frames, 2, rounding_mode="floor").clamp(min=0)
    index = start[:, None] + torch.arange(frames, device=feats.device)[None, :]  # (B, frames)
    valid = index < lengths[:, None]
    picked = feats.gather(1, index.clamp(max=total - 1)[:, :, None].expand(batch, frames, dim))
    return torch.where(valid[:, :, None], picked, torch.zeros((), dtype=feats.dtype, device=feats.device))


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0) -> torch.Tensor:
    """Focal loss (Lin et al., ICCV 2017): mean of ``-(1 - p_t)^gamma log p_t``."""
    log_p = F.log_softmax(logits, dim=-1).gather(1, target[:, None]).squeeze(1)
    return (-(1 - log_p.exp()) ** gamma * log_p).mean()


# --------------------------------------------------------------------------- masks and lengths
def time_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, frames) bool, True on valid frames."""
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def conv_lengths(lengths: torch.Tensor, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1):
    """Output lengths of a conv/pool over time (floor mode), at least 1."""
    out = torch.div(lengths + 2 * padding - dilation * (kernel - 1) - 1, stride, rounding_mode="floor") + 1
    return out.clamp(min=1)


def zero_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the frames beyond ``lengths`` on the LAST axis of ``x`` (B, ..., T)."""
    mask = time_mask(lengths, x.shape[-1])
    return x * mask.view(mask.shape[0], *([1] * (x.dim() - 2)), mask.shape[1]).to(x.dtype)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """Batch norm over ``(B, C, T)`` whose training statistics come from the valid frames only.

    ``nn.BatchNorm1d`` averages over every frame, batch padding included, so
    its statistics depend on how much padding each batch has, and the running
    averages used at test time drift from what training saw (a DRN that fit
    64 clips perfectly with batch statistics scored 0.66 with its running
    ones). Here the mean and variance are taken over ``[:lengths[b]]`` of each
    item; at evaluation it is a plain batch norm with the running statistics.
    Same parameters and buffers as ``nn.BatchNorm1d``, so its checkpoints load.
    """

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if lengths is None or not self.training:
            return super().forward(x)
        mask = time_mask(lengths.to(x.device), x.shape[-1])[:, None, :].to(x.dtype)  # (B, 1, T)
        count = mask.sum()
        mean = (x * mask).sum((0, 2)) / count
        var = (((x - mean[None, :, None]) * mask) ** 2).sum((0, 2)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                # momentum None: the cumulative average over batches, as nn.BatchNorm1d does
                momentum = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean)
                self.running_var.mul_(1 - momentum).add_(momentum * unbiased)
        y = (x - mean[None, :, None]) * torch.rsqrt(var[None, :, None] + self.eps)
        return y * self.weight[None, :, None] + self.bias[None, :, None] if self.affine else y


# --------------------------------------------------------------------------- pooling over time
def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over valid frames: x (B, T, C) -> (B, C)."""
    mask = time_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
    return (x * mask).sum(1) / mask.sum(1).clamp(min=1)


def masked_std(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Standard deviation over valid frames: (B, T, C) -> (B, C)."""
    mean = masked_mean(x, lengths)
    mask = time_mask(lengths, x.shape[1]).unsqueeze(-1).to(x.dtype)
    var = (((x - mean[:, None]) * mask) ** 2).sum(1) / mask.sum(1).clamp(min=1)
    return (var + 1e-8).sqrt()


def masked_max(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Maximum over valid frames: (B, T, C) -> (B, C)."""
    mask = time_mask(lengths, x.shape[1]).unsqueeze(-1)
    return x.masked_fill(~mask, float("-inf")).amax(1)


def statistics_pooling(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """[max | mean | std] over valid frames: (B, T, C) -> (B, 3C) (the SPU of MSCNN-SPU)."""
    return torch.cat([masked_max(x, lengths), masked_mean(x, lengths), masked_std(x, lengths)], dim=-1)


class AttentionPooling(nn.Module):
    """Additive attention over time: ``a_t = softmax(v . tanh(W h_t))``, output ``sum_t a_t h_t``."""

    def __init__(self, dim: int, hidden: int = 128):
        super().__init__()
        self.proj = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        scores = self.score(torch.tanh(self.proj(x))).squeeze(-1)
        scores = scores.masked_fill(~time_mask(lengths, x.shape[1]), float("-inf"))
        return (torch.softmax(scores, dim=1).unsqueeze(-1) * x).sum(1)


# --------------------------------------------------------------------------- transformer blocks
class PositionalEncoding(nn.Module):
    """Sinusoidal positional encoding (Vaswani et al., 2017) added to (B, T, d)."""

    def __init__(self, dim: int, max_len: int = 10000):
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
        table = torch.zeros(max_len, dim)
        table[:, 0::2] = torch.sin(position * div)
        table[:, 1::2] = torch.cos(position * div[: dim // 2])
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]]


class TransformerEncoder(nn.Module):
    """Stack of self-attention encoder layers with padding masks, optional positional encoding."""

    def __init__(self, dim: int, *, layers: int, heads: int, ff_dim: int, dropout: float,
                 activation: str = "relu", positional: bool = False):
        super().__init__()
        self.positional = PositionalEncoding(dim) if positional else None
        layer = nn.TransformerEncoderLayer(dim, heads, ff_dim, dropout, activation=activation, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if self.positional is not None:
            x = self.positional(x)
        return self.encoder(x, src_key_padding_mask=~time_mask(lengths, x.shape[1]))


class CrossAttentionLayer(nn.Module):
    """Transformer layer whose queries come from one sequence and keys/values from another."""

    def __init__(self, dim: int, *, heads: int, ff_dim: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, query_lengths, memory, memory_lengths):
        attended, _ = self.attention(query, memory, memory,
                                     key_padding_mask=~time_mask(memory_lengths, memory.shape[1]))
        x = self.norm1(query + self.dropout(attended))
        return self.norm2(x + self.dropout(self.ff(x)))


def run_lstm(lstm: nn.LSTM, x: torch.Tensor, lengths: torch.Tensor):
    """Run ``lstm`` (batch_first) on the valid frames only: (outputs (B, T, H), last hidden (B, H*dirs)).

    While a model is being exported (:mod:`sertool.inference.export`), the LSTM runs
    unpacked: exported graphs take full-length inputs only (no padding), for
    which both paths give the same result, and packing needs the lengths as
    Python numbers, which an exported graph cannot have.
    """
    if exporting():
        out, (h, _) = lstm(x)
    else:
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, (h, _) = lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    dirs = 2 if lstm.bidirectional else 1
    return out, torch.cat([h[-dirs + k] for k in range(dirs)], dim=-1)


def exporting() -> bool:
    """Whether torch is tracing or exporting the model (ONNX, ``torch.export``, TorchScript tracing)."""
    return torch.compiler.is_exporting() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()
