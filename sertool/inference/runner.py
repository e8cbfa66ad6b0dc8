"""Model runners behind one interface: ``runner.probabilities(windows) -> (N, C)`` float32.

- :class:`TorchRunner`: a checkpoint's torch model; windows of different
  lengths share a batch, zero-padded with their lengths given; probabilities
  are ``softmax(logits / T)`` with the checkpoint's calibrated temperature
  (:mod:`sertool.training.calibration`; ``T = 1`` leaves the logits untouched).
- exported graphs (:class:`sertool.inference.export.ExportRunner`, ONNX or
  TorchScript) take no padding: :attr:`WindowRunner.accepts_padding` is
  False and each batch holds windows of one length.
- :func:`fuse`: the one fusion weighting (a fused model's probabilities, or
  a regression fusion's values, are the weighted sum of its members'), used
  by predict, evaluate and fuse.
- :func:`evaluate_loader`: a torch model over a DataLoader (training's validation).
"""

from __future__ import annotations

import numpy as np

from sertool.inference.folding import fold_batch_norms
from sertool.models.targets import destandardise
from sertool.runtime.process import inference_autocast, torch_device

#: Windows sent through the model together (peak memory is bounded by this, not by the input's length).
WINDOW_BATCH = 32


class WindowRunner:
    """Base of the runners: batches windows and asks :meth:`batch_probabilities` for each batch.

    Subclasses set :attr:`num_classes` and implement :meth:`batch_probabilities`.
    """

    #: whether one batch may hold windows of different lengths (zero-padded, lengths given)
    accepts_padding: bool = True
    num_classes: int = 0

    def batch_probabilities(self, batch: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Class probabilities of one batch.

        Parameters
        ----------
        batch
            ``(B, T, D)`` float32 normalised features, zero-padded after each item's length.
        lengths
            ``(B,)`` int64 valid frames of each item.

        Returns
        -------
        numpy.ndarray
            ``(B, C)`` float32 probabilities.
        """
        raise NotImplementedError

    def probabilities(self, windows: list[np.ndarray], batch_size: int = WINDOW_BATCH) -> np.ndarray:
        """Class probabilities of ``windows`` (each ``(t_i, D)`` float32), in batches of ``batch_size``.

        Windows of different lengths share a batch (zero-padded) when :attr:`accepts_padding`; models ignore
        the padding, so a window scores the same alone or batched. Otherwise each batch holds one length.

        Returns
        -------
        numpy.ndarray
            ``(N, C)`` float32, one row per window in order.
        """
        if not self.accepts_padding and len({w.shape[0] for w in windows}) > 1:
            by_length: dict[int, list[int]] = {}
            for k, w in enumerate(windows):
                by_length.setdefault(w.shape[0], []).append(k)
            out = np.zeros((len(windows), self.num_classes), np.float32)
            for same in by_length.values():
                out[same] = self.probabilities([windows[k] for k in same], batch_size)
            return out
        probs = []
        for first in range(0, len(windows), batch_size):  # bounded batches: memory does not grow with length
            chunk = windows[first:first + batch_size]
            lengths = np.array([w.shape[0] for w in chunk], np.int64)
            batch = np.zeros((len(chunk), int(lengths.max()), chunk[0].shape[1]), np.float32)
            for k, w in enumerate(chunk):
                batch[k, :w.shape[0]] = w
            probs.append(self.batch_probabilities(batch, lengths))
        return np.concatenate(probs) if probs else np.zeros((0, self.num_classes), np.float32)


def forward(model, feats, lengths, device):
    """Float32 logits ``(B, C)`` of torch ``model`` on ``feats`` ``(B, T, D)`` with ``lengths`` ``(B,)``.

    Runs without gradients, under the device's inference autocast; inputs are moved to ``device``.
    """
    import torch  # torch: heavy, loaded only when a model runs

    with torch.no_grad(), inference_autocast(device):
        return model(feats.to(device), lengths.to(device)).float()


class TorchRunner(WindowRunner):
    """A checkpoint's torch model as a :class:`WindowRunner` on ``device`` (a ``torch.device``).

    ``temperature``: the calibrated softmax temperature ``T > 0``; probabilities are ``softmax(logits / T)``
    (``T = 1``: the logits as they are, not divided).
    """

    def __init__(self, model, device, num_classes: int, temperature: float = 1.0, target_scale=None):
        self.model, self.device, self.num_classes = model.to(device).eval(), device, num_classes
        self.temperature = float(temperature)
        self.target_scale = target_scale  # regression: (mean, std) (K,); the outputs are values, not probabilities

    def batch_probabilities(self, batch: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        import torch  # torch: heavy, loaded only when a model runs

        logits = forward(self.model, torch.from_numpy(batch), torch.from_numpy(lengths), self.device)
        if self.target_scale is not None:
            return destandardise(logits.cpu().numpy(), *self.target_scale).astype(np.float32)
        return torch.softmax(calibrated(logits, self.temperature), dim=-1).cpu().numpy()


def calibrated(logits, temperature: float):
    """``logits`` ``(B, C)`` divided by the temperature ``T`` (the same tensor when ``T`` is 1).

    The one place scores are tempered: :class:`TorchRunner` and exported graphs
    (:mod:`sertool.inference.export`) both call it, so their probabilities agree.
    """
    return logits if temperature == 1.0 else logits / temperature


def build_runner(checkpoint, device: str = "cpu") -> WindowRunner:
    """The runner of a checkpoint's model (an exported model's graph runner, or its torch model).

    A checkpoint's torch model scores with its calibrated temperature; an exported graph has it inside.

    A torch model scores with its batch norms folded into the convolutions before them
    (:func:`~sertool.inference.folding.fold_batch_norms`: the same scores to float rounding, less work).

    Parameters
    ----------
    checkpoint
        A :class:`~sertool.models.checkpoint.Checkpoint` (not fused) or an exported model.
    device
        ``"cpu"``, ``"cuda"`` or ``"auto"``.

    Raises
    ------
    ConfigError
        A device that is not there.
    ExportError
        An exported model asked to run on another device than the CPU.
    """
    model = checkpoint.build_model()
    if isinstance(model, WindowRunner):  # an exported graph runs itself (on the CPU: no torch needed to say so)
        return model.to(device if device == "cpu" else torch_device(device))
    return TorchRunner(fold_batch_norms(model.eval()), torch_device(device), len(checkpoint.outputs),
                       temperature=checkpoint.temperature,
                       target_scale=checkpoint.target_scale() if checkpoint.is_regression else None)


def fuse(member_probabilities: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """The fused probabilities: the weighted sum of the members' (each ``(N, C)`` or ``(C,)``; weights sum to 1).

    Members of a regression fusion give predicted values ``(N, K)`` on the targets' scale (each destandardised by
    its own runner); their weighted sum is the fused model's values.
    """
    return sum(w * np.asarray(p) for w, p in zip(weights, member_probabilities))


def evaluate_loader(model, loader, device, loss_fn=None):
    """Run torch ``model`` over ``loader`` (batches ``(feats (B, T, D), lengths (B,), labels (B,))``).

    Returns
    -------
    probabilities : numpy (N, C) float32
    labels : numpy (N,) int64
    loss : float
        Mean of ``loss_fn`` over the items, or nan without one.
    """
    import torch  # torch: heavy, loaded only when a model runs

    model.eval()
    probs, labels, losses = [], [], []
    for feats, lengths, y in loader:
        logits = forward(model, feats, lengths, device)
        if loss_fn is not None:
            with torch.no_grad():
                losses.append(float(loss_fn(logits, y.to(device))) * len(y))
        probs.append(torch.softmax(logits, dim=-1).cpu().numpy())
        labels.append(y.numpy())
    n = sum(len(y) for y in labels)
    return np.concatenate(probs), np.concatenate(labels), (sum(losses) / n if losses else float("nan"))
