"""scikit-learn's own estimator checks, laws and examples for estimators.py."""

from __future__ import annotations

import copy
import gc
import io
import pickle
import tracemalloc
import warnings
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import sklearn
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks
from torch import nn

from bridge import NDArray
from estimators import TorchClassifier, TorchRegressor

# Small and fast, but trained enough for the checks' accuracy thresholds (no poor_score tag).
FAST: dict[str, Any] = {"max_iter": 60, "learning_rate_init": 0.01, "hidden_layer_sizes": (32,)}


_CHECKS = parametrize_with_checks(
    [TorchClassifier(**FAST), TorchRegressor(**FAST)], expected_failed_checks=lambda est: {}
)


# list(): scikit-learn 1.6 passes pytest a generator, which pytest deprecates (a warning, so an error here).
@pytest.mark.parametrize(_CHECKS.args[0], list(_CHECKS.args[1]), **_CHECKS.kwargs)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # short max_iter on purpose
def test_scikit_learn_estimator_checks(estimator: Any, check: Callable[[Any], None]) -> None:
    check(estimator)


# --- data and helpers ------------------------------------------------------------------------


def blobs(n: int = 60, n_features: int = 4, n_classes: int = 3, seed: int = 0) -> tuple[NDArray, NDArray]:
    """Well-separated classes: class k sits around (2k, 2k, ...)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % n_classes
    return rng.normal(size=(n, n_features)) * 0.5 + 2.0 * y[:, None], y


def regression(
    n: int = 60, n_features: int = 4, n_outputs: int = 1, seed: int = 0
) -> tuple[NDArray, NDArray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    Y = X @ rng.normal(size=(n_features, n_outputs)) + 0.1 * rng.normal(size=(n, n_outputs))
    return X, Y.ravel() if n_outputs == 1 else Y


TINY: dict[str, Any] = {"max_iter": 5, "hidden_layer_sizes": (8,), "random_state": 0}
ESTIMATORS: dict[str, Any] = {"TorchClassifier": TorchClassifier, "TorchRegressor": TorchRegressor}
quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
PROPERTIES = settings(max_examples=15, deadline=None)


def as_numpy(result: NDArray | torch.Tensor) -> NDArray:
    """A method's result on NumPy input, which is NumPy whatever the array API setting."""
    assert isinstance(result, np.ndarray)
    return result


def fit_predict_peak(est: Any, X: Any, y: Any) -> int:
    """Peak bytes traced while ``est`` fits and predicts. NumPy reports its allocations to
    tracemalloc, so a copy of X would show; torch's own allocations are not traced."""
    tracemalloc.start()
    try:
        est.fit(X, y)
        est.predict_proba(X)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def outputs(est: Any, X: Any) -> NDArray:
    """What a fitted estimator computes: probabilities for a classifier, predictions otherwise."""
    return est.predict_proba(X) if hasattr(est, "predict_proba") else est.predict(X)  # type: ignore[no-any-return]


# --- laws ------------------------------------------------------------------------------------

LABEL_SETS = st.sampled_from(
    [
        np.array(["cat", "dog", "emu"]),
        np.array([10, 20, 30]),
        np.array([-1, 1]),
        np.array([1.0, 2.0]),
        np.array(["no", "yes"]),
        np.array([True, False]),
        np.array([3, 1, 2, 7]),
    ]
)


@quiet
@PROPERTIES
@given(LABEL_SETS, st.integers(0, 2**16))
def test_labels_of_any_type_round_trip_through_classes(labels: NDArray, seed: int) -> None:
    X, codes = blobs(n=40, n_classes=len(labels), seed=seed)
    y = labels[codes]
    clf = TorchClassifier(**TINY).fit(X, y)
    assert_array_equal(clf.classes_, np.unique(y))
    pred, proba = as_numpy(clf.predict(X)), as_numpy(clf.predict_proba(X))
    assert pred.dtype == y.dtype and set(pred) <= set(y)
    assert proba.shape == (len(X), len(labels))
    assert (proba >= 0).all() and np.allclose(proba.sum(axis=1), 1.0)
    assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])


@quiet
@PROPERTIES
@given(st.sampled_from(sorted(ESTIMATORS)), st.integers(0, 2**16), st.booleans())
def test_inputs_are_byte_identical_after_fit_predict_and_partial_fit(
    name: str, seed: int, weighted: bool
) -> None:
    X, y = blobs(seed=seed) if name == "TorchClassifier" else regression(seed=seed)
    w = np.random.default_rng(seed).uniform(0.5, 2.0, len(X)) if weighted else None
    copies = [a.copy() for a in (X, y)] + ([] if w is None else [w.copy()])
    est = ESTIMATORS[name](**TINY)
    est.fit(X, y, sample_weight=w)
    outputs(est, X)
    if name == "TorchClassifier":
        est.partial_fit(X, y, sample_weight=w, classes=np.unique(y))
    else:
        est.partial_fit(X, y, sample_weight=w)
    for before, after in zip(copies, [X, y] + ([] if w is None else [w]), strict=True):
        assert before.tobytes() == after.tobytes()


@quiet
@PROPERTIES
@given(
    st.sampled_from(sorted(ESTIMATORS)),
    st.integers(0, 2**16),
    st.sampled_from(["adam", "sgd", "lbfgs"]),
)
def test_same_random_state_same_model(name: str, seed: int, solver: str) -> None:
    X, y = blobs(seed=seed) if name == "TorchClassifier" else regression(seed=seed)
    params = {**TINY, "random_state": seed, "solver": solver}
    first, second = (ESTIMATORS[name](**params).fit(X, y) for _ in range(2))
    assert_array_equal(outputs(first, X), outputs(second, X))


@quiet
@PROPERTIES
@given(st.sampled_from(sorted(ESTIMATORS)), st.integers(0, 2**16))
def test_pickle_round_trip_gives_identical_predictions(name: str, seed: int) -> None:
    X, y = blobs(seed=seed) if name == "TorchClassifier" else regression(seed=seed)
    est = ESTIMATORS[name](**TINY).fit(X, y)
    assert_array_equal(outputs(pickle.loads(pickle.dumps(est)), X), outputs(est, X))


@quiet
@PROPERTIES
@given(st.sampled_from(sorted(ESTIMATORS)), st.integers(0, 2**16), st.sampled_from(["adam", "lbfgs"]))
def test_sparse_and_dense_inputs_give_the_same_model(name: str, seed: int, solver: str) -> None:
    X, y = blobs(seed=seed) if name == "TorchClassifier" else regression(seed=seed)
    X[X < 0.5] = 0.0
    params = {**TINY, "solver": solver}
    dense = ESTIMATORS[name](**params).fit(X, y)
    sparse = ESTIMATORS[name](**params).fit(scipy.sparse.csr_matrix(X), y)
    assert_allclose(outputs(sparse, X), outputs(dense, X), rtol=1e-12)
    assert_allclose(outputs(sparse, scipy.sparse.csr_matrix(X)), outputs(dense, X), rtol=1e-12)


@quiet
def test_partial_fit_max_iter_times_equals_fit_with_tol_0() -> None:
    X, y = blobs()
    fitted = TorchClassifier(**{**TINY, "tol": 0.0}).fit(X, y)
    stepped = TorchClassifier(**{**TINY, "tol": 0.0})
    for _ in range(TINY["max_iter"]):
        stepped.partial_fit(X, y, classes=np.unique(y))
    assert_array_equal(stepped.predict_proba(X), fitted.predict_proba(X))
    assert stepped.n_iter_ == fitted.n_iter_ and stepped.t_ == fitted.t_
    assert stepped.loss_curve_ == fitted.loss_curve_


# --- examples: behaviour -----------------------------------------------------------------------


class Residual(nn.Module):
    """A small residual network with dropout: not an MLP, and random in training."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.stem = nn.Linear(n_features, 16)
        self.block = nn.Sequential(nn.LayerNorm(16), nn.Linear(16, 16), nn.GELU(), nn.Dropout(0.1))
        self.head = nn.Linear(16, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head(h + self.block(h))  # type: ignore[no-any-return]


@quiet
def test_a_custom_module_trains_through_the_same_api() -> None:
    X, y = blobs()
    clf = TorchClassifier(module=Residual, max_iter=30, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert isinstance(clf.module_, Residual) and clf.score(X, y) > 0.9
    again = TorchClassifier(module=Residual, max_iter=30, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert_array_equal(again.predict_proba(X), clf.predict_proba(X))  # dropout draws are seeded too
    assert not clf.module_.training  # predict relies on eval mode; fit leaves it there
    reg = TorchRegressor(
        module=lambda n_in, n_out: nn.Linear(n_in, n_out),
        max_iter=100,
        learning_rate_init=0.05,
        random_state=0,
    ).fit(*regression())
    assert reg.score(*regression()) > 0.9


def test_module_must_build_an_nn_module() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        TorchClassifier(module=lambda n_in, n_out: "not a module").fit(*blobs())  # type: ignore[arg-type, return-value]  # the wrong type is the test


@quiet
def test_fit_leaves_global_state_alone() -> None:
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    threads, default = torch.get_num_threads(), torch.get_default_dtype()
    X, y = blobs()
    for random_state in (None, 0, np.random.RandomState(1)):
        TorchClassifier(module=Residual, max_iter=3, random_state=random_state).fit(X, y)
        TorchClassifier(max_iter=3, random_state=random_state, early_stopping=True).fit(X, y)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert all(np.array_equal(a, b) for a, b in zip(np.random.get_state(), numpy_state, strict=True))
    assert torch.get_num_threads() == threads and torch.get_default_dtype() == default


@quiet
def test_concurrent_predict_from_8_threads_matches_serial() -> None:
    X, y = blobs(n=3000)
    clf = TorchClassifier(**TINY).fit(X, y)
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: clf.predict_proba(X), range(16)))
    for result in results:
        assert_array_equal(result, expected)


def test_a_diverging_learning_rate_is_a_clear_value_error() -> None:
    X, y = regression()
    reg = TorchRegressor(solver="sgd", learning_rate_init=1e6, max_iter=20, random_state=0)
    with pytest.raises(ValueError, match="learning_rate_init"):
        reg.fit(X * 1e3, y * 1e3)
    assert not hasattr(reg, "module_")  # a failed fit leaves no half-fitted state


@quiet
def test_with_early_stopping_divergence_is_recorded_as_nan_scores() -> None:
    X, y = regression(n=200)
    reg = TorchRegressor(early_stopping=True, warm_start=True, max_iter=20, random_state=0).fit(X, y)
    before = reg.predict(X)
    reg.set_params(solver="sgd", learning_rate_init=1e6).fit(X * 1e3, y * 1e3)
    assert reg.validation_scores_ is not None and np.isnan(reg.validation_scores_[-1])
    assert_array_equal(reg.predict(X), before)  # the best validated weights are kept


def test_convergence_warning_when_max_iter_ends_training() -> None:
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        TorchClassifier(max_iter=2).fit(*blobs())


@quiet
def test_verbose_prints_one_line_per_epoch_and_silent_otherwise(
    capsys: pytest.CaptureFixture[str],
) -> None:
    X, y = blobs()
    TorchClassifier(max_iter=3, tol=0.0).fit(X, y)
    assert capsys.readouterr().out == ""
    TorchClassifier(max_iter=3, tol=0.0, verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(
        line.startswith(f"Iteration {i + 1}, loss = ") for i, line in enumerate(lines)
    )


@quiet
def test_warm_start_continues_and_refuses_new_classes() -> None:
    X, y = blobs()
    clf = TorchClassifier(**{**TINY, "tol": 0.0}, warm_start=True).fit(X, y)
    clf.fit(X, y)
    assert clf.n_iter_ == 2 * TINY["max_iter"] and len(clf.loss_curve_) == clf.n_iter_
    with pytest.raises(ValueError, match="classes"):
        clf.fit(X, y + 1)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="classes="):
        TorchClassifier().partial_fit(X, y)


@quiet
def test_multilabel_and_multioutput() -> None:
    X, codes = blobs()
    Y = np.stack([codes == 0, codes == 1, codes >= 1], axis=1).astype(int)
    clf = TorchClassifier(max_iter=40, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert as_numpy(clf.predict(X)).shape == Y.shape and as_numpy(clf.predict(X)).dtype.kind == "i"
    assert clf.predict_proba(X).shape == Y.shape and clf.out_activation_ == "logistic"
    assert clf.score(X, Y) > 0.8
    X, Y = regression(n_outputs=3)
    reg = TorchRegressor(max_iter=60, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == Y.shape and reg.n_outputs_ == 3 and reg.score(X, Y) > 0.8


@quiet
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_floating_dtype_follows_X(dtype: type) -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(X.astype(dtype), y)
    expected = np.float32 if dtype == np.float32 else np.float64
    assert next(clf.module_.parameters()).dtype == (
        torch.float32 if expected == np.float32 else torch.float64
    )
    assert clf.predict_proba(X.astype(dtype)).dtype == expected


@quiet
def test_poisson_regression_predicts_positive_means() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = rng.poisson(np.exp(X @ [0.5, -0.3, 0.2]))
    reg = TorchRegressor(loss="poisson", max_iter=50, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert (reg.predict(X) > 0).all() and reg.out_activation_ == "exp"
    with pytest.raises(ValueError, match="y >= 0"):
        TorchRegressor(loss="poisson").fit(X, -y - 1)


@quiet
def test_early_stopping_records_validation_scores() -> None:
    X, y = blobs(n=200)
    clf = TorchClassifier(early_stopping=True, max_iter=50, n_iter_no_change=3, random_state=0).fit(X, y)
    assert clf.validation_scores_ is not None and clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    plain = TorchClassifier(**TINY).fit(X, y)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    assert plain.best_loss_ == min(plain.loss_curve_)


def test_lbfgs_has_no_partial_fit_like_mlp() -> None:
    assert not hasattr(TorchClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(TorchRegressor(solver="adam"), "partial_fit")


@quiet
def test_an_int_is_one_hidden_layer() -> None:
    clf = TorchClassifier(hidden_layer_sizes=7, max_iter=2).fit(*blobs())
    assert [m.out_features for m in clf.module_.modules() if isinstance(m, nn.Linear)] == [7, 3]


def test_every_shared_mlp_parameter_is_accepted_with_its_default() -> None:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    omitted = {"learning_rate", "power_t", "max_fun"}  # schedules and L-BFGS's max_fun: see README
    for ours, theirs in ((TorchClassifier(), MLPClassifier()), (TorchRegressor(), MLPRegressor())):
        mlp = {k: v for k, v in theirs.get_params().items() if k not in omitted}
        assert {k: v for k, v in ours.get_params().items() if k in mlp} == mlp


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[1.0, np.nan]] * 4), "NaN"),
        (np.array([[1.0, np.inf]] * 4), "infinity"),
        (np.ones(4), "2D array"),
        (np.ones((0, 2)), "0 sample"),
        (np.ones((4, 2)) + 1j, "Complex"),
        (np.array([["a", "b"]] * 4), "convert"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(X: NDArray, match: str) -> None:
    good_X, good_y = blobs(n=4, n_features=2, n_classes=2)
    clf = TorchClassifier(**TINY)
    with pytest.warns(ConvergenceWarning):
        clf.fit(good_X, good_y)
    state, expected = dict(vars(clf)), clf.predict_proba(good_X)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, good_y[: len(X)] if len(X) else good_y[:0])
    assert vars(clf).keys() == state.keys() and all(vars(clf)[k] is v for k, v in state.items())
    assert_array_equal(clf.predict_proba(good_X), expected)


def test_more_bad_input() -> None:
    X, y = blobs(n=8, n_features=2, n_classes=2)
    with pytest.raises(NotFittedError):
        TorchClassifier().predict(X)
    with pytest.raises(ValueError, match="one class"):
        TorchClassifier().fit(X, np.zeros(8))
    with pytest.warns(ConvergenceWarning):
        clf = TorchClassifier(**TINY).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(np.ones((2, 3)))
    with pytest.raises(ValueError, match="sample_weight"):
        TorchClassifier().fit(X, y, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="learning_rate_init"):
        TorchClassifier(learning_rate_init=-1).fit(X, y)
    with pytest.raises(TypeError, match="alpha"):
        TorchClassifier(alpha="big").fit(X, y)  # type: ignore[arg-type]  # the wrong type is the test
    with pytest.raises(ValueError, match="solver"):
        TorchClassifier(solver="rmsprop").fit(X, y)
    with pytest.raises(ValueError, match="CUDA") if not torch.cuda.is_available() else nullcontext():
        TorchClassifier(device="cuda", **TINY).fit(X, y)


# --- examples: the scikit-learn ecosystem ------------------------------------------------------


@quiet
def test_pickle_joblib_clone_and_deepcopy() -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    for other in (joblib.load(buffer), copy.deepcopy(clf), pickle.loads(pickle.dumps(clf))):
        assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
    assert not hasattr(clone(clf), "module_") and clone(clf).get_params() == clf.get_params()


@quiet
def test_pipeline_cross_val_score_and_dataframes() -> None:
    X, y = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    pipe = make_pipeline(StandardScaler(), TorchClassifier(**TINY))
    assert cross_val_score(pipe, frame, y, cv=3).mean() > 0.5
    clf = TorchClassifier(**TINY).fit(frame, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]


def test_grid_search_with_two_processes() -> None:
    X, y = blobs()
    grid = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-2]}
    search = GridSearchCV(
        TorchClassifier(max_iter=20, learning_rate_init=0.01, random_state=0), grid, cv=2, n_jobs=2
    )
    with warnings.catch_warnings():  # workers' ConvergenceWarnings travel back; short max_iter on purpose
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert set(search.best_params_) == set(grid) and search.best_score_ >= 0.7


@quiet
def test_tensor_input_is_accepted() -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(torch.from_numpy(X), torch.from_numpy(y))
    assert_array_equal(clf.predict(torch.from_numpy(X)), clf.predict(X))


# --- CUDA ------------------------------------------------------------------------------------


@cuda
@quiet
def test_cuda_training_and_a_device_free_pickle() -> None:
    X, y = blobs()
    clf = TorchClassifier(device="cuda", **TINY).fit(X, y)
    assert next(clf.module_.parameters()).is_cuda
    restored = pickle.loads(pickle.dumps(clf))
    assert next(restored.module_.parameters()).is_cpu  # loads on a machine without a GPU
    assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-5)
    on_gpu = TorchClassifier(**TINY).fit(torch.from_numpy(X).cuda(), y)  # device=None follows X
    assert next(on_gpu.module_.parameters()).is_cuda


@quiet
def test_float32_c_contiguous_X_is_never_copied_nor_kept() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 50)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = TorchClassifier(max_iter=1, hidden_layer_sizes=(16,), random_state=0)
    clf.fit(X[:100], y[:100])  # first use imports parts of torch; keep those out of the count
    assert fit_predict_peak(clf, X, y) < 0.25 * X.nbytes
    seen = weakref.ref(X)
    del X
    gc.collect()
    assert seen() is None, "the estimator kept a reference to X"


@quiet
def test_chunked_inference_equals_row_blocks() -> None:
    X, y = blobs(n=40_000, n_features=3)  # more rows than one inference chunk
    clf = TorchClassifier(**TINY).fit(X[:200], y[:200])
    whole = clf.predict_proba(X)
    assert_allclose(whole, np.concatenate([clf.predict_proba(X[i : i + 999]) for i in range(0, len(X), 999)]))
    sparse = scipy.sparse.csr_matrix(X)
    assert_allclose(clf.predict_proba(sparse), whole)


@quiet
def test_batches_whose_weights_are_all_zero_are_skipped() -> None:
    X, y = blobs(n=12, n_classes=2)
    w = np.ones(12)
    w[:4] = 0.0  # with batch_size=2 and no shuffling, the first two batches weigh nothing
    clf = TorchClassifier(**{**TINY, "batch_size": 2, "shuffle": False}).fit(X, y, sample_weight=w)
    assert np.isfinite(clf.loss_curve_).all() and np.isfinite(clf.predict_proba(X)).all()


# --- tensors in, tensors out (scikit-learn's array API dispatch) ---------------------------------


@quiet
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda)])
def test_a_tensor_pipeline_stays_in_torch_under_dispatch(device: str) -> None:
    X, y = blobs()
    X_t, y_t = torch.from_numpy(X).to(device), torch.from_numpy(y).to(device)
    with sklearn.config_context(array_api_dispatch=True):
        pipe = make_pipeline(StandardScaler(), TorchClassifier(**TINY)).fit(X_t, y_t)
        pred, proba = pipe.predict(X_t), pipe.predict_proba(X_t)
        reg = make_pipeline(StandardScaler(), TorchRegressor(**TINY)).fit(X_t, X_t[:, 0] * 2)
        out = reg.predict(X_t)
    for result in (pred, proba, out):
        assert isinstance(result, torch.Tensor) and result.device.type == device
        assert not result.is_inference()  # callers may update it in place
    assert pred.dtype == torch.int64 and proba.dtype == torch.float64 and out.shape == (len(X),)
    assert set(pred.tolist()) <= set(y.tolist()) and torch.allclose(
        proba.sum(1), torch.ones_like(proba[:, 0])
    )
    plain = TorchClassifier(**TINY).fit(X_t.cpu(), y)
    assert isinstance(plain.predict(X_t.cpu()), np.ndarray)  # without dispatch: NumPy out, whatever comes in


@quiet
def test_string_labels_come_back_as_numpy_even_under_dispatch() -> None:
    X, codes = blobs()
    y = np.array(["cat", "dog", "emu"])[codes]
    clf = TorchClassifier(**TINY).fit(X, y)
    with sklearn.config_context(array_api_dispatch=True):
        pred = clf.predict(torch.from_numpy(X))
        proba = clf.predict_proba(torch.from_numpy(X))
    assert isinstance(pred, np.ndarray) and pred.dtype == y.dtype  # no tensor holds strings
    assert isinstance(proba, torch.Tensor)  # probabilities are numbers: they follow X
    assert isinstance(clf.classes_, np.ndarray)


@quiet
def test_cpu_float32_tensors_are_not_copied() -> None:
    X_t = torch.from_numpy(np.random.default_rng(0).normal(size=(20_000, 50)).astype(np.float32))
    y = (X_t[:, 0] > 0).long()
    clf = TorchClassifier(**TINY).fit(X_t[:100], y[:100])  # warm-up, outside the count
    assert fit_predict_peak(clf, X_t, y) < 0.25 * X_t.numel() * X_t.element_size()
    assert next(clf.module_.parameters()).dtype == torch.float32
