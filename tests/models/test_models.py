"""Model-specific tests: published sizes, config parsing and errors, blocks. The contract every
registered model meets is checked in test_model_contract.py."""

from __future__ import annotations

import pytest
import torch

from sertool.errors import ConfigError
from sertool.models import MODELS, build_model, build_model_config

PUBLISHED_PARAMETERS = {"light_sernet": (460_000, 7), "drn_mhsa": (9_900_000, 4)}  # ~0.46 M (EMO-DB), ~9.9 M (IEMOCAP)


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


def test_model_configs_hold_typed_values_from_toml_arrays_or_set_strings():
    import tomllib

    from sertool.configs import parse_assignments, to_toml_table

    config = build_model_config("light_sernet", parse_assignments(["path_kernels=9x1,1x11", "lflb_channels=8,16",
                                                                   "lflb_kernels=3x3,1x1", "lflb_pools=2x2"]))
    assert config.path_kernels == ((9, 1), (1, 11)) and config.lflb_channels == (8, 16)
    assert build_model_config("light_sernet", tomllib.loads(to_toml_table(config))) == config
    assert build_model_config("mlp", {"hidden": [64]}).hidden == (64,)
    assert build_model_config("svm", {"C_grid": "0.1,1"}).grid == (0.1, 1.0)


@pytest.mark.parametrize("name, overrides, message", [
    ("light_sernet", {"lflb_pools": "2x2"}, "lflb_pools"),
    ("light_sernet", {"path_kernels": "9y1"}, "not a pair"),
    ("light_sernet", {"lflb_channels": "a,b"}, "not an int"),
    ("drn_mhsa", {"channels": "64,128"}, "five groups"),
    ("drn_mhsa", {"attention": "double"}, "none, single or multi"),
    ("ilt", {"fusion": "times"}, "concat, plus"),
    ("cat", {"cross": "sideways"}, "both, c2l"),
    ("cnn_transformer", {"cross": "both"}, "unknown option"),  # each model has only the fields it uses
    ("cat", {"layers": 3}, "unknown option"),
    ("parallel_resnet_transformer", {"cnn_pools": "2,4"}, "one cnn_pools entry"),
    ("mscnn_spu", {"kernel_sizes": "0,3"}, "positive"),
    ("mlp", {"hidden": "-5"}, "positive"),
    ("svm", {"C_grid": "0,1"}, "positive"),
])
def test_bad_model_settings_are_config_errors(name, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model_config(name, overrides)


def test_checkpoint_configs_of_the_string_era_still_load():
    legacy = {"path_kernels": "9x1,1x11,3x3", "lflb_channels": "64,96,128,160,320",
              "lflb_kernels": "3x3,3x3,3x3,3x3,1x1", "lflb_pools": "2x2,2x2,2x1,2x1,gap"}
    assert build_model_config("light_sernet", legacy, stored=True) == build_model_config("light_sernet")
    assert build_model_config("svm", {"C_grid": "auto"}, stored=True).grid == (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    shared = {"conv_channels": "16,32,64", "layers": 2, "positional": True, "lstm_hidden": 64, "fusion": "concat",
              "alpha": 0.5, "cross": "both", "reduce_stride": 4, "reduce_channels": 128}
    assert build_model_config("cnn_transformer", shared, stored=True) == build_model_config("cnn_transformer")
    with pytest.raises(ConfigError, match="unknown option"):
        build_model_config("cnn_transformer", {**shared, "typo": 1}, stored=True)


def test_masked_batch_norm_statistics_ignore_padding():
    from sertool.models.common import MaskedBatchNorm1d

    torch.manual_seed(0)
    x, lengths = torch.randn(3, 4, 20), torch.tensor([20, 12, 7])
    padded = torch.cat([x, torch.randn(3, 4, 9) * 50], dim=2)  # more (and wild) padding beyond every length
    for data in (x, padded):
        for b, n in enumerate(lengths):
            data[b, :, n:] = torch.randn(4, data.shape[2] - n) * 50
    a, b = MaskedBatchNorm1d(4).train(), MaskedBatchNorm1d(4).train()
    out_a, out_b = a(x, lengths), b(padded, lengths)
    for k, n in enumerate(lengths):
        torch.testing.assert_close(out_a[k, :, :n], out_b[k, :, :n])
    torch.testing.assert_close(a.running_mean, b.running_mean)
    torch.testing.assert_close(a.running_var, b.running_var)
    full = torch.randn(2, 4, 10)  # without padding it is nn.BatchNorm1d, training and evaluation
    plain, masked = torch.nn.BatchNorm1d(4).train(), MaskedBatchNorm1d(4).train()
    torch.testing.assert_close(masked(full, torch.tensor([10, 10])), plain(full))
    torch.testing.assert_close(masked.running_var, plain.running_var)
    torch.testing.assert_close(masked.eval()(full, torch.tensor([10, 10])), plain.eval()(full))
    plain, masked = torch.nn.BatchNorm1d(4, momentum=None), MaskedBatchNorm1d(4, momentum=None)  # cumulative
    for _ in range(3):
        batch = torch.randn(2, 4, 10)
        plain.train()(batch), masked.train()(batch, torch.tensor([10, 10]))
    torch.testing.assert_close(masked.running_mean, plain.running_mean)
    torch.testing.assert_close(masked.running_var, plain.running_var)


def test_channels_last_models_save_contiguous_weights_and_score_the_same():
    from sertool.models.common import fast_layout

    torch.manual_seed(0)
    model = build_model("light_sernet", {}, input_dim=40, num_classes=4).eval()
    feats, lengths = torch.randn(2, 184, 40), torch.tensor([184, 150])
    with torch.no_grad():
        before = model(feats, lengths)
        after = fast_layout(model)(feats, lengths)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-4)
    assert any(p.dim() == 4 and not p.is_contiguous() for p in model.parameters())  # channels-last inside
    from sertool.training.checkpoints import weights

    assert all(v.is_contiguous() for v in weights(model).values())  # checkpoints in the standard layout
