"""A tour of bridge.py and estimators.py on data that ships with scikit-learn: ``python demo.py``.

It compares TorchClassifier and TorchRegressor with scikit-learn's MLP and linear models under 5-fold
cross-validation, runs a grid search in two processes, trains a custom network through the same API,
and shows the bridge's memory rules at work. It needs no network and runs in about a minute on 2 cores.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_validate
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from bridge import shares_memory, to_numpy, to_tensor
from estimators import TorchClassifier, TorchRegressor

CLASSIFICATION = {
    "iris": load_iris,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
}
SEED = 0


def cross_validated(model: Any, X: Any, y: Any, cv: Any) -> tuple[float, float, float]:
    """(mean score, its standard deviation, mean fit seconds) over the folds of ``cv``."""
    with warnings.catch_warnings():  # the demo caps epochs to stay fast; converged or not, we report
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = cross_validate(model, X, y, cv=cv)
    return (
        float(result["test_score"].mean()),
        float(result["test_score"].std()),
        float(result["fit_time"].mean()),
    )


def compare_classifiers(
    max_iter: int = 200, datasets: dict[str, Callable[..., Any]] = CLASSIFICATION
) -> None:
    """TorchClassifier next to MLPClassifier and LogisticRegression: accuracy and fit time."""
    models = {
        "TorchClassifier": TorchClassifier(max_iter=max_iter, random_state=SEED),
        "MLPClassifier": MLPClassifier(max_iter=max_iter, random_state=SEED),
        "LogisticRegression": LogisticRegression(max_iter=1000),
    }
    print(f"\n1. Classification: 5-fold accuracy (fit seconds per fold), max_iter={max_iter}")
    print(f"{'data set':<15}" + "".join(f"{name:>26}" for name in models))
    for data_name, load in datasets.items():
        X, y = load(return_X_y=True)
        cv = StratifiedKFold(5, shuffle=True, random_state=SEED)
        cells = []
        for model in models.values():
            mean, std, seconds = cross_validated(make_pipeline(StandardScaler(), model), X, y, cv)
            cells.append(f"{mean:.3f} ± {std:.3f} ({seconds:5.2f}s)")
        print(f"{data_name:<15}" + "".join(f"{cell:>26}" for cell in cells), flush=True)


def compare_regressors(max_iter: int = 200) -> None:
    """TorchRegressor next to MLPRegressor and Ridge on diabetes; the target is scaled for the networks."""
    X, y = load_diabetes(return_X_y=True)

    def scaled(model: Any) -> Any:  # networks train best on a standardised target
        return TransformedTargetRegressor(
            make_pipeline(StandardScaler(), model), transformer=StandardScaler()
        )

    models = {
        "TorchRegressor": scaled(TorchRegressor(max_iter=max_iter, random_state=SEED)),
        "MLPRegressor": scaled(MLPRegressor(max_iter=max_iter, random_state=SEED)),
        "Ridge": make_pipeline(StandardScaler(), Ridge()),
    }
    print(f"\n2. Regression on diabetes: 5-fold R^2 (fit seconds per fold), max_iter={max_iter}")
    cv = KFold(5, shuffle=True, random_state=SEED)
    for name, model in models.items():
        mean, std, seconds = cross_validated(model, X, y, cv)
        print(f"{name:<20} {mean:.3f} ± {std:.3f} ({seconds:.2f}s)", flush=True)


def grid_search(max_iter: int = 100) -> dict[str, Any]:
    """An MLP-style parameter grid, searched in two worker processes."""
    X, y = load_breast_cancer(return_X_y=True)
    grid = {
        "torchclassifier__hidden_layer_sizes": [(16,), (64,)],
        "torchclassifier__alpha": [1e-4, 1e-1],
    }
    pipe = make_pipeline(StandardScaler(), TorchClassifier(max_iter=max_iter, random_state=SEED))
    search = GridSearchCV(pipe, grid, cv=3, n_jobs=2)
    print("\n3. GridSearchCV on breast_cancer, n_jobs=2")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    print(f"best parameters {search.best_params_}, accuracy {search.best_score_:.3f}")
    return dict(search.best_params_)


class PixelMixer(nn.Module):
    """Not an MLP: a residual block with layer norm and dropout, for 8x8 digit images."""

    def __init__(self, n_features: int, n_outputs: int, width: int = 64) -> None:
        super().__init__()
        self.embed = nn.Linear(n_features, width)
        self.block = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU(), nn.Dropout(0.1))
        self.head = nn.Linear(width, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        out: torch.Tensor = self.head(h + self.block(h))  # (n_samples, n_outputs): raw logits
        return out


def custom_module(max_iter: int = 50) -> float:
    """A custom nn.Module trained through the same estimator API, inside a Pipeline."""
    X, y = load_digits(return_X_y=True)
    model = TorchClassifier(module=PixelMixer, learning_rate_init=3e-3, max_iter=max_iter, random_state=SEED)
    mean, std, seconds = cross_validated(make_pipeline(StandardScaler(), model), X, y, StratifiedKFold(5))
    print(
        f"\n4. A custom module (PixelMixer) on digits: accuracy {mean:.3f} ± {std:.3f} "
        f"({seconds:.2f}s per fit)"
    )
    return mean


def bridge_tour() -> None:
    """The bridge's rules on three arrays a tutorial would convert carelessly."""
    print("\n5. The bridge")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    t = to_tensor(a)
    print(f"to_tensor(writable float32 array) shares memory: {shares_memory(t, a)} (zero copy)")
    frozen = np.frombuffer(b"\x00" * 24, dtype=np.float32)
    print(
        f"to_tensor(np.frombuffer(bytes)) shares memory: {shares_memory(to_tensor(frozen), frozen)} "
        "(read-only memory is copied, never aliased writable)"
    )
    w = torch.ones(3, requires_grad=True)
    view = to_numpy(w)
    print(
        f"to_numpy(requires_grad tensor): shares {shares_memory(view, w)}, writable {view.flags.writeable} "
        "(a NumPy write cannot corrupt autograd)"
    )


def main() -> None:
    start = time.perf_counter()
    print(f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} threads")
    compare_classifiers()
    compare_regressors()
    grid_search()
    custom_module()
    bridge_tour()
    print(f"\ndone in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
