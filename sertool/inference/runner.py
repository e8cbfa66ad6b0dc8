"""Running a model over a DataLoader, shared by training (validation) and evaluation."""

from __future__ import annotations


def evaluate_loader(model, loader, device, loss_fn=None):
    """Run ``model`` over ``loader``.

    Returns
    -------
    probabilities : numpy (N, C) float32
    labels : numpy (N,) int64
    loss : float
        Mean of ``loss_fn`` over the items, or nan without one.
    """
    import numpy as np
    import torch

    from sertool.runtime.process import inference_autocast

    model.eval()
    probs, labels, losses = [], [], []
    with torch.no_grad(), inference_autocast(device):
        for feats, lengths, y in loader:
            logits = model(feats.to(device), lengths.to(device)).float()
            if loss_fn is not None:
                losses.append(float(loss_fn(logits, y.to(device))) * len(y))
            probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
            labels.append(y.numpy())
    n = sum(len(y) for y in labels)
    return np.concatenate(probs), np.concatenate(labels), (sum(losses) / n if losses else float("nan"))
