"""The estimators with arrays of other array API libraries than NumPy and torch (array_api_strict here).

scikit-learn's own check_array_api_input runs through test_estimators.py's parametrize_with_checks;
these tests pin what docs/estimators.md adds: values, devices, and the same-library rule.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import sklearn
import torch
from sklearn.exceptions import ConvergenceWarning

from bridge import NDArray, to_numpy, to_tensor
from estimators import TorchClassifier, TorchRegressor

xp = pytest.importorskip("array_api_strict")
TINY: dict[str, Any] = {"hidden_layer_sizes": (8,), "max_iter": 5, "random_state": 0}
DEVICES = list(xp.__array_namespace_info__().devices())


def blobs(n: int = 40) -> tuple[NDArray, NDArray]:
    """float32 and int32, which every array_api_strict device holds (some lack float64 or int64)."""
    rng = np.random.default_rng(0)
    y = np.arange(n, dtype=np.int32) % 3
    return (rng.normal(size=(n, 4)) + 2.0 * y[:, None]).astype(np.float32), y


def host(a: Any) -> NDArray:
    """Any array as NumPy, through the bridge (np.asarray refuses array_api_strict's other devices)."""
    return to_numpy(to_tensor(a))


@pytest.fixture(autouse=True)
def _short_fits() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=5 on purpose
        yield


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_outputs_follow_x_into_its_library_and_device_with_numpy_values(device: Any) -> None:
    X, y = blobs()
    X_xp, y_xp = xp.asarray(X, device=device), xp.asarray(y, device=device)
    reference = TorchClassifier(**TINY).fit(X, y)
    regressor = TorchRegressor(**TINY).fit(X, X[:, 0])
    with sklearn.config_context(array_api_dispatch=True):
        clf = TorchClassifier(**TINY).fit(X_xp, y_xp)
        outputs = {
            "predict": (clf.predict(X_xp), reference.predict(X)),
            "predict_proba": (clf.predict_proba(X_xp), reference.predict_proba(X)),
            "predict_log_proba": (clf.predict_log_proba(X_xp), reference.predict_log_proba(X)),
            "regressor": (TorchRegressor(**TINY).fit(X_xp, X_xp[:, 0]).predict(X_xp), regressor.predict(X)),
        }
    for name, (got, expected) in outputs.items():
        assert isinstance(got, type(X_xp)) and got.device == device, name
        assert np.array_equal(host(got), expected), f"{name}: the same data trains the same model"


def test_without_dispatch_outputs_are_numpy() -> None:
    X, y = blobs()
    X_xp = xp.asarray(X)
    clf = TorchClassifier(**TINY).fit(X_xp, xp.asarray(y))
    assert isinstance(clf.predict(X_xp), np.ndarray) and isinstance(clf.predict_proba(X_xp), np.ndarray)


def test_a_model_fitted_on_a_foreign_library_under_dispatch_predicts_only_from_it() -> None:
    X, y = blobs()
    X_xp = xp.asarray(X)
    with sklearn.config_context(array_api_dispatch=True):
        clf = TorchClassifier(**TINY).fit(X_xp, xp.asarray(y))
        for method in ("predict", "predict_proba", "predict_log_proba"):
            with pytest.raises(ValueError, match=rf"TorchClassifier\.{method}\(\).*array_api_strict.*numpy"):
                getattr(clf, method)(X)
            with pytest.raises(ValueError, match="torch"):
                getattr(clf, method)(torch.from_numpy(X))
    assert isinstance(clf.predict(X), np.ndarray)  # without dispatch, anything goes in, NumPy comes out


def test_a_model_fitted_on_numpy_predicts_from_any_library() -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        assert isinstance(clf.predict(xp.asarray(X)), type(xp.asarray(X)))
        assert isinstance(clf.predict(torch.from_numpy(X)), torch.Tensor)
