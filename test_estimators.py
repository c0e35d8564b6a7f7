"""scikit-learn's own estimator checks, laws and examples for estimators.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from estimators import TorchClassifier, TorchRegressor

# Small and fast, but trained enough for the checks' accuracy thresholds (no poor_score tag).
FAST: dict[str, Any] = {"max_iter": 60, "learning_rate_init": 0.01, "hidden_layer_sizes": (32,)}


@parametrize_with_checks(
    [TorchClassifier(**FAST), TorchRegressor(**FAST)], expected_failed_checks=lambda est: {}
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # short max_iter on purpose
def test_scikit_learn_estimator_checks(estimator: Any, check: Callable[[Any], None]) -> None:
    check(estimator)
