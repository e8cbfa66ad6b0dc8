"""The model contract (sertool.models.contract), checked for every registered model.

In the manner of scikit-learn's ``parametrize_with_checks``: each check is parametrized over
``sertool.models.MODELS``, so a model is checked the moment it is registered. Model-specific
tests stay in test_models.py.
"""

from __future__ import annotations

import dataclasses
import tomllib

import pytest
import torch

from sertool.configs import to_toml_table
from sertool.models import MODELS, build_model, build_model_config, model_names
from sertool.models.contract import SerModel, decay_kernels

INPUT_DIM, CLASSES = 40, 5


def _frames(name: str, frames: int) -> int:
    return frames if MODELS[name].level == "frame" else 1  # utterance-level stores hold one row per utterance


def _model(name: str, **overrides):
    torch.manual_seed(0)
    return build_model(name, overrides, input_dim=INPUT_DIM, num_classes=CLASSES)


def _batch(name: str, lengths=(150, 90, 40)):
    lengths = torch.tensor([_frames(name, n) for n in lengths])
    return torch.randn(len(lengths), int(lengths.max()), INPUT_DIM), lengths


def _perturbed(model):
    """``model`` with every floating-point tensor of its state moved a little (variances stay positive)."""
    with torch.no_grad():
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                value.mul_(1 + 0.1 * torch.randn_like(value))
                if not key.endswith("running_var"):
                    value.add_(0.01 * torch.randn_like(value))
    return model.eval()


@pytest.mark.parametrize("name", model_names())
def test_builds_and_gives_finite_logits_of_shape_batch_by_classes(name):
    model = _model(name)
    feats, lengths = _batch(name)
    logits = model(feats, lengths)
    assert logits.shape == (3, CLASSES) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    assert isinstance(model, SerModel) and model.name == name
    if MODELS[name].trainer == "fit":  # fitted by scikit-learn: buffers only, nothing to back-propagate
        assert not list(model.parameters()) and set(model.state_dict())
        return
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", model_names())
def test_padding_never_changes_a_prediction(name):
    model = _model(name).eval()
    feats = torch.randn(2, _frames(name, 120), INPUT_DIM)
    lengths = torch.tensor([_frames(name, 120), _frames(name, 70)])
    padded = torch.cat([feats, torch.randn(2, 50, INPUT_DIM)], dim=1)  # garbage in the padding region
    with torch.no_grad():
        a = model(feats, lengths)
        b = model(padded, lengths)
        alone = model(feats[1:, :_frames(name, 70)], lengths[1:])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[1:], alone)


@pytest.mark.parametrize("name", model_names())
def test_config_round_trips_through_build_model_config(name):
    default = build_model_config(name)
    assert dataclasses.is_dataclass(default) and type(default) is MODELS[name].config_cls
    assert build_model_config(name, dataclasses.asdict(default)) == default
    assert build_model_config(name, tomllib.loads(to_toml_table(default))) == default  # types survive TOML


@pytest.mark.parametrize("name", model_names())
def test_recipes_only_name_train_config_fields(name):
    from sertool.training.config import TrainConfig, build_train_config

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    spec = MODELS[name]
    for which, recipe in (("default", spec.recipe), ("paper", spec.paper_recipe)):
        assert set(recipe) <= fields, f"{which} recipe names {sorted(set(recipe) - fields)}"
        config = build_train_config(model=name, recipe=which)  # values are valid too
        assert all(getattr(config, k) == v for k, v in recipe.items() if not isinstance(v, (list, tuple)))
        assert config.epochs <= (60 if which == "default" else 500)


@pytest.mark.parametrize("name", model_names())
def test_checkpoint_round_trip_gives_the_same_outputs(name, tmp_path):
    from sertool.models.checkpoint import Checkpoint

    model = _perturbed(_model(name))
    feats, lengths = _batch(name)
    with torch.no_grad():
        expected, fresh = model(feats, lengths), _model(name).eval()(feats, lengths)
    assert not torch.allclose(expected, fresh)  # the saved weights matter, so the round trip is tested
    Checkpoint(model=name, model_config=dataclasses.asdict(build_model_config(name)), feature_set="test",
               feature_config={}, labels=[f"c{k}" for k in range(CLASSES)], norm_mean=torch.zeros(INPUT_DIM),
               norm_std=torch.ones(INPUT_DIM), train_config={}, state_dict=model.state_dict()).save(tmp_path / "m.pt")
    with torch.no_grad():
        loaded = Checkpoint.load(tmp_path / "m.pt").build_model()(feats, lengths)
    torch.testing.assert_close(loaded, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", model_names())
def test_declared_capabilities_match_the_model(name):
    from sertool.features import PRESETS, build_extractor
    from tests.conftest import preset_overrides

    spec = MODELS[name]
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    assert spec.level in ("frame", "utterance") and spec.trainer in ("sgd", "fit")
    assert spec.takes_utterance_vector == ("speaker_dim" in fields)
    assert spec.fixed_frames == ("input_frames" in fields)
    config = build_model_config(name)
    assert spec.input_frames(config) == (config.input_frames if spec.fixed_frames else None)
    assert spec.min_frames >= 1 and isinstance(spec.onnx_unsupported, str)
    assert spec.features in PRESETS
    assert build_extractor(spec.features, preset_overrides(spec.features)).level == spec.level


@pytest.mark.parametrize("name", model_names())
def test_every_convolution_declares_its_kernel_for_weight_decay(name):
    model = _model(name)
    convolutions = [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    assert all(getattr(m, "decay_kernels", False) for m in convolutions)
    declared = {id(p) for p in decay_kernels(model)}
    assert declared == {id(m.weight) for m in convolutions}  # kernels only: no bias, norm or linear weight


@pytest.mark.parametrize("name", [n for n in model_names() if MODELS[n].takes_utterance_vector])
def test_utterance_vector_reaches_the_output(name):
    model = _model(name, speaker_dim=8).eval()
    feats, lengths = _batch(name)
    changed = feats.clone()
    changed[:, :, -8:] += 1.0  # the utterance vector sits in the last speaker_dim columns
    with torch.no_grad():
        assert not torch.allclose(model(feats, lengths), model(changed, lengths))


@pytest.mark.parametrize("name", [n for n in model_names() if MODELS[n].fixed_frames])
def test_fixed_length_models_see_only_input_frames(name):
    model = _model(name).eval()
    frames = MODELS[name].input_frames(build_model_config(name))
    feats = torch.randn(1, frames, INPUT_DIM)
    longer = torch.cat([torch.randn(1, 20, INPUT_DIM), feats, torch.randn(1, 20, INPUT_DIM)], dim=1)
    with torch.no_grad():  # a longer clip is centre-cropped to the declared input length
        torch.testing.assert_close(model(longer, torch.tensor([frames + 40])), model(feats, torch.tensor([frames])))
