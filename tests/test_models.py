"""Model contract, iterated over the registry; LIGHT-SERNET's published size."""

from __future__ import annotations

import pytest
import torch

from sertool.errors import ConfigError
from sertool.models import MODELS, build_model, build_model_config, model_names

PUBLISHED_PARAMETERS = {"light_sernet": (460_000, 7), "drn_mhsa": (9_900_000, 4)}  # ~0.46 M (EMO-DB), ~9.9 M (IEMOCAP)


def _frames(name: str, frames: int) -> int:
    return frames if MODELS[name].level == "frame" else 1  # utterance-level stores hold one row per utterance


@pytest.mark.parametrize("name", model_names())
def test_contract(name):
    torch.manual_seed(0)
    model = build_model(name, {}, input_dim=40, num_classes=5)
    t = _frames(name, 150)
    feats, lengths = torch.randn(3, t, 40), torch.tensor([t, _frames(name, 90), _frames(name, 40)])
    logits = model(feats, lengths)
    assert logits.shape == (3, 5) and torch.isfinite(logits).all()
    if MODELS[name].trainer == "fit":  # fitted by scikit-learn: buffers only, nothing to back-propagate
        assert not list(model.parameters()) and set(model.state_dict())
        return
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", model_names())
def test_registry_metadata_is_consistent(name):
    from sertool.features import PRESETS, build_extractor
    from sertool.training import build_train_config

    spec = MODELS[name]
    assert spec.level in ("frame", "utterance") and spec.trainer in ("sgd", "fit")
    assert spec.features in PRESETS and build_extractor(spec.features).level == spec.level
    for recipe in ("default", "paper"):
        config = build_train_config(model_name=name, recipe=recipe)  # every recipe key is a TrainConfig field
        assert config.epochs <= (60 if recipe == "default" else 500)


@pytest.mark.parametrize("name", model_names())
def test_padding_never_changes_a_prediction(name):
    torch.manual_seed(0)
    model = build_model(name, {}, input_dim=40, num_classes=4).eval()
    feats = torch.randn(2, _frames(name, 120), 40)
    lengths = torch.tensor([_frames(name, 120), _frames(name, 70)])
    padded = torch.cat([feats, torch.randn(2, 50, 40)], dim=1)  # garbage in the padding region
    with torch.no_grad():
        a = model(feats, lengths)
        b = model(padded, lengths)
        alone = model(feats[1:, :_frames(name, 70)], lengths[1:])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[1:], alone)


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_parameter_count_matches_the_paper(name):
    published, classes = PUBLISHED_PARAMETERS[name]
    count = sum(p.numel() for p in build_model(name, {}, input_dim=40, num_classes=classes).parameters())
    print(f"{name}: {count} parameters (paper: about {published})")
    assert abs(count - published) / published < 0.05


def test_config_overrides_are_checked():
    assert build_model_config("light_sernet", {"dropout": "0.5"}).dropout == 0.5
    with pytest.raises(ConfigError, match="unknown option"):
        build_model_config("light_sernet", {"dropuot": 0.5})
    with pytest.raises(ConfigError, match="unknown model"):
        build_model_config("nope")
    assert "light_sernet" in MODELS
