"""The written model contract: what every registered model does and declares.

A model is an ``nn.Module`` built as ``spec.cls(config, input_dim=D, num_classes=C)`` from the
:class:`~sertool.models.registry.ModelSpec` ``spec`` it is registered with. It

- computes ``forward(feats, lengths) -> logits``: ``feats`` (B, T, D) float32, ``lengths`` (B,) int64
  valid frames per clip, ``logits`` (B, C) float32;
- ignores padding: frames beyond ``lengths[b]`` never change row ``b`` of the output, so a clip scored
  alone equals the clip scored in a padded batch;
- has ``name``, the name it is registered under (set by :func:`~sertool.models.registry.register_model`).

What it can do is declared, never guessed from names or attributes:

- on its registry entry (:class:`~sertool.models.registry.ModelSpec`): ``level`` (frame- or
  utterance-level store), ``trainer`` (``sgd`` or ``fit``), ``fixed_frames`` (crops every clip to its
  config's ``input_frames``), ``takes_utterance_vector`` (an utterance vector in its config's
  ``speaker_dim`` last input columns), ``onnx_unsupported`` and ``min_frames`` (export);
- on its modules: a module class with ``decay_kernels = True`` (e.g.
  :class:`~sertool.models.common.Conv1d`, :class:`~sertool.models.common.Conv2d`) holds kernels that
  take weight decay under ``TrainConfig.decay_params = "conv"`` (:func:`decay_kernels`).

``tests/test_model_contract.py`` checks all of this for every entry of :data:`~sertool.models.MODELS`.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class SerModel(Protocol):
    """A registered model, as the trainer, the predictor and the exporters use it."""

    #: the registry name
    name: str

    def forward(self, feats: Any, lengths: Any) -> Any:
        """Class scores of a padded batch.

        Parameters
        ----------
        feats : torch.Tensor
            (B, T, D) float32 features; frames beyond ``lengths`` are padding.
        lengths : torch.Tensor
            (B,) int64 valid frames per clip, 1 <= lengths[b] <= T (1 for utterance-level features).

        Returns
        -------
        torch.Tensor
            (B, C) float32 logits, independent of the padding.
        """


def decay_kernels(model) -> list:
    """The parameters that take weight decay under ``decay_params = "conv"``.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    list of torch.nn.Parameter
        Every parameter with 2 or more dimensions held directly by a module whose class declares
        ``decay_kernels = True``, in ``model.parameters()`` order.
    """
    owners = {id(p): module for module in model.modules() for p in module.parameters(recurse=False)}
    return [p for p in model.parameters() if p.ndim > 1 and getattr(owners[id(p)], "decay_kernels", False)]
