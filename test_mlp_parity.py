"""scikit-learn's own MLP tests, run against TorchClassifier and TorchRegressor.

"Drop-in for MLPClassifier and MLPRegressor" is specified by scikit-learn's
``sklearn/neural_network/tests/test_mlp.py``. This module loads that file from the installed
scikit-learn at run time (nothing of it is copied here) with the two class names bound to ours, and
collects its test cases as if they were written here. Two things are relaxed, nothing else:

- ``pytest.raises(..., match=...)`` and ``pytest.warns(..., match=...)`` check the exception or
  warning type only, since our messages are our own words;
- the cases in ``EXCLUDED`` are not collected: each reads or writes MLP's private internals, which no
  other estimator has. Every behaviour they check is checked in test_estimators.py too (named below).
"""

from __future__ import annotations

import importlib.util
import os
import types
from typing import Any
from unittest import mock

import pytest
import sklearn.neural_network

from estimators import TorchClassifier, TorchRegressor

# name -> why it cannot run against another estimator, and where its behaviour is tested here.
EXCLUDED = {
    "test_fit": "assigns coefs_ and intercepts_, read-only views here (test_first_sgd_epoch_equals_mlps)",
    "test_gradient": "calls MLP's private _loss_grad_lbfgs (ours: autograd's, plus the L2 term's by hand)",
}


class _TypeOnlyPytest:
    """pytest as the loaded tests see it: ``raises`` and ``warns`` ignore ``match=``."""

    def __getattr__(self, name: str) -> Any:
        return getattr(pytest, name)

    @staticmethod
    def raises(*args: Any, match: Any = None, **kwargs: Any) -> Any:
        return pytest.raises(*args, **kwargs)

    @staticmethod
    def warns(*args: Any, match: Any = None, **kwargs: Any) -> Any:
        return pytest.warns(*args, **kwargs)


def _load_mlp_tests() -> types.ModuleType:
    """The installed test_mlp.py, executed with MLPClassifier/MLPRegressor bound to ours.

    The names are swapped on ``sklearn.neural_network`` only while the file runs its imports and
    decorators (parametrize lists name the classes), then put back.
    """
    spec = importlib.util.find_spec("sklearn.neural_network.tests.test_mlp")
    if spec is None or spec.loader is None:
        raise ImportError("scikit-learn was installed without its tests; reinstall it from a wheel")
    module = importlib.util.module_from_spec(spec)
    with mock.patch.multiple(
        sklearn.neural_network, MLPClassifier=TorchClassifier, MLPRegressor=TorchRegressor
    ):
        spec.loader.exec_module(module)
    module.pytest = _TypeOnlyPytest()  # type: ignore[attr-defined]  # the loaded tests' own global
    return module


_MLP_TESTS = _load_mlp_tests()
globals().update(
    {
        name: test
        for name, test in vars(_MLP_TESTS).items()
        if name.startswith("test_") and name not in EXCLUDED
    }
)


@pytest.fixture
def global_random_seed() -> int:
    """scikit-learn's conftest fixture of that name: 42 unless SKLEARN_TESTS_GLOBAL_RANDOM_SEED says."""
    return int(os.environ.get("SKLEARN_TESTS_GLOBAL_RANDOM_SEED", "42"))


def test_every_exclusion_names_a_case_that_exists() -> None:
    assert set(EXCLUDED) <= set(vars(_MLP_TESTS))
    assert _MLP_TESTS.MLPClassifier is TorchClassifier and _MLP_TESTS.MLPRegressor is TorchRegressor
