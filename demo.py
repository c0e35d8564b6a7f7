"""A tour of bridge.py and estimators.py on data that ships with scikit-learn: ``python demo.py``, or
``python demo.py --quick`` for every section with fewer epochs and smaller data (lower scores, same steps).

It compares TorchClassifier and TorchRegressor with scikit-learn's MLP and linear models under 5-fold
cross-validation, runs a grid search in two processes, trains a custom network through the same API,
and shows the bridge's memory rules at work. Then the feature-extraction workflows, each next to what a
scikit-learn user would try instead: PolynomialFeatures in a grid search, PCA with NumPy and with torch
tensors end to end, TF-IDF text classification, and gradient-boosted trees on a table. With matplotlib
installed (``pip install -e '.[plots]'``) it also saves a figure of the loss curves. It needs no network.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

# SciPy reads SCIPY_ARRAY_API once, when first imported (scikit-learn imports it): set it before that, so
# that the PCA block can run on torch tensors under array API dispatch.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import sklearn
import torch
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    load_iris,
    load_wine,
    make_circles,
)
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold, cross_validate, train_test_split
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler
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


def quiet_fit(model: Any, X: Any, y: Any) -> tuple[Any, float]:
    """Fit ``model`` with ConvergenceWarning silenced (the demo caps epochs); return it and the seconds."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model, time.perf_counter() - start


def polynomial_grid(max_iter: int = 200) -> dict[str, Any]:
    """StandardScaler -> PolynomialFeatures -> network in a grid search, next to the same grid with
    logistic regression.

    Concentric circles: no straight line separates them, but with x1**2 + x2**2 among the features one does.
    """
    X, y = make_circles(n_samples=240, noise=0.1, factor=0.5, random_state=SEED)
    print("\n6. StandardScaler -> PolynomialFeatures -> model on two circles, GridSearchCV over the degree")
    best = {}
    for name, model, grid in (
        (
            "network",
            TorchClassifier(max_iter=max_iter, learning_rate_init=0.01, random_state=SEED),
            {"model__hidden_layer_sizes": [(2,), (16,)]},
        ),
        ("logistic regression", LogisticRegression(), {"model__C": [1.0]}),
    ):
        # The scaler sits inside the Pipeline, so each fold scales with statistics of its own training rows.
        pipe = Pipeline([("scale", StandardScaler()), ("poly", PolynomialFeatures()), ("model", model)])
        search = GridSearchCV(pipe, {"poly__degree": [1, 2], **grid}, cv=3)
        _, seconds = quiet_fit(search, X, y)
        scores = search.cv_results_["mean_test_score"]
        print(
            f"{name:<20} best {search.best_params_}, accuracy {search.best_score_:.3f} "
            f"(worst cell {scores.min():.3f}), {seconds:.1f}s"
        )
        best[name] = dict(search.best_params_)
    print("With degree 2 the circles are linearly separable: a linear model is the honest baseline here.")
    return best


def pca_numpy_and_tensors(max_iter: int = 100) -> tuple[float, float]:
    """PCA -> TorchClassifier on digits, once on NumPy arrays and once on torch tensors under dispatch."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=SEED, stratify=y)

    def pipe() -> Any:  # whiten=True gives components of unit variance: no scaler needed after PCA
        return make_pipeline(
            PCA(n_components=30, whiten=True, svd_solver="full"),
            TorchClassifier(max_iter=max_iter, random_state=SEED),
        )

    numpy_model, numpy_seconds = quiet_fit(pipe(), X_train, y_train)
    numpy_accuracy = float(numpy_model.score(X_test, y_test))
    tensors = [torch.asarray(a) for a in (X_train, X_test, y_train, y_test)]
    with sklearn.config_context(array_api_dispatch=True):
        tensor_model, tensor_seconds = quiet_fit(pipe(), tensors[0], tensors[2])
        labels = tensor_model.predict(tensors[1])  # a tensor: PCA and the network never leave torch
    tensor_accuracy = float((labels == tensors[3]).double().mean())
    print("\n7. PCA(30 components) -> TorchClassifier on digits, held-out accuracy")
    print(f"NumPy arrays                   {numpy_accuracy:.3f} ({numpy_seconds:.2f}s)")
    print(
        f"torch tensors, array API       {tensor_accuracy:.3f} ({tensor_seconds:.2f}s), "
        f"predict returned a {type(labels).__module__}.{type(labels).__name__}"
    )
    return numpy_accuracy, tensor_accuracy


def is_class_or_function(obj: object) -> bool:
    # type(obj), not isinstance: isinstance reads obj.__class__, which warns on torch's deprecated aliases.
    kind = type(obj)
    return issubclass(kind, type) or kind in (types.FunctionType, types.BuiltinFunctionType)


def docstrings(package: str, limit: int) -> list[str]:
    """Up to ``limit`` distinct docstrings (200 characters or more) of the loaded modules of ``package``."""
    found: dict[str, None] = {}  # a dict keeps the first-seen order and drops duplicates
    for name in sorted(sys.modules):
        module = sys.modules[name]
        if module is None or not (name == package or name.startswith(package + ".")):
            continue
        owned = [obj for obj in vars(module).values() if is_class_or_function(obj)]
        for obj in [module, *owned]:
            text = obj.__doc__ if obj is module or getattr(obj, "__module__", None) == name else None
            if isinstance(text, str) and len(text) >= 200:
                found.setdefault(text.strip(), None)
    return list(found)[:limit]


def text_classification(max_iter: int = 20, per_package: int = 400) -> dict[str, float]:
    """TF-IDF -> TorchClassifier, LogisticRegression and MLPClassifier: which package wrote this docstring?"""
    texts, labels = [], []
    for package in ("sklearn", "numpy", "torch"):
        found = docstrings(package, per_package)
        texts += found
        labels += [package] * len(found)
    train, test, y_train, y_test = train_test_split(
        texts, labels, test_size=0.25, random_state=SEED, stratify=labels
    )
    network: dict[str, Any] = {"hidden_layer_sizes": (64,), "max_iter": max_iter, "random_state": SEED}
    models = {
        "TorchClassifier": TorchClassifier(**network),
        "MLPClassifier": MLPClassifier(**network),
        "LogisticRegression": LogisticRegression(max_iter=1000),
    }
    print(
        f"\n8. TF-IDF text classification: {len(texts)} docstrings of the installed scikit-learn, NumPy "
        "and torch, labelled by package; held-out accuracy (fit seconds)"
    )
    accuracy = {}
    for name, model in models.items():
        # float32 TF-IDF: half the memory, and the networks train in float32
        pipe = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2, dtype=np.float32), model)
        _, seconds = quiet_fit(pipe, train, y_train)
        accuracy[name] = float(pipe.score(test, y_test))
        print(f"{name:<20} {accuracy[name]:.3f} ({seconds:.2f}s)", flush=True)
    return accuracy


def trees_on_a_table(max_iter: int = 200) -> dict[str, float]:
    """One line: gradient-boosted trees next to the network on a numeric table."""
    X, y = load_breast_cancer(return_X_y=True)
    cv = StratifiedKFold(5, shuffle=True, random_state=SEED)
    network = make_pipeline(StandardScaler(), TorchClassifier(max_iter=max_iter, random_state=SEED))
    trees = HistGradientBoostingClassifier(random_state=SEED)  # no scaler: trees split on raw values
    (net, _, net_s), (hgb, _, hgb_s) = (cross_validated(m, X, y, cv) for m in (network, trees))
    print(
        f"\n9. breast_cancer, 5-fold accuracy: TorchClassifier {net:.3f} ({net_s:.2f}s per fit), "
        f"HistGradientBoostingClassifier {hgb:.3f} ({hgb_s:.2f}s). On a table of numbers try trees first "
        "(no scaling, missing values and categories built in, little tuning); a network earns its place on "
        "text, images, many outputs, a GPU, or a model of your own."
    )
    return {"TorchClassifier": net, "HistGradientBoostingClassifier": hgb}


def loss_curves_figure(path: Path, max_iter: int = 100) -> Path | None:
    """Save TorchClassifier's and MLPClassifier's loss and validation curves on digits; None without
    matplotlib."""
    try:
        # Imported by name: matplotlib is an optional extra, and mypy checks this file without it.
        figure_module = importlib.import_module("matplotlib.figure")
    except ImportError:
        print("\n10. Loss curves: install matplotlib for a figure (pip install -e '.[plots]')")
        return None
    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X)  # one data set for both, scaled once: this is a picture
    settings: dict[str, Any] = {"max_iter": max_iter, "early_stopping": True, "random_state": SEED}
    # The Figure class needs no GUI backend and leaves pyplot's global state alone.
    figure = figure_module.Figure(figsize=(10, 4), layout="constrained")
    loss_axes, score_axes = figure.subplots(1, 2)
    for model in (TorchClassifier(**settings), MLPClassifier(**settings)):
        quiet_fit(model, X, y)
        name = type(model).__name__
        loss_axes.plot(np.arange(1, len(model.loss_curve_) + 1), model.loss_curve_, label=name)
        scores = list(model.validation_scores_ or [])  # set, since early stopping ran
        score_axes.plot(np.arange(1, len(scores) + 1), scores, label=name)
    loss_axes.set(title="training loss (loss_curve_)", xlabel="epoch", ylabel="log loss", yscale="log")
    score_axes.set(title="validation accuracy (validation_scores_)", xlabel="epoch", ylabel="accuracy")
    for axes in (loss_axes, score_axes):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.suptitle("digits, early_stopping=True, same seed")
    figure.savefig(path, dpi=100)
    print(f"\n10. Loss curves of TorchClassifier and MLPClassifier on digits saved to {path}")
    return path


# python demo.py --quick: every section, with fewer epochs (and docstrings), in a fraction of the time.
QUICK: dict[Callable[..., object], dict[str, Any]] = {
    compare_classifiers: {"max_iter": 20},
    compare_regressors: {"max_iter": 30},
    grid_search: {"max_iter": 20},
    custom_module: {"max_iter": 5},
    polynomial_grid: {"max_iter": 50},
    pca_numpy_and_tensors: {"max_iter": 20},
    text_classification: {"max_iter": 10, "per_package": 150},
    trees_on_a_table: {"max_iter": 20},
    loss_curves_figure: {"max_iter": 20},
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A tour of bridge.py and estimators.py.")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and docstrings: lower scores")
    quick = parser.parse_args(argv).quick
    start = time.perf_counter()
    print(f"torch {torch.__version__}, numpy {np.__version__}, {torch.get_num_threads()} threads")
    sections: list[Callable[..., object]] = [
        compare_classifiers,
        compare_regressors,
        grid_search,
        custom_module,
        bridge_tour,
        polynomial_grid,
        pca_numpy_and_tensors,
        text_classification,
        trees_on_a_table,
    ]
    for section in sections:  # the full tour runs each with its defaults
        section(**(QUICK.get(section, {}) if quick else {}))
    curves = QUICK[loss_curves_figure] if quick else {}
    loss_curves_figure(Path(tempfile.gettempdir()) / "torch_sklearn_bridge_loss_curves.png", **curves)
    print(f"\ndone in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
