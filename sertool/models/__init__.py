"""Models: the registry (:mod:`sertool.models.registry`), one module per paper, shared blocks, checkpoints.

Layer 4: imports features, io, runtime and the layer-0 modules. The names below
are the registry's, re-exported; importing this package does not import torch.
"""

from sertool.models.registry import (  # noqa: F401
    MODELS, RECIPES, ModelSpec, build_model, build_model_config, model_names, model_spec, recipe, register_model,
)
