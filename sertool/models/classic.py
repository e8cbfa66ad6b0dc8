"""Classic models on utterance-level features: ``svm`` (linear or RBF), ``logreg`` and a small ``mlp``.

``svm`` and ``logreg`` are fitted with scikit-learn (trainer ``"fit"``); the
fitted arrays (coefficients, intercepts, support vectors, a softmax
temperature) become buffers of a small torch module, so their checkpoints
hold tensors only, load with ``weights_only=True``, and score through the
same ``evaluate`` / ``predict`` path as every other model. No pickle, no
joblib.

- ``svm`` with ``kernel="linear"``: scikit-learn's ``LinearSVC`` (one-vs-rest,
  squared hinge). ``kernel="rbf"``: one binary ``SVC`` per class against the
  rest; the module keeps the union of their support vectors and a dual
  coefficient matrix (C, n_support). Scores are the one-vs-rest decision
  values; probabilities are ``softmax(decision / T)`` with the temperature
  ``T`` fitted (negative log-likelihood, log-spaced grid) on the validation
  speakers.
- ``logreg``: multinomial logistic regression (lbfgs), its own probabilities.
- ``C``: 0 (the default) chooses C on the validation speakers (highest UA over
  ``C_grid``, ties to the smaller C; ``auto`` is 1e-4 ... 1 for linear models
  and 0.1 ... 100 for the RBF kernel). The model is fitted on the training
  utterances only, as the networks are, so the validation speakers stay
  unseen for ``sertool fuse``. ``refit=true`` refits on training +
  validation utterances with the chosen C (keeping the temperature of the
  training-only fit); such a model cannot be fused.
- ``mlp``: a torch MLP (trainer ``"sgd"``) over the utterance vector: Linear,
  LayerNorm-free ReLU layers with dropout, trained by the usual loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from sertool.errors import ConfigError
from sertool.metrics import confusion, scores
from sertool.models.registry import register_model

UTTERANCE_FEATURES = "egemaps_functionals"


LINEAR_C_GRID = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
RBF_C_GRID = (0.1, 1.0, 10.0, 100.0)


def _check_grid(grid: tuple[float, ...]) -> None:
    if grid and min(grid) <= 0:
        raise ConfigError(f"C_grid {list(grid)} must hold positive numbers")


def _upgrade_grid(values: dict) -> dict:
    """Checkpoints before typed configs wrote ``C_grid = "auto"`` for the kernel's own grid (now ``[]``)."""
    return {**values, "C_grid": ""} if values.get("C_grid") == "auto" else values


@dataclass(frozen=True)
class SvmConfig:
    """SVM settings; ``support_vectors`` is set by fitting (RBF) and sizes the stored arrays."""

    kernel: str = "linear"
    C: float = 0.0
    #: C values tried on validation; empty: by kernel (LINEAR_C_GRID or RBF_C_GRID)
    C_grid: tuple[float, ...] = ()
    gamma: float = 0.0
    class_weight: str = "balanced"
    max_iter: int = 20000
    refit: bool = False
    support_vectors: int = 0

    def __post_init__(self):
        if self.kernel not in ("linear", "rbf"):
            raise ConfigError(f"svm kernel {self.kernel!r} must be linear or rbf")
        if self.class_weight not in ("balanced", "none"):
            raise ConfigError(f"class_weight {self.class_weight!r} must be balanced or none")
        _check_grid(self.C_grid)

    upgrade = staticmethod(_upgrade_grid)

    @property
    def grid(self) -> tuple[float, ...]:
        """C values tried on validation: ``C_grid``, or the kernel's grid when it is empty."""
        return self.C_grid or (LINEAR_C_GRID if self.kernel == "linear" else RBF_C_GRID)


@dataclass(frozen=True)
class LogregConfig:
    """Multinomial logistic regression settings (``C``: inverse L2 strength; 0 = choose on validation)."""

    C: float = 0.0
    C_grid: tuple[float, ...] = LINEAR_C_GRID
    class_weight: str = "balanced"
    max_iter: int = 5000
    refit: bool = False

    def __post_init__(self):
        if self.class_weight not in ("balanced", "none"):
            raise ConfigError(f"class_weight {self.class_weight!r} must be balanced or none")
        _check_grid(self.C_grid)
        if not self.C_grid:
            raise ConfigError("logreg C_grid is empty; give the C values to try, e.g. --set C_grid=0.01,0.1,1")

    @property
    def grid(self) -> tuple[float, ...]:
        return self.C_grid


def _vector(feats: torch.Tensor) -> torch.Tensor:
    return feats[:, 0]  # utterance-level stores hold one row per utterance


def _softmax_temperature(decision: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the NLL of softmax(decision / T) on (decision (N, C), y (N,))."""
    best, best_t = np.inf, 1.0
    for t in np.logspace(-3, 2, 51):
        z = decision / t
        z = z - z.max(axis=1, keepdims=True)
        nll = -(z[np.arange(len(y)), y] - np.log(np.exp(z).sum(axis=1))).mean()
        if nll < best:
            best, best_t = nll, float(t)
    return best_t


class _Fitted(nn.Module):
    """Base of the fitted estimators: ``fit(x, y, xv, yv) -> (config, state_dict, log rows)``."""

    config_field = "C"

    def __init__(self, config, *, input_dim: int, num_classes: int):
        super().__init__()
        self.config, self.input_dim, self.num_classes = config, input_dim, num_classes
        self.register_buffer("temperature", torch.ones(()))

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, x_valid: np.ndarray, y_valid: np.ndarray, *, config,
            num_classes: int, log=lambda m: None):
        """Choose C on the validation rows (unless given), fit; returns (config, state, rows).

        ``x`` (N, D) and ``x_valid`` (M, D) are normalised float32; ``y``, ``y_valid`` class indices.
        ``rows`` are (C, valid UA, valid WA) per value tried.
        """
        rows = []
        grid = [config.C] if config.C > 0 else list(config.grid)
        if len(grid) > 1 and len(y_valid) == 0:
            raise ConfigError(f"{cls.name}: C=0 chooses C on validation speakers, but this fold has none; "
                              "set C (e.g. --set C=0.01)")
        best, chosen = -1.0, grid[0]
        for c in grid if len(y_valid) else []:
            probe = cls._estimator(replace(config, C=c), num_classes).fit(x, y)
            s = scores(confusion(y_valid, cls._decision(probe, x_valid, num_classes).argmax(1), num_classes))
            rows.append((c, s["UA"], s["WA"]))
            log(f"  {cls.name} C={c:g}: valid UA {s['UA']:.3f} WA {s['WA']:.3f}")
            if s["UA"] > best + 1e-12:
                best, chosen = s["UA"], c
        config = replace(config, C=chosen)
        temperature = 1.0
        if cls.calibrate and len(y_valid):
            probe = cls._estimator(config, num_classes).fit(x, y)
            temperature = _softmax_temperature(cls._decision(probe, x_valid, num_classes), y_valid)
        refit = config.refit and len(y_valid)
        both_x = np.concatenate([x, x_valid]) if refit else x
        both_y = np.concatenate([y, y_valid]) if refit else y
        config, state = cls._arrays(cls._estimator(config, num_classes).fit(both_x, both_y), config, both_x,
                                    num_classes)
        state["temperature"] = torch.tensor(temperature, dtype=torch.float32)
        return config, state, rows


def add_kernel_buffers(module: nn.Module, config, *, input_dim: int, outputs: int) -> None:
    """The buffers of a fitted linear or RBF kernel machine with ``outputs`` outputs, zero until loaded.

    Linear: ``coef`` (outputs, D). RBF: ``support`` (config.support_vectors, D), ``dual_coef``
    (outputs, support_vectors) and ``gamma`` (). Both: ``intercept`` (outputs,).
    """
    if config.kernel == "linear":
        module.register_buffer("coef", torch.zeros(outputs, input_dim))
    else:
        module.register_buffer("support", torch.zeros(config.support_vectors, input_dim))
        module.register_buffer("dual_coef", torch.zeros(outputs, config.support_vectors))
        module.register_buffer("gamma", torch.zeros(()))
    module.register_buffer("intercept", torch.zeros(outputs))


def kernel_outputs(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Outputs (B, outputs) of the kernel machine in ``module``'s buffers for vectors ``x`` (B, D)."""
    if module.config.kernel == "linear":
        return x @ module.coef.T + module.intercept
    kernel = torch.exp(-module.gamma * torch.cdist(x.double(), module.support.double()).pow(2)).float()
    return kernel @ module.dual_coef.T + module.intercept


@register_model("svm", SvmConfig, level="utterance", features=UTTERANCE_FEATURES, trainer="fit",
                tasks=("classification",), recipe={"norm": "speaker"}, paper_recipe={"norm": "global"})
class Svm(_Fitted):
    """Support vector machine (linear or RBF, one-vs-rest) on utterance-level features."""

    calibrate = True

    def __init__(self, config: SvmConfig, *, input_dim: int, num_classes: int):
        super().__init__(config, input_dim=input_dim, num_classes=num_classes)
        add_kernel_buffers(self, config, input_dim=input_dim, outputs=num_classes)

    def decision(self, x: torch.Tensor) -> torch.Tensor:
        """One-vs-rest decision values (B, C) of vectors ``x`` (B, D)."""
        return kernel_outputs(self, x)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.decision(_vector(feats)) / self.temperature

    @staticmethod
    def _estimator(config: SvmConfig, num_classes: int):
        from sklearn.svm import SVC, LinearSVC  # heavy (pulls in scipy, ~2 s): loaded only when an SVM is fitted

        weight = "balanced" if config.class_weight == "balanced" else None
        if config.kernel == "linear":
            return LinearSVC(C=config.C, class_weight=weight, max_iter=config.max_iter, dual="auto", random_state=0)
        return _OneVsRest([SVC(C=config.C, kernel="rbf", gamma=config.gamma or "scale", class_weight=weight)
                           for _ in range(num_classes)])

    @staticmethod
    def _decision(estimator, x: np.ndarray, num_classes: int) -> np.ndarray:
        d = estimator.decision_function(x)
        return np.stack([-d / 2, d / 2], axis=1) if d.ndim == 1 else d

    @classmethod
    def _arrays(cls, estimator, config: SvmConfig, x: np.ndarray, num_classes: int):
        if config.kernel == "linear":
            coef, intercept = estimator.coef_, estimator.intercept_
            if coef.shape[0] == 1:  # binary: one hyperplane, split into two logits
                coef, intercept = np.concatenate([-coef / 2, coef / 2]), np.array([-intercept[0] / 2, intercept[0] / 2])
            return config, {"coef": torch.tensor(coef, dtype=torch.float32),
                            "intercept": torch.tensor(intercept, dtype=torch.float32)}
        support = np.unique(np.concatenate([m.support_ for m in estimator.models]))
        position = {int(k): j for j, k in enumerate(support)}
        dual = np.zeros((num_classes, len(support)))
        for c, m in enumerate(estimator.models):
            dual[c, [position[int(k)] for k in m.support_]] = m.dual_coef_[0]
        gamma = estimator.models[0]._gamma
        return replace(config, support_vectors=len(support)), {
            "support": torch.tensor(x[support], dtype=torch.float32),
            "dual_coef": torch.tensor(dual, dtype=torch.float32),
            "intercept": torch.tensor([m.intercept_[0] for m in estimator.models], dtype=torch.float32),
            "gamma": torch.tensor(gamma, dtype=torch.float32)}


class _OneVsRest:
    """One binary estimator per class (class c against the rest), sklearn-style fit/decision_function."""

    def __init__(self, models):
        self.models = models

    def fit(self, x, y):
        for c, m in enumerate(self.models):
            m.fit(x, (y == c).astype(int))
        return self

    def decision_function(self, x):
        return np.stack([m.decision_function(x) for m in self.models], axis=1)


@register_model("logreg", LogregConfig, level="utterance", features=UTTERANCE_FEATURES, trainer="fit",
                tasks=("classification",), recipe={"norm": "speaker"}, paper_recipe={"norm": "global"})
class Logreg(_Fitted):
    """Multinomial logistic regression on utterance-level features."""

    calibrate = False

    def __init__(self, config: LogregConfig, *, input_dim: int, num_classes: int):
        super().__init__(config, input_dim=input_dim, num_classes=num_classes)
        self.register_buffer("coef", torch.zeros(num_classes, input_dim))
        self.register_buffer("intercept", torch.zeros(num_classes))

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return (_vector(feats) @ self.coef.T + self.intercept) / self.temperature

    @staticmethod
    def _estimator(config: LogregConfig, num_classes: int):
        from sklearn.linear_model import LogisticRegression  # heavy (pulls in scipy, ~2 s): only when fitted

        return LogisticRegression(C=config.C, max_iter=config.max_iter,
                                  class_weight="balanced" if config.class_weight == "balanced" else None)

    @staticmethod
    def _decision(estimator, x: np.ndarray, num_classes: int) -> np.ndarray:
        return estimator.predict_log_proba(x)

    @classmethod
    def _arrays(cls, estimator, config: LogregConfig, x: np.ndarray, num_classes: int):
        coef, intercept = estimator.coef_, estimator.intercept_
        if coef.shape[0] == 1:  # binary: sklearn keeps one row; softmax of [0, z] equals sigmoid(z)
            coef, intercept = np.concatenate([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
        return config, {"coef": torch.tensor(coef, dtype=torch.float32),
                        "intercept": torch.tensor(intercept, dtype=torch.float32)}


@dataclass(frozen=True)
class MlpConfig:
    """A small MLP over one utterance vector: ``hidden`` layer widths."""

    hidden: tuple[int, ...] = (256, 128)
    dropout: float = 0.3
    input_dropout: float = 0.1

    def __post_init__(self):
        if any(w < 1 for w in self.hidden):
            raise ConfigError(f"mlp hidden widths {list(self.hidden)} must be positive")
        if not (0 <= self.dropout < 1 and 0 <= self.input_dropout < 1):
            raise ConfigError("mlp dropout and input_dropout must be in [0, 1)")


@register_model("mlp", MlpConfig, level="utterance", features=UTTERANCE_FEATURES, trainer="sgd",
                recipe={"norm": "speaker", "epochs": 60, "lr": 1e-3, "batch_size": 32, "weight_decay": 1e-2,
                        "schedule": "cosine", "warmup_epochs": 3, "label_smoothing": 0.1, "specaugment": False,
                        "selection": "last"},
                paper_recipe={"norm": "global", "epochs": 100, "lr": 1e-3, "schedule": "constant",
                              "specaugment": False, "selection": "best", "patience": 20})
class Mlp(nn.Module):
    """Multi-layer perceptron on utterance-level features."""

    def __init__(self, config: MlpConfig, *, input_dim: int, num_classes: int):
        super().__init__()
        widths = list(config.hidden)
        layers: list[nn.Module] = [nn.Dropout(config.input_dropout)]
        for w_in, w_out in zip([input_dim] + widths, widths):
            layers += [nn.Linear(w_in, w_out), nn.ReLU(), nn.Dropout(config.dropout)]
        layers.append(nn.Linear(([input_dim] + widths)[-1], num_classes))
        self.net = nn.Sequential(*layers)
        self.config = config

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(_vector(feats))
