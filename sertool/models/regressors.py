"""Classic regressors on utterance-level features: ``svr``, ``ridge``, ``logreg_mean`` (``train --target``).

All are fitted with scikit-learn (trainer ``"fit"``) on standardised targets (one column per target,
:mod:`sertool.models.targets`), and, as the classic classifiers of :mod:`sertool.models.classic`, their fitted
arrays become buffers of a small torch module: checkpoints hold tensors only, load with
``weights_only=True`` (no pickle) and score (and export) through the same path as every other model. The
module's output is the standardised prediction (B, K); the checkpoint's target statistics map it back.

- ``svr``: one epsilon-SVR per target, ``kernel`` ``rbf`` (default) or ``linear``. An RBF model keeps the
  union of the targets' support vectors and a dual coefficient matrix (K, n_support).
- ``ridge``: multi-output ridge regression (L2 strength ``alpha``).
- ``logreg_mean``: for ordinal targets of a few distinct values (BAVED's level 0/1/2, RAVDESS intensity): a
  multinomial logistic regression over the target's distinct values, predicting their mean under its class
  probabilities (one per target; at most ``max_values`` distinct values).
- ``rescale`` (default on) maps the outputs onto the training targets' spread, from the chosen model's
  predictions on the validation speakers (:meth:`_FittedRegressor._spread_map`); ``refit`` fits the chosen
  model again on training and validation speakers together.
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
LOGREG_C_GRID = (0.01, 0.1, 1.0)
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
    rescale: bool = True
    refit: bool = False
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
    rescale: bool = True
    refit: bool = False

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
        targets. RMSE in the rows is in standardised units (target std = 1). With ``rescale`` the chosen
        model's outputs are mapped onto the training targets' spread (:meth:`_spread_map`); with ``refit`` it
        is then fitted again on training and validation rows together, keeping the value and the map.
        """
        chosen, fitted, rows = cls._choose(x, y, x_valid, y_valid, config, log)
        config = replace(config, **{cls.config_field: chosen})
        fitted = fitted or cls._fitted(config, x, y)
        scale, shift = cls._spread_map(config, cls._predict(fitted, x_valid) if len(y_valid) else None, log)
        if config.refit and len(y_valid):
            x, y = np.concatenate([x, x_valid]), np.concatenate([y, y_valid])
            fitted = cls._fitted(config, x, y)
        config, state = cls._arrays(fitted, config, x)
        return config, cls._mapped(state, scale, shift), rows

    @classmethod
    def _choose(cls, x, y, x_valid, y_valid, config, log):
        """``(value, fitted model or None, rows)``: the grid value of the highest mean validation CCC."""
        given = getattr(config, cls.config_field)
        grid = [given] if given > 0 else list(config.grid)
        if len(grid) > 1 and len(y_valid) == 0:
            raise ConfigError(f"{cls.name}: {cls.config_field}=0 chooses it on validation speakers, but this fold "
                              f"has none; set it (e.g. --set {cls.config_field}={grid[0]:g})")
        rows, best, chosen, kept = [], (-np.inf, -np.inf), grid[0], None
        for value in grid if len(y_valid) else []:
            fitted = cls._fitted(replace(config, **{cls.config_field: value}), x, y)
            pred = cls._predict(fitted, x_valid)
            ccc, rmse = mean_ccc(y_valid, pred), float(np.sqrt(np.mean((pred - y_valid) ** 2)))
            rows.append((value, ccc, rmse))
            log(f"  {cls.name} {cls.config_field}={value:g}: valid CCC {ccc:.3f} RMSE {rmse:.3f} (standardised)")
            if (round(ccc, 12), round(-rmse, 12)) > best:  # equal CCC (e.g. undefined: 0): the lower RMSE
                best, chosen, kept = (round(ccc, 12), round(-rmse, 12)), value, fitted
        return chosen, kept, rows

    @classmethod
    def _spread_map(cls, config, valid_pred: np.ndarray | None, log) -> tuple[np.ndarray, np.ndarray]:
        """``(scale, shift)`` (K,) mapping outputs onto the training targets' spread (mean 0, std 1).

        A least-squares fit (SVR, ridge) predicts values of smaller spread than its targets, which CCC
        penalises; ``scale = 1 / std`` and ``shift = -mean / std`` of the predictions on the validation rows
        (never the test fold) undo that. Identity without ``rescale``, with fewer than 2 validation rows, or
        for a target whose validation predictions are constant.
        """
        if valid_pred is None or not config.rescale or len(valid_pred) < 2:
            return np.ones(1), np.zeros(1)
        std, mean = valid_pred.std(axis=0), valid_pred.mean(axis=0)
        spread = std > 1e-8
        scale = np.where(spread, 1 / np.where(spread, std, 1), 1.0)
        shift = np.where(spread, -mean * scale, 0.0)
        log(f"  {cls.name} output map (validation predictions onto the targets' spread): scale "
            f"{' '.join(f'{v:.3f}' for v in scale)}, shift {' '.join(f'{v:.3f}' for v in shift)}")
        return scale, shift

    @staticmethod
    def _mapped(state: dict, scale: np.ndarray, shift: np.ndarray) -> dict:
        """``state`` whose outputs are ``output * scale + shift``: the map folded into the linear output layer."""
        scale_t, shift_t = torch.tensor(scale, dtype=torch.float32), torch.tensor(shift, dtype=torch.float32)
        for name in ("coef", "dual_coef"):
            if name in state:
                state[name] = state[name] * scale_t[:, None]
        state["intercept"] = state["intercept"] * scale_t + shift_t
        return state

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


@dataclass(frozen=True)
class LogregMeanConfig:
    """Settings of ``logreg_mean``; ``levels`` (the most distinct values of a target) is set by fitting."""

    C: float = 0.0
    C_grid: tuple[float, ...] = LOGREG_C_GRID
    max_values: int = 20
    max_iter: int = 2000
    rescale: bool = True
    refit: bool = False
    levels: int = 2

    def __post_init__(self):
        _positive("C_grid", self.C_grid)
        if self.C < 0 or self.max_values < 2:
            raise ConfigError("logreg_mean C must be >= 0 and max_values >= 2")

    @property
    def grid(self) -> tuple[float, ...]:
        return self.C_grid


@register_model("logreg_mean", LogregMeanConfig, level="utterance", features=UTTERANCE_FEATURES, trainer="fit",
                tasks=("regression",), recipe=RECIPE, paper_recipe=PAPER_RECIPE)
class LogregMean(_FittedRegressor):
    """The mean of a target's distinct values under a multinomial logistic regression's probabilities.

    Buffers: ``weight`` (K, V, D) and ``bias`` (K, V) of the K targets' classifiers over at most V = ``levels``
    values (a target of fewer values pads with a bias of -1e4, probability 0), ``values`` (K, V) the
    standardised values (the output map folded in).
    """

    def __init__(self, config: LogregMeanConfig, *, input_dim: int, num_classes: int):
        super().__init__(config, input_dim=input_dim, num_classes=num_classes)
        self.register_buffer("weight", torch.zeros(num_classes, config.levels, input_dim))
        self.register_buffer("bias", torch.zeros(num_classes, config.levels))
        self.register_buffer("values", torch.zeros(num_classes, config.levels))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised predictions (B, K) of vectors ``x`` (B, D)."""
        targets, levels, dim = self.weight.shape
        logits = (x @ self.weight.reshape(targets * levels, dim).T).unflatten(-1, (targets, levels)) + self.bias
        return (torch.softmax(logits, dim=-1) * self.values).sum(-1)

    @staticmethod
    def _fitted(config: LogregMeanConfig, x: np.ndarray, y: np.ndarray) -> list:
        from sklearn.linear_model import LogisticRegression  # heavy (scipy, ~2 s): only when fitted

        fitted = []
        for k in range(y.shape[1]):
            values, codes = np.unique(np.round(y[:, k], 6), return_inverse=True)
            if len(values) > config.max_values:
                raise ConfigError(f"logreg_mean: target {k + 1} has {len(values)} distinct values (more than "
                                  f"max_values {config.max_values}); it is for ordinal levels: use svr or ridge")
            model = LogisticRegression(C=config.C, max_iter=config.max_iter).fit(x, codes)
            fitted.append((model, values[model.classes_]))
        return fitted

    @staticmethod
    def _predict(fitted: list, x: np.ndarray) -> np.ndarray:
        return np.stack([m.predict_proba(x) @ values for m, values in fitted], axis=1)

    @classmethod
    def _arrays(cls, fitted: list, config: LogregMeanConfig, x: np.ndarray):
        levels = max(len(values) for _, values in fitted)
        weight = np.zeros((len(fitted), levels, x.shape[1]))
        bias, table = np.full((len(fitted), levels), -1e4), np.zeros((len(fitted), levels))
        for k, (model, values) in enumerate(fitted):
            coef, intercept = model.coef_, model.intercept_
            if len(values) == 2:  # scikit-learn keeps one row for two classes: logits (0, w.x + b)
                coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept])
            weight[k, :len(values)], bias[k, :len(values)], table[k, :len(values)] = coef, intercept, values
        as_tensor = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        return replace(config, levels=levels), {"weight": as_tensor(weight), "bias": as_tensor(bias),
                                                "values": as_tensor(table)}

    @staticmethod
    def _mapped(state: dict, scale: np.ndarray, shift: np.ndarray) -> dict:
        """The output map on the values: probabilities sum to 1, so the mapped mean is the mean of mapped values."""
        state["values"] = (state["values"] * torch.tensor(scale, dtype=torch.float32)[:, None]
                           + torch.tensor(shift, dtype=torch.float32)[:, None])
        return state
