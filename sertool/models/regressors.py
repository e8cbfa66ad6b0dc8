"""Classic regressors on utterance-level features: ``svr`` and ``ridge`` (``train --target``).

Both are fitted with scikit-learn (trainer ``"fit"``) on standardised targets (one column per target,
:mod:`sertool.models.targets`), and, as the classic classifiers of :mod:`sertool.models.classic`, their fitted
arrays become buffers of a small torch module: checkpoints hold tensors only, load with
``weights_only=True`` (no pickle) and score (and export) through the same path as every other model. The
module's output is the standardised prediction (B, K); the checkpoint's target statistics map it back.

- ``svr``: one epsilon-SVR per target, ``kernel`` ``rbf`` (default) or ``linear``. An RBF model keeps the
  union of the targets' support vectors and a dual coefficient matrix (K, n_support).
- ``ridge``: multi-output ridge regression (L2 strength ``alpha``).
- ``C`` / ``alpha`` 0 (the default) chooses the value on the fold's validation speakers: the highest mean
  CCC over the targets (an undefined CCC, of validation values all equal, counts as 0; ties go to the lower
  RMSE, then to the first value of the grid); ``train_log.csv`` holds one row per value.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from sertool.errors import ConfigError
from sertool.metrics import concordance
from sertool.models.classic import add_kernel_buffers, kernel_outputs
from sertool.models.registry import register_model

UTTERANCE_FEATURES = "egemaps_functionals"
SVR_C_GRID = (0.1, 1.0, 10.0)
RIDGE_ALPHA_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
RECIPE = {"norm": "speaker"}
PAPER_RECIPE = {"norm": "global"}


def _positive(name: str, grid: tuple[float, ...]) -> None:
    if not grid or min(grid) <= 0:
        raise ConfigError(f"{name} {list(grid)} must hold one positive number or more")


@dataclass(frozen=True)
class SvrConfig:
    """SVR settings; ``support_vectors`` is set by fitting (RBF) and sizes the stored arrays."""

    kernel: str = "rbf"
    C: float = 0.0
    #: C values tried on validation when C is 0
    C_grid: tuple[float, ...] = SVR_C_GRID
    gamma: float = 0.0
    epsilon: float = 0.1
    support_vectors: int = 0

    def __post_init__(self):
        if self.kernel not in ("linear", "rbf"):
            raise ConfigError(f"svr kernel {self.kernel!r} must be linear or rbf")
        _positive("C_grid", self.C_grid)
        if self.epsilon < 0 or self.C < 0:
            raise ConfigError("svr C and epsilon must be >= 0")

    @property
    def grid(self) -> tuple[float, ...]:
        return self.C_grid


@dataclass(frozen=True)
class RidgeConfig:
    """Ridge regression settings (``alpha``: L2 strength; 0 = choose on validation over ``alpha_grid``)."""

    alpha: float = 0.0
    alpha_grid: tuple[float, ...] = RIDGE_ALPHA_GRID

    def __post_init__(self):
        _positive("alpha_grid", self.alpha_grid)
        if self.alpha < 0:
            raise ConfigError("ridge alpha must be >= 0")

    @property
    def grid(self) -> tuple[float, ...]:
        return self.alpha_grid


def mean_ccc(true: np.ndarray, pred: np.ndarray) -> float:
    """The mean over targets of the CCC of ``pred`` against ``true`` (N, K) each (NaN targets count as 0)."""
    values = [concordance(true[:, k], pred[:, k]) for k in range(true.shape[1])]
    return float(np.mean([v if v == v else 0.0 for v in values]))


class _FittedRegressor(nn.Module):
    """Base: ``fit(x, y, xv, yv) -> (config, state_dict, rows)``; rows are (value, valid CCC, valid RMSE)."""

    #: the config field chosen on validation (``C`` or ``alpha``)
    config_field = "C"

    def __init__(self, config, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config, self.input_dim, self.num_classes = config, input_dim, num_classes

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, *, config,
            num_classes: int, log=lambda m: None):
        """Choose the config value on the validation rows (unless given), fit on the training rows.

        ``x`` (N, D), ``x_valid`` (M, D): normalised features; ``y`` (N, K), ``y_valid`` (M, K): standardised
        targets. RMSE in the rows is in standardised units (target std = 1).
        """
        given = getattr(config, cls.config_field)
        grid = [given] if given > 0 else list(config.grid)
        if len(grid) > 1 and len(y_valid) == 0:
            raise ConfigError(f"{cls.name}: {cls.config_field}=0 chooses it on validation speakers, but this fold "
                              f"has none; set it (e.g. --set {cls.config_field}={grid[0]:g})")
        rows, best, chosen = [], (-np.inf, -np.inf), grid[0]
        for value in grid if len(y_valid) else []:
            pred = cls._predict(cls._fitted(replace(config, **{cls.config_field: value}), x, y), x_valid)
            ccc, rmse = mean_ccc(y_valid, pred), float(np.sqrt(np.mean((pred - y_valid) ** 2)))
            rows.append((value, ccc, rmse))
            log(f"  {cls.name} {cls.config_field}={value:g}: valid CCC {ccc:.3f} RMSE {rmse:.3f} (standardised)")
            if (round(ccc, 12), round(-rmse, 12)) > best:  # equal CCC (e.g. undefined: 0): the lower RMSE
                best, chosen = (round(ccc, 12), round(-rmse, 12)), value
        config = replace(config, **{cls.config_field: chosen})
        return (*cls._arrays(cls._fitted(config, x, y), config, x), rows)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.predict(feats[:, 0])  # utterance-level stores hold one row per utterance


@register_model("svr", SvrConfig, level="utterance", features=UTTERANCE_FEATURES, trainer="fit",
                tasks=("regression",), recipe=RECIPE, paper_recipe=PAPER_RECIPE)
class Svr(_FittedRegressor):
    """Support vector regression (RBF or linear kernel, one per target) on utterance-level features."""

    def __init__(self, config: SvrConfig, *, input_dim: int, num_classes: int):
        super().__init__(config, input_dim=input_dim, num_classes=num_classes)
        add_kernel_buffers(self, config, input_dim=input_dim, outputs=num_classes)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions (B, K) of vectors ``x`` (B, D)."""
        return kernel_outputs(self, x)

    @staticmethod
    def _fitted(config: SvrConfig, x: np.ndarray, y: np.ndarray) -> list:
        from sklearn.svm import SVR  # heavy (pulls in scipy, ~2 s): loaded only when an SVR is fitted

        return [SVR(kernel=config.kernel, C=config.C, epsilon=config.epsilon, gamma=config.gamma or "scale")
                .fit(x, y[:, k]) for k in range(y.shape[1])]

    @staticmethod
    def _predict(models: list, x: np.ndarray) -> np.ndarray:
        return np.stack([m.predict(x) for m in models], axis=1)

    @classmethod
    def _arrays(cls, models: list, config: SvrConfig, x: np.ndarray):
        intercept = torch.tensor([m.intercept_[0] for m in models], dtype=torch.float32)
        if config.kernel == "linear":
            coef = np.concatenate([m.coef_ for m in models])
            return config, {"coef": torch.tensor(coef, dtype=torch.float32), "intercept": intercept}
        support = np.unique(np.concatenate([m.support_ for m in models]))
        position = {int(k): j for j, k in enumerate(support)}
        dual = np.zeros((len(models), len(support)))
        for t, m in enumerate(models):
            dual[t, [position[int(k)] for k in m.support_]] = m.dual_coef_[0]
        return replace(config, support_vectors=len(support)), {
            "support": torch.tensor(x[support], dtype=torch.float32), "intercept": intercept,
            "dual_coef": torch.tensor(dual, dtype=torch.float32),
            "gamma": torch.tensor(models[0]._gamma, dtype=torch.float32)}


@register_model("ridge", RidgeConfig, level="utterance", features=UTTERANCE_FEATURES, trainer="fit",
                tasks=("regression",), recipe=RECIPE, paper_recipe=PAPER_RECIPE)
class Ridge(_FittedRegressor):
    """Ridge regression (all targets at once) on utterance-level features."""

    config_field = "alpha"

    def __init__(self, config: RidgeConfig, *, input_dim: int, num_classes: int):
        super().__init__(config, input_dim=input_dim, num_classes=num_classes)
        self.register_buffer("coef", torch.zeros(num_classes, input_dim))
        self.register_buffer("intercept", torch.zeros(num_classes))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions (B, K) of vectors ``x`` (B, D)."""
        return x @ self.coef.T + self.intercept

    @staticmethod
    def _fitted(config: RidgeConfig, x: np.ndarray, y: np.ndarray):
        from sklearn.linear_model import Ridge as SkRidge  # heavy (pulls in scipy, ~2 s): only when fitted

        return SkRidge(alpha=config.alpha).fit(x, y)

    @staticmethod
    def _predict(model, x: np.ndarray) -> np.ndarray:
        return model.predict(x).reshape(len(x), -1)

    @classmethod
    def _arrays(cls, model, config: RidgeConfig, x: np.ndarray):
        coef = np.asarray(model.coef_).reshape(-1, x.shape[1])
        return config, {"coef": torch.tensor(coef, dtype=torch.float32),
                        "intercept": torch.tensor(np.atleast_1d(model.intercept_), dtype=torch.float32)}
