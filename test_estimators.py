"""scikit-learn's own estimator checks, laws and examples for estimators.py.

Each promise of the estimators' guide (README.md, "The estimators", and docs/estimators.md), and the
test that fails if it breaks
(scikit-learn's own MLP tests run from test_mlp_parity.py). Each row is one section of this file, in
this order, after the shared data and helpers; a helper used by one section sits above its tests.

| promise | test |
| --- | --- |
| parameters are MLP's, plus ours, mean what MLP's mean (an int is one hidden layer), and are checked as scikit-learn checks MLP's | test_get_params_is_mlps_plus_our_additions, test_module_arguments_bind_to_the_module_set_in_the_same_call, test_an_int_is_one_hidden_layer, test_parameters_are_checked_as_scikit_learn_checks_mlps |
| every scikit-learn estimator check passes | test_scikit_learn_estimator_checks |
| lbfgs gives MLP's model (computing in X's dtype, weights left float64); sgd's first epoch is MLP's (initial weights, split, shuffle, batches, sample weights, alpha); so are the multi-output loss, the clipped log-loss and momentum under a changing rate | test_lbfgs_gives_mlps_model, test_first_sgd_epoch_equals_mlps, test_lbfgs_computes_in_xs_dtype_and_leaves_float64_weights_as_mlp, test_multi_output_regression_trains_as_mlp, test_the_loss_clips_probabilities_as_mlps_log_loss, test_sgd_momentum_under_a_changing_rate_follows_mlp |
| training stops where MLP's does: the stopping rule at MLP's epoch, np.inf never, max_iter with a ConvergenceWarning pointing at the caller's line, Ctrl-C keeping the epochs trained so far | test_training_stops_when_mlp_stops, test_the_stall_count_is_mlps_for_any_scores_or_losses, test_n_iter_no_change_inf_never_stops, test_convergence_warning_when_max_iter_ends_training, test_warnings_point_at_the_callers_line, test_ctrl_c_keeps_the_epochs_trained_so_far_as_mlp_does, (parity) test_n_iter_no_change |
| learning-rate schedules; Adam and SGD step as torch.optim's do, bit for bit | test_learning_rate_schedules_set_mlps_rates, test_adam_and_sgd_step_exactly_as_torch_optim |
| same random_state, same model; a RandomState instance advances as MLP's does; partial_fit x max_iter == fit | test_same_random_state_same_model, test_every_call_that_succeeds_advances_a_random_state_instance_as_mlps_does, test_partial_fit_max_iter_times_equals_fit_with_tol_0 |
| float32 and float64 fits differ by rounding; outputs follow X | test_float32_and_float64_fits_differ_only_by_rounding, test_floating_dtype_follows_X |
| coefs_/intercepts_ are read-only views | test_coefs_and_intercepts_are_read_only_views_of_the_module |
| a failed call changes nothing (attributes, weights, mode, optimizer, streams) | test_a_failed_partial_fit_or_warm_fit_changes_nothing, test_bad_input_is_a_clear_error_and_changes_nothing, test_bad_parameters_are_named_and_change_nothing, test_a_random_state_instance_advances_only_when_fit_succeeds |
| a diverging fit is a ValueError naming learning_rate_init, also when only the L2 term leaves float64's range, and changes nothing | test_a_diverging_learning_rate_is_a_clear_value_error, test_a_diverging_partial_fit_changes_nothing, test_an_l2_term_beyond_float64_is_the_usual_clear_error |
| global state untouched: no global seeding, no CUDA generator touched by a CPU fit; custom-module fits reproducible in threads | test_fit_leaves_global_state_alone, test_a_custom_module_fit_calls_no_global_seeding_function, test_a_cpu_fit_of_a_custom_module_leaves_every_cuda_generator_alone, test_custom_module_fits_in_parallel_threads_are_reproducible, test_a_module_factory_may_fit_another_custom_model |
| fit trains inside the caller's no_grad or inference_mode | test_fit_inside_the_callers_no_grad_or_inference_mode |
| X is neither copied nor kept: read-only, memory-mapped and CPU float32 tensor X are read in place, a cast is made a batch at a time; X is unchanged by any module, inputs unchanged | test_float32_c_contiguous_X_is_never_copied_nor_kept, test_cpu_float32_tensors_are_not_copied, test_read_only_and_memory_mapped_X_are_read_in_place, test_continued_training_casts_X_a_batch_at_a_time, test_a_module_that_writes_its_input_never_changes_X, test_inputs_are_byte_identical_after_fit_predict_and_partial_fit |
| sparse input stays sparse for the built-in MLP; custom modules opt in | test_sparse_input_is_never_densified_for_the_built_in_mlp, test_custom_modules_get_dense_batches_unless_they_opt_in, test_sparse_and_dense_inputs_give_the_same_model |
| predict is pure and thread-safe; chunked inference is exact; predict is predict_proba's argmax, each row's first largest raw output, even past overflow | test_concurrent_predict_from_8_threads_matches_serial, test_chunked_inference_equals_row_blocks, test_predict_is_predict_probas_argmax_even_when_outputs_overflow, test_predict_is_each_rows_first_largest_raw_output |
| every target MLP takes is fitted and predicted as MLP does: labels of any type through classes_, a single class, multilabel (sparse comes back sparse), multi-output, Poisson counts | test_labels_of_any_type_round_trip_through_classes, test_a_single_class_is_fitted_and_predicted, test_multilabel_and_multi_output_targets_keep_their_shape, test_sparse_multilabel_targets_fit_and_predict_sparse_like_mlp, test_poisson_regression_predicts_positive_means |
| early stopping is MLP's: its rule, its split (stratified for binary targets only, the same rows on a warm start), validation_fraction=0 and lbfgs taken as MLP takes them; a part of the split that weighs nothing is a clear error | test_early_stopping_records_validation_scores, test_a_multiclass_early_stopping_split_is_mlps, test_early_stopping_needs_no_stratification_beyond_mlps, test_warm_started_fits_validate_on_the_same_rows, test_validation_fraction_0_is_accepted_as_in_mlp, test_lbfgs_ignores_early_stopping_and_trains_on_all_data, test_a_split_part_that_weighs_nothing_is_a_clear_error |
| early stopping watches the loss or any scorer (a plain callable as written, tensors under dispatch) and keeps the best weights, past a diverged epoch's NaN score too; a scorer that cannot score the split fails before training | test_early_stopping_watches_the_loss_or_any_scorer_and_keeps_the_best_weights, test_scoring_loss_watches_minus_the_weighted_validation_loss, test_a_scorer_sees_no_feature_names_of_a_dataframe_fit, test_early_stopping_on_balanced_accuracy_keeps_a_better_balanced_model, test_a_plain_scorer_callable_is_called_as_it_is_written, test_tensors_under_dispatch_stop_early_on_any_scorer, test_with_early_stopping_divergence_is_recorded_as_nan_scores, test_a_scorer_that_cannot_score_the_split_fails_before_training |
| class_weight equals the equivalent sample_weight; a class_weight or scoring it cannot mean fails before training | test_class_weight_is_the_equivalent_sample_weight, test_bad_class_weight_or_scoring_fails_before_training, test_class_weight_refuses_what_it_cannot_mean |
| sample_weight: a scalar is one weight per sample, batches that weigh nothing are skipped; routed through Pipeline, GridSearchCV, cross_validate | test_scalar_sample_weight_is_one_weight_per_sample, test_batches_whose_weights_are_all_zero_are_skipped, test_sample_weight_is_routed_through_meta_estimators |
| what MLP refuses, we refuse; a warm start goes on as MLP's | test_bad_targets_and_calls_mlp_refuses_too, test_predict_unfitted_or_on_other_features_and_bad_arguments_are_clear_errors, test_warm_start_continues_and_refuses_new_classes, test_lbfgs_has_no_partial_fit_like_mlp |
| pickles, clones, searches, pipelines of DataFrames | test_pickle_round_trip_gives_identical_predictions, test_joblib_deepcopy_and_pickle_copies_predict_alike_and_a_clone_is_unfitted, test_lambda_modules_fit_but_do_not_pickle, test_grid_search_in_two_processes_equals_one, test_a_dataframe_cross_validates_in_a_pipeline_and_sets_feature_names_in |
| tensors in, tensors out (under dispatch; NumPy out without it) | test_tensor_X_and_y_fit_and_predict_as_their_numpy_arrays, test_an_array_that_only_exports_dlpack_fits_and_predicts_as_its_numpy_array, test_a_tensor_pipeline_stays_in_torch_under_dispatch, test_string_labels_come_back_as_numpy_even_under_dispatch |
| device=: "cpu:0" is the CPU, which shares X; a device that is not here is a ValueError | test_cpu_0_is_the_cpu_and_shares_X, test_a_device_that_is_not_here_is_a_value_error |
| on CUDA, the CPU's model; draws repeat, generators kept; CuPy in, CuPy out (skip without a GPU) | test_cuda_fits_the_model_the_cpu_fits, test_cuda_custom_module_draws_repeat_and_global_generators_stay, test_cuda_training_pickles_device_free_and_resumes_on_the_gpu, test_cupy_arrays_come_back_as_cupy |
| users' modules train through the same API, in train mode, and predict in eval mode (the failed-call section's Flaky raises only in train mode); lazy layers, sparse gradients, sizes from MLP's parameters, module__ or a **kwargs factory, frozen parameters outside the L2 term | test_a_custom_module_trains_through_the_same_api, test_lazy_layers_train_as_their_eager_twins, test_modules_with_sparse_gradients_train_with_every_solver, test_a_custom_networks_size_is_searched_like_mlps, test_a_size_the_module_would_ignore_is_an_error, test_a_factory_taking_keyword_arguments_gets_mlps_sizes, test_the_l2_term_reaches_only_the_matrices_fit_trains |
| a module fit cannot train is refused before training: not an nn.Module, outputs of the wrong shape, softmax at its end (the dry run checks only a new user's module), complex parameters, nothing to train | test_module_must_build_an_nn_module, test_a_module_output_of_the_wrong_shape_is_named, test_a_module_that_ends_in_softmax_is_refused, test_the_built_in_network_is_never_taken_for_a_softmax, test_a_module_with_complex_parameters_is_refused_before_training, test_a_module_with_nothing_to_train_is_a_clear_error |
| one thread for small steps, in the fitting thread only | test_small_steps_train_on_one_thread_and_large_ones_keep_them, test_concurrent_fits_limit_only_their_own_threads |
| the saved state is plain data, saving changes nothing; skops trusts only the class and the factory; a loaded estimator predicts bit for bit and trains on exactly; a module class in a module loads in a new process; loading checks what it reads; saving refuses what loading would | test_the_saved_state_is_plain_data_and_saving_changes_nothing, test_skops_loads_what_it_saved_trusting_only_the_estimator_and_the_factory, test_a_loaded_estimator_trains_on_exactly_as_the_original, test_a_model_saved_with_its_module_class_in_a_module_loads_in_a_new_process, test_a_tampered_state_is_a_value_error_naming_what_is_wrong, test_a_custom_modules_tampered_state_is_a_value_error, test_tensors_fit_never_makes_are_a_type_error_when_saving |
| a validation set of one's own, checked before training, through a Pipeline | test_a_validation_set_of_ones_own_replaces_the_split, test_a_validation_set_that_does_not_fit_is_a_value_error_before_training, test_a_validation_set_is_read_as_the_training_targets_are, test_a_pipeline_sends_the_validation_set_through_its_steps |
| verbose prints MLP's lines, and nothing without it | test_verbose_prints_mlps_lines, test_verbose_says_why_training_stopped, test_verbose_prints_one_line_per_epoch_and_silent_otherwise |
| scikit-learn's callbacks: every epoch, stop or raise, inside Pipelines and searches | test_a_scoring_monitor_scores_every_epoch_and_the_fit, test_a_callback_may_stop_training_and_one_that_raises_changes_nothing, test_callbacks_reach_the_estimator_inside_a_pipeline_and_a_search |
"""

from __future__ import annotations

import contextlib
import copy
import functools
import gc
import inspect
import io
import itertools
import os
import pickle
import re
import subprocess
import sys
import threading
import tracemalloc
import warnings
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

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
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.metrics import balanced_accuracy_score, get_scorer, log_loss, mean_squared_error
from sklearn.model_selection import GridSearchCV, ParameterGrid, cross_val_score, cross_validate
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks
from torch import nn

from bridge import NDArray
from estimators import TorchClassifier, TorchRegressor

# --- data and helpers -----------------------------------------------------------------------------

# Small and fast, but trained enough for the checks' accuracy thresholds (no poor_score tag).
FAST: dict[str, Any] = {"max_iter": 60, "learning_rate_init": 0.01, "hidden_layer_sizes": (32,)}


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
CUSTOM: dict[str, Any] = {"max_iter": 5, "random_state": 0}  # a module's size is its own
ESTIMATORS: dict[str, Any] = {"TorchClassifier": TorchClassifier, "TorchRegressor": TorchRegressor}
quiet = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
PROPERTIES = settings(max_examples=15, deadline=None)
# MLP's sample_weight and MLPRegressor's loss= arrived in scikit-learn 1.7; tests comparing with them wait.
mlp_1_7 = pytest.mark.skipif(
    tuple(int(n) for n in sklearn.__version__.split(".")[:2]) < (1, 7),
    reason="compares with MLP's sample_weight and loss=, which scikit-learn 1.7 added",
)


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


FAST_ES: dict[str, Any] = {"hidden_layer_sizes": (8,), "learning_rate_init": 0.01, "random_state": 0}


def split_blobs() -> tuple[NDArray, NDArray, NDArray, NDArray]:
    X, y = blobs(n=90)
    return X[:60], y[:60], X[60:], y[60:]


# --- parameters: MLP's, plus ours, checked as scikit-learn checks MLP's ---------------------------


@mlp_1_7
def test_get_params_is_mlps_plus_our_additions() -> None:
    added = {"module": None, "device": None, "scoring": None}
    assert TorchClassifier().get_params() == {**MLPClassifier().get_params(), **added, "class_weight": None}
    assert TorchRegressor().get_params() == {**MLPRegressor().get_params(), **added}


def test_module_arguments_bind_to_the_module_set_in_the_same_call() -> None:
    def net(n_in: int, n_out: int, width: int = 4) -> nn.Module:
        return nn.Sequential(nn.Linear(n_in, width), nn.ReLU(), nn.Linear(width, n_out))

    clf = TorchClassifier().set_params(module=net, module__width=3)
    assert isinstance(clf.module, partial) and clf.module.func is net and clf.module.keywords == {"width": 3}
    assert clf.get_params()["module__width"] == 3


@quiet
def test_an_int_is_one_hidden_layer() -> None:
    clf = TorchClassifier(hidden_layer_sizes=7, max_iter=2).fit(*blobs())
    assert [m.out_features for m in clf.module_.modules() if isinstance(m, nn.Linear)] == [7, 3]


@pytest.mark.parametrize("Estimator", [TorchClassifier, TorchRegressor])
def test_parameters_are_checked_as_scikit_learn_checks_mlps(Estimator: Any) -> None:
    # Each bad value of a constrained parameter is scikit-learn's InvalidParameterError, before training.
    check_param_validation(Estimator.__name__, Estimator(max_iter=5))


# --- every scikit-learn estimator check passes ----------------------------------------------------

_CHECKS = parametrize_with_checks(
    [TorchClassifier(**FAST), TorchRegressor(**FAST)], expected_failed_checks=lambda est: {}
)


# list(): scikit-learn 1.6 passes pytest a generator, which pytest deprecates (a warning, so an error here).
@pytest.mark.parametrize(_CHECKS.args[0], list(_CHECKS.args[1]), **_CHECKS.kwargs)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # short max_iter on purpose
def test_scikit_learn_estimator_checks(estimator: Any, check: Callable[[Any], None]) -> None:
    check(estimator)


# --- MLP's model: lbfgs's, sgd's first epoch, and MLP's other paths -------------------------------


@quiet
@mlp_1_7
@pytest.mark.parametrize("activation", ["relu", "logistic", "tanh", "identity"])
def test_lbfgs_gives_mlps_model(activation: str) -> None:
    # Same random_state, same initial weights (MLP's draws, Glorot's bound for each activation), same
    # SciPy L-BFGS-B: the same model.
    X, y = blobs(n=90)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    params: dict[str, Any] = {"solver": "lbfgs", "hidden_layer_sizes": (7, 5), "alpha": 0.01, "max_iter": 30}
    params["activation"] = activation
    ours = TorchClassifier(**params, random_state=3).fit(X, y, sample_weight=w)
    theirs = MLPClassifier(**params, random_state=3).fit(X, y, sample_weight=w)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), rtol=1e-6, atol=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ and ours.loss_ == pytest.approx(theirs.loss_, rel=1e-8)
    # t_ counts the samples each iteration reads, where MLP leaves it 0 (docs/differences-from-mlp.md)
    assert ours.t_ == ours.n_iter_ * len(X) and theirs.t_ == 0


@quiet
@mlp_1_7
@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize(("dtype", "atol"), [(np.float64, 1e-12), (np.float32, 1e-6)])
def test_first_sgd_epoch_equals_mlps(name: str, early_stopping: bool, dtype: type, atol: float) -> None:
    # Initial weights, validation split, shuffle, batches, sample weights and the L2 term all as in
    # MLP: one epoch of plain SGD lands on MLP's weights. (Later epochs shuffle differently, and MLP
    # stratifies only binary targets; see docs/estimators.md.)
    X, y = blobs(n=90, n_classes=2) if name == "TorchClassifier" else regression(n=90)
    X = X.astype(dtype)  # the network, targets and weights in X's dtype, as MLP's
    w = np.random.default_rng(1).uniform(0.0, 2.0, len(X))
    params: dict[str, Any] = {"solver": "sgd", "momentum": 0.0, "alpha": 0.5, "batch_size": 16, "max_iter": 1}
    params["early_stopping"] = early_stopping
    mlp = {"TorchClassifier": MLPClassifier, "TorchRegressor": MLPRegressor}[name]
    ours = ESTIMATORS[name](**params, random_state=5).fit(X, y, sample_weight=w)
    theirs = mlp(**params, random_state=5).fit(X, y, sample_weight=w)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        assert a.dtype == b.dtype == dtype
        assert_allclose(a, b, rtol=1e-10 if dtype == np.float64 else 1e-5, atol=atol)


@quiet
@mlp_1_7
@pytest.mark.parametrize(("dtype", "tolerance"), [(np.float64, 1e-6), (np.float32, 2e-3)])
def test_lbfgs_computes_in_xs_dtype_and_leaves_float64_weights_as_mlp(dtype: type, tolerance: float) -> None:
    # SciPy rounds each point it evaluates to x0's dtype: MLP's network computes in X's dtype, and
    # its weights end as SciPy's float64 result. Ours too: the same model, to X's rounding (float32
    # rounding grows over L-BFGS's iterations, hence the wider tolerance).
    X, y = blobs(n=60, n_classes=3)
    X = (X * 3).astype(dtype)
    params: dict[str, Any] = {"solver": "lbfgs", "alpha": 0.0, "hidden_layer_sizes": (8,), "max_iter": 20}
    ours = TorchClassifier(**params, random_state=0).fit(X, y)
    theirs = MLPClassifier(**params, random_state=0).fit(X, y)
    assert all(c.dtype == np.float64 for c in ours.coefs_ + ours.intercepts_)
    assert ours.predict_proba(X).dtype == theirs.predict_proba(X).dtype == np.float64
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=tolerance)
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=tolerance)


@quiet
@mlp_1_7
@pytest.mark.parametrize("n_outputs", [2, 3])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs"])
def test_multi_output_regression_trains_as_mlp(n_outputs: int, solver: str) -> None:
    # MLP reports the squared error averaged over the outputs but steps on their sum's gradient.
    X, Y = regression(n=90, n_outputs=n_outputs)
    params: dict[str, Any] = {"solver": solver, "alpha": 0.01, "hidden_layer_sizes": (6,), "random_state": 2}
    # (alpha=0 for sgd: loss_curve_ adds the L2 term at the epoch's end, MLP at each batch's start.)
    sgd = {"max_iter": 1, "momentum": 0.0, "batch_size": 16, "alpha": 0.0}
    params.update(sgd if solver == "sgd" else {"max_iter": 25})
    ours, theirs = TorchRegressor(**params).fit(X, Y), MLPRegressor(**params).fit(X, Y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-6, atol=1e-9)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-6)


@quiet
@mlp_1_7
@pytest.mark.parametrize("n_classes", [2, 3])
def test_the_loss_clips_probabilities_as_mlps_log_loss(n_classes: int) -> None:
    # A rate this large saturates the outputs within the first epoch: probabilities below eps (or
    # above 1 - eps) count as eps (1 - eps) in MLP's log-loss, while its gradient is unclipped.
    X, y = blobs(n=96, n_classes=n_classes)
    params: dict[str, Any] = {"solver": "sgd", "momentum": 0.0, "alpha": 0.0, "shuffle": False}
    params.update(learning_rate_init=20.0, batch_size=8, max_iter=1, hidden_layer_sizes=(8,), random_state=0)
    ours, theirs = TorchClassifier(**params).fit(X * 4, y), MLPClassifier(**params).fit(X * 4, y)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@quiet
@mlp_1_7
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_sgd_momentum_under_a_changing_rate_follows_mlp(schedule: str, nesterov: bool) -> None:
    # MLP's velocity carries the earlier rates; torch's buffer is rescaled when the rate changes.
    X, y = regression(n=64)
    params: dict[str, Any] = {
        "solver": "sgd",
        "learning_rate": schedule,
        "learning_rate_init": 0.05,
        "nesterovs_momentum": nesterov,
        "alpha": 0.0,
        "batch_size": 16,
        "shuffle": False,
        "max_iter": 8,
        "hidden_layer_sizes": (5,),
        "random_state": 0,
        "tol": 1e6 if schedule == "adaptive" else 1e-4,  # every epoch stalls: the rate drops often
        "n_iter_no_change": 1,
    }
    ours, theirs = TorchRegressor(**params).fit(X, y), MLPRegressor(**params).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-9)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-9, atol=1e-12)


# --- training stops where MLP's stops -------------------------------------------------------------


def test_training_stops_when_mlp_stops() -> None:
    # MLP's loss curves, fed to our stopping rule, stop at MLP's epoch, whatever n_iter_no_change is.
    from estimators import _Progress

    X, y = blobs(n=100, n_classes=2)
    for patience in (1, 2, 5):
        mlp = MLPClassifier(solver="sgd", tol=0.01, max_iter=500, n_iter_no_change=patience, random_state=0)
        mlp.fit(X, y)
        assert mlp.n_iter_ < 500
        progress = _Progress(early_stopping=False)
        for epoch, loss in enumerate(mlp.loss_curve_, start=1):  # noqa: B007  # epoch is read after the loop
            progress.add_loss(loss, 0.01)
            if progress.stalled > patience:
                break
        assert epoch == mlp.n_iter_


@PROPERTIES
@given(
    st.lists(st.floats(-2, 2), min_size=1, max_size=12),
    st.sampled_from([0.0, 1e-4, 0.3]),
    st.booleans(),
)
def test_the_stall_count_is_mlps_for_any_scores_or_losses(
    values: list[float], tol: float, early_stopping: bool
) -> None:
    # MLP's own bookkeeping (_update_no_improvement_count), fed the same validation scores (its _score
    # replaced) or training losses, counts the same stalls and keeps the same best value as _Progress.
    # (A NaN score is a stall to us, not to MLP: docs/differences-from-mlp.md.)
    from estimators import _Progress

    mlp = MLPClassifier(tol=tol)
    mlp.loss_curve_, mlp.validation_scores_, mlp._no_improvement_count = [], [], 0
    mlp.best_loss_, mlp.best_validation_score_, mlp.coefs_, mlp.intercepts_ = np.inf, -np.inf, [], []
    scores = iter(values)
    mlp._score = lambda *args, **kwargs: next(scores)
    update = mlp._update_no_improvement_count
    weights = [None] if "sample_weight" in inspect.signature(update).parameters else []  # 1.7 and later
    progress = _Progress(early_stopping)
    for value in values:
        if early_stopping:
            progress.add_score(value, tol)
        else:
            mlp.loss_curve_.append(value)
            progress.add_loss(value, tol)
        update(early_stopping, None, None, *weights)
        assert progress.stalled == mlp._no_improvement_count
    if early_stopping:
        assert progress.best_score == mlp.best_validation_score_
    else:
        assert progress.best_loss == mlp.best_loss_


def test_n_iter_no_change_inf_never_stops() -> None:
    clf = TorchClassifier(tol=1e9, max_iter=20, n_iter_no_change=np.inf, hidden_layer_sizes=(4,))
    with pytest.warns(ConvergenceWarning):
        clf.fit(*blobs())
    assert clf.n_iter_ == 20


def test_convergence_warning_when_max_iter_ends_training() -> None:
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        TorchClassifier(max_iter=2).fit(*blobs())


@quiet
def test_warnings_point_at_the_callers_line() -> None:
    X, y = blobs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        TorchClassifier(max_iter=2).fit(X, y)
        TorchClassifier(max_iter=2).partial_fit(X, y, classes=[0, 1, 2])
        TorchClassifier(solver="lbfgs", max_iter=2).fit(X, y)
    assert [w.filename for w in caught] == [__file__] * 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cross_val_score(TorchClassifier(max_iter=2), X, y, cv=2)
    assert caught and all("sklearn" in w.filename for w in caught)


class Interrupted(nn.Module):
    """A linear module that raises KeyboardInterrupt at its n-th training forward pass."""

    at = 0
    calls = 0

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            Interrupted.calls += 1
            if Interrupted.calls == Interrupted.at:
                raise KeyboardInterrupt
        return self.linear(x)  # type: ignore[no-any-return]


@quiet
@pytest.mark.parametrize("early_stopping", [False, True])
def test_ctrl_c_keeps_the_epochs_trained_so_far_as_mlp_does(early_stopping: bool) -> None:
    X, y = blobs(n=100)
    params: dict[str, Any] = {**CUSTOM, "max_iter": 20, "batch_size": 20, "early_stopping": early_stopping}
    # The second batch of the fourth epoch: 5 batches an epoch (of 100 rows, or 90 after the split).
    Interrupted.calls, Interrupted.at = 0, 3 * 5 + 2
    with pytest.warns(UserWarning, match="interrupted"):
        clf = TorchClassifier(module=Interrupted, **params).fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3
    assert np.isfinite(clf.predict_proba(X)).all()
    Interrupted.calls, Interrupted.at = 0, 2  # within the first epoch: nothing trained to keep
    fresh = TorchClassifier(module=Interrupted, **params)
    with pytest.raises(KeyboardInterrupt):
        fresh.fit(X, y)
    assert not hasattr(fresh, "module_")


# --- learning-rate schedules; Adam and SGD step as torch.optim's do -------------------------------


@quiet
def test_learning_rate_schedules_set_mlps_rates() -> None:
    X, y = [[3.0, 2.0], [1.0, 6.0], [5.0, 6.0], [-2.0, -4.0]], [1, 1, 1, 0]
    lr = {}
    for schedule in ("constant", "invscaling"):
        clf = TorchClassifier(
            solver="sgd",
            learning_rate=schedule,
            power_t=0.25,
            max_iter=1,
            warm_start=True,
            hidden_layer_sizes=4,
        )
        clf.fit(X, y).fit(X, y)  # a warm start begins with a new optimizer at learning_rate_init
        assert clf._optimizer is not None
        lr[schedule] = clf._optimizer.learning_rate
    assert lr["constant"] == 1e-3 and lr["invscaling"] == 1e-3 / 9**0.25  # t_ = 8 samples seen
    adaptive = TorchClassifier(tol=0.5, max_iter=3000, solver="sgd", learning_rate="adaptive")
    adaptive.fit([[3.0, 2.0], [1.0, 6.0]], [1, 0])
    assert adaptive.n_iter_ < 3000 and adaptive._optimizer is not None
    assert adaptive._optimizer.learning_rate <= 1e-6  # divided by 5 at each stall, down to 1e-6


def signed_zeros(t: torch.Tensor) -> torch.Tensor:
    """``t`` with its first two elements 0.0 and -0.0: where a zero's sign can go astray."""
    t.view(-1)[:2] = torch.tensor([0.0, -0.0])
    return t


def bits(t: torch.Tensor) -> torch.Tensor:
    """The bits of a floating-point tensor, as integers: equal only where the numbers are identical,
    signs of zeros included."""
    return t.detach().view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])


@pytest.mark.parametrize(
    ("params", "torch_optimizer"),
    [
        (
            {"beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6},
            partial(torch.optim.Adam, betas=(0.8, 0.99), eps=1e-6),
        ),
        ({"solver": "sgd", "momentum": 0.8}, partial(torch.optim.SGD, momentum=0.8, nesterov=True)),
        ({"solver": "sgd", "nesterovs_momentum": False}, partial(torch.optim.SGD, momentum=0.9)),
        ({"solver": "sgd", "momentum": 0.0}, torch.optim.SGD),
    ],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.complex64])
def test_adam_and_sgd_step_exactly_as_torch_optim(
    params: dict[str, Any], torch_optimizer: Callable[..., torch.optim.Optimizer], dtype: torch.dtype
) -> None:
    # Our optimizer skips torch.optim's per-step wrapper, not its arithmetic: the same parameters bit
    # for bit after every step, a parameter without a gradient untouched and its state not advanced.
    generator = torch.Generator().manual_seed(0)
    shapes = [(5, 3), (3,), (3, 2)]
    ours = [
        nn.Parameter(signed_zeros(torch.randn(shape, dtype=dtype, generator=generator))) for shape in shapes
    ]
    theirs = [nn.Parameter(p.detach().clone()) for p in ours]
    optimizer = TorchClassifier(learning_rate_init=0.05, **params)._make_optimizer(
        nn.ParameterList(ours), torch.device("cpu"), resume=False
    )
    assert optimizer is not None
    reference = torch_optimizer(theirs, lr=0.05, fused=dtype.is_floating_point)
    for step in range(5):
        for i, (p, q) in enumerate(zip(ours, theirs, strict=True)):
            # Each parameter goes without a gradient now and then, not at the first step: torch's fused
            # SGD fails on a momentum buffer that starts later than the others.
            skip = step > 0 and (step + i) % 3 == 0
            grad = None if skip else signed_zeros(torch.randn(p.shape, dtype=dtype, generator=generator))
            p.grad, q.grad = grad, None if grad is None else grad.clone()
        optimizer.step()
        reference.step()
        for p, q in zip(ours, theirs, strict=True):
            # Complex products wash the sign out of zeros in ways a zero velocity cannot mirror, so
            # complex numbers compare by value (-0.0 == 0.0); real ones bit for bit.
            assert torch.equal(p, q) if dtype.is_complex else torch.equal(bits(p), bits(q))


# --- same random_state, same model; partial_fit x max_iter == fit ---------------------------------


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
@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
def test_every_call_that_succeeds_advances_a_random_state_instance_as_mlps_does(method: str) -> None:
    X, y = blobs()
    streams = []
    for Estimator in (TorchClassifier, MLPClassifier):
        rs = np.random.RandomState(0)
        est = Estimator(random_state=rs, max_iter=2, hidden_layer_sizes=(8,), warm_start=True)
        est.fit(X, y) if method == "warm_start" else est.partial_fit(X, y, classes=[0, 1, 2])
        after_first = str(rs.get_state(legacy=False))
        est.fit(X, y) if method == "warm_start" else est.partial_fit(X, y)
        streams.append(str(rs.get_state(legacy=False)))
        assert streams[-1] != after_first, Estimator.__name__
    # Ours draws what MLP's draws, call for call (shuffles; MLP permutes the last epoch's order, which
    # takes the same draws), so the caller's RandomState ends in the same place.
    assert streams[0] == streams[1]


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


# --- float32 and float64 fits differ by rounding; outputs follow X --------------------------------


@quiet
def test_float32_and_float64_fits_differ_only_by_rounding() -> None:
    X, y = blobs()
    wide = TorchClassifier(**TINY).fit(X, y)
    narrow = TorchClassifier(**TINY).fit(X.astype(np.float32), y)
    for a, b in zip(wide.coefs_, narrow.coefs_, strict=True):
        assert b.dtype == np.float32
        assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert narrow.predict_proba(X).dtype == np.float64  # outputs follow X, as in MLP
    assert narrow.predict_proba(X.astype(np.float32)).dtype == np.float32


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


# --- coefs_ and intercepts_ are read-only views ---------------------------------------------------


@quiet
def test_coefs_and_intercepts_are_read_only_views_of_the_module() -> None:
    from bridge import shares_memory

    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(X, y)
    layers = [m for m in clf.module_.modules() if isinstance(m, nn.Linear)]
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 3)] and [b.shape for b in clf.intercepts_] == [
        (8,),
        (3,),
    ]
    for coef, bias, layer in zip(clf.coefs_, clf.intercepts_, layers, strict=True):
        assert not coef.flags.writeable and not bias.flags.writeable
        assert shares_memory(coef, layer.weight) and shares_memory(bias, layer.bias)
    assert not hasattr(TorchClassifier(), "coefs_")
    custom = TorchClassifier(module=Residual, max_iter=2).fit(X, y)
    with pytest.raises(AttributeError, match="module_"):
        custom.coefs_  # noqa: B018  # the attribute access is the test


# --- a failed call changes nothing ----------------------------------------------------------------


class Flaky(nn.Module):
    """A linear module whose forward raises ``error`` once armed: a failure in the middle of training."""

    armed: type[BaseException] | None = None

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if Flaky.armed is not None and self.training:
            raise Flaky.armed("raised inside forward")
        return self.linear(self.drop(x))  # type: ignore[no-any-return]


@quiet
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_failed_partial_fit_or_warm_fit_changes_nothing(error: type[BaseException]) -> None:
    X, y = blobs()
    clf = TorchClassifier(module=Flaky, warm_start=True, **CUSTOM).fit(X, y)
    twin = copy.deepcopy(clf)
    state, expected = dict(vars(clf)), clf.predict_proba(X)
    weights = {k: v.clone() for k, v in clf.module_.state_dict().items()}
    for call in (lambda: clf.partial_fit(X, y), lambda: clf.fit(X, y)):
        Flaky.armed = error
        try:
            with pytest.raises(error):
                call()
        finally:
            Flaky.armed = None
        assert vars(clf).keys() == state.keys() and all(vars(clf)[k] is v for k, v in state.items())
        assert not clf.module_.training
        assert all(torch.equal(v, weights[k]) for k, v in clf.module_.state_dict().items())
        assert_array_equal(clf.predict_proba(X), expected)
    # The optimizer and random streams were untouched too: the next partial_fit is the twin's.
    assert_array_equal(clf.partial_fit(X, y).predict_proba(X), twin.partial_fit(X, y).predict_proba(X))


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


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"learning_rate": "cyclic"}, ValueError, "learning_rate"),
        ({"learning_rate": 0.1}, TypeError, "learning_rate"),
        ({"activation": 1}, TypeError, "activation"),
        ({"alpha": np.inf}, ValueError, "alpha"),
        ({"epsilon": np.inf}, ValueError, "epsilon"),
        ({"n_iter_no_change": 2.0}, ValueError, "n_iter_no_change"),
        ({"verbose": -1}, ValueError, "verbose"),
        ({"hidden_layer_sizes": 5.0}, TypeError, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": None}, TypeError, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": True}, TypeError, "hidden_layer_sizes"),
        ({"random_state": "abc"}, TypeError, "random_state"),
        ({"random_state": -1}, ValueError, "random_state"),
        ({"device": "foo"}, ValueError, "device"),
        ({"device": 1.5}, TypeError, "device"),
        ({"power_t": -1.0}, ValueError, "power_t"),
        ({"power_t": "high"}, TypeError, "power_t"),
        ({"max_fun": 0}, ValueError, "max_fun"),
        ({"max_fun": 1.5}, TypeError, "max_fun"),
        ({"n_iter_no_change": 1.5}, ValueError, "n_iter_no_change"),
        ({"early_stopping": "no"}, TypeError, "early_stopping"),
        ({"shuffle": 1}, TypeError, "shuffle"),
        ({"verbose": "yes"}, TypeError, "verbose"),
        ({"module": nn.Linear(4, 3)}, TypeError, r"pass the class \(Linear\)"),
        ({"device": True}, TypeError, "device must be None, a str, an int or a torch.device, got True"),
    ],
)
def test_bad_parameters_are_named_and_change_nothing(params: dict[str, Any], error: type, match: str) -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY)
    with pytest.warns(ConvergenceWarning):
        clf.fit(X, y)
    state = dict(vars(clf))
    with pytest.raises(error, match=match):
        clf.set_params(**params).fit(X, y)
    assert vars(clf).keys() == state.keys()
    assert all(vars(clf)[k] is v for k, v in state.items() if k not in params)  # set_params changed these


@quiet
def test_a_random_state_instance_advances_only_when_fit_succeeds() -> None:
    X, y = blobs()
    rs = np.random.RandomState(0)
    before = rs.get_state(legacy=False)
    Flaky.armed = RuntimeError
    try:
        with pytest.raises(RuntimeError):
            TorchClassifier(module=Flaky, random_state=rs, max_iter=2).fit(X, y)
    finally:
        Flaky.armed = None
    assert str(rs.get_state(legacy=False)) == str(before)  # a failed fit drew nothing from it
    TorchClassifier(random_state=rs, max_iter=2).fit(X, y)
    assert str(rs.get_state(legacy=False)) != str(before)  # as in scikit-learn, a fit advances it


# --- a diverging fit is a clear ValueError and changes nothing ------------------------------------


class NaNs(nn.Module):
    """A linear module whose every output is NaN."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * torch.nan  # type: ignore[no-any-return]


@quiet
def test_a_diverging_learning_rate_is_a_clear_value_error() -> None:
    X, y = regression()
    reg = TorchRegressor(solver="sgd", learning_rate_init=1e6, max_iter=20, random_state=0)
    with pytest.raises(ValueError, match="learning_rate_init"):
        reg.fit(X * 1e3, y * 1e3)
    assert not hasattr(reg, "module_")  # a failed fit leaves no half-fitted state
    never = TorchRegressor(module=NaNs, early_stopping=True, **CUSTOM)  # no validated weights to keep
    with pytest.raises(
        ValueError, match="no validation score was finite: scale the data or lower learning_rate_init"
    ):
        never.fit(X, y)
    assert not hasattr(never, "module_")


@quiet
def test_a_diverging_partial_fit_changes_nothing() -> None:
    X, y = regression()
    reg = TorchRegressor(solver="sgd", batch_size=4, **TINY).fit(X, y)
    expected = reg.predict(X)
    with pytest.raises(ValueError, match="learning_rate_init"):
        reg.set_params(learning_rate_init=1e6).partial_fit(X * 1e3, y * 1e3)
    assert_array_equal(reg.predict(X), expected)


@quiet
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_an_l2_term_beyond_float64_is_the_usual_clear_error(solver: str) -> None:
    # A first layer of norm 5e199 on inputs of 0 keeps every output finite, but not the L2 term: the
    # loss is not finite, which is the usual ValueError, not an OverflowError from Python's floats.
    X, y = np.zeros((20, 3)), np.arange(20) % 2
    clf = TorchClassifier(solver=solver, alpha=1.0, **TINY).fit(X, y)
    with torch.no_grad():
        next(clf.module_.parameters()).fill_(1e199)
    with pytest.raises(ValueError, match="loss became (inf|nan)"):
        clf.set_params(warm_start=True, max_iter=1).fit(X, y)


# --- global state untouched; custom-module fits reproducible in threads ---------------------------


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
def test_a_custom_module_fit_calls_no_global_seeding_function(monkeypatch: pytest.MonkeyPatch) -> None:
    # torch.manual_seed seeds every CUDA device too; fork_rng restores only the devices it is given.
    def refuse(*args: Any) -> None:
        raise AssertionError("fit seeded a global generator")

    for name in ("manual_seed", "seed"):
        monkeypatch.setattr(torch, name, refuse)
        monkeypatch.setattr(torch.random, name, refuse)
    for name in ("manual_seed", "manual_seed_all", "seed", "seed_all"):
        monkeypatch.setattr(torch.cuda, name, refuse)
    X, y = blobs()
    first, second = (TorchClassifier(module=Residual, **CUSTOM).fit(X, y) for _ in range(2))
    assert_array_equal(first.predict_proba(X), second.predict_proba(X))


@cuda
@quiet
def test_a_cpu_fit_of_a_custom_module_leaves_every_cuda_generator_alone() -> None:
    states = torch.cuda.get_rng_state_all()
    TorchClassifier(module=Residual, **CUSTOM).fit(*blobs())
    assert all(torch.equal(a, b) for a, b in zip(torch.cuda.get_rng_state_all(), states, strict=True))


class Gathering(nn.Module):
    """Residual's shape, but its constructor waits (up to 1 s) until four fits are building at once."""

    gate = threading.Barrier(4)

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        with contextlib.suppress(threading.BrokenBarrierError):  # fits run one at a time: nobody will come
            Gathering.gate.wait(timeout=1.0)
        self.inner = Residual(n_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)  # type: ignore[no-any-return]


@quiet
def test_custom_module_fits_in_parallel_threads_are_reproducible() -> None:
    X, y = blobs()
    state = torch.get_rng_state()
    clf = TorchClassifier(module=Gathering, max_iter=20, random_state=0)
    Gathering.gate.reset()
    with ThreadPoolExecutor(4) as pool:
        fitted = list(pool.map(lambda est: est.fit(X, y), [clone(clf) for _ in range(4)]))
    for other in fitted[1:]:
        assert_array_equal(other.predict_proba(X), fitted[0].predict_proba(X))
    assert torch.equal(torch.get_rng_state(), state)


@quiet
def test_a_module_factory_may_fit_another_custom_model() -> None:
    X, y = blobs()

    def pretrained(n_in: int, n_out: int) -> nn.Module:
        TorchClassifier(module=nn.Linear, max_iter=2, random_state=0).fit(X, y)
        return nn.Linear(n_in, n_out)

    worker = threading.Thread(target=TorchClassifier(module=pretrained, max_iter=2).fit, args=(X, y))
    worker.start()
    worker.join(timeout=120)  # guards against a deadlock on the fit lock; it is not a speed limit
    assert not worker.is_alive()


# --- fit trains inside the caller's no_grad or inference_mode -------------------------------------


@quiet
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_fit_inside_the_callers_no_grad_or_inference_mode(mode: Callable[[], Any], solver: str) -> None:
    # A linear probe fitted inside a feature-extraction block.
    X, y = blobs()
    expected = TorchClassifier(solver=solver, **TINY).fit(X, y).predict_proba(X)
    with mode():
        clf = TorchClassifier(solver=solver, **TINY).fit(torch.from_numpy(X), y)
        custom = TorchClassifier(module=Residual, solver=solver, **CUSTOM).fit(X, y)
        if solver != "lbfgs":
            custom.partial_fit(X, y)
        assert torch.is_grad_enabled() is False
    assert_array_equal(clf.predict_proba(X), expected)


# --- X is neither copied, kept nor changed --------------------------------------------------------


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
def test_cpu_float32_tensors_are_not_copied() -> None:
    X_t = torch.from_numpy(np.random.default_rng(0).normal(size=(20_000, 50)).astype(np.float32))
    y = (X_t[:, 0] > 0).long()
    clf = TorchClassifier(**TINY).fit(X_t[:100], y[:100])  # warm-up, outside the count
    assert fit_predict_peak(clf, X_t, y) < 0.25 * X_t.numel() * X_t.element_size()
    assert next(clf.module_.parameters()).dtype == torch.float32


class InPlace(nn.Module):
    """A module whose first layer writes its input: ReLU(inplace=True)."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(n_features, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


@quiet
@pytest.mark.parametrize("module", [None, InPlace])
def test_read_only_and_memory_mapped_X_are_read_in_place(module: Any, tmp_path: Any) -> None:
    # What joblib hands each fit of a parallel search, and np.load(mmap_mode="r"): no copy of X,
    # for the built-in network (which reads X) and for a module that writes its input (batch copies).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(100_000, 50)).astype(np.float32)  # 20 MB: an inference chunk is 3.3 MB
    y = (X[:, 0] > 0).astype(int)
    np.save(tmp_path / "X.npy", X)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r")
    X.flags.writeable = False
    size: dict[str, Any] = {"hidden_layer_sizes": (16,)} if module is None else {}  # a module sizes itself
    clf = TorchClassifier(module=module, max_iter=1, random_state=0, **size)
    clf.fit(X[:100], y[:100])  # first use imports parts of torch; keep those out of the count
    for data in (X, mapped):
        assert fit_predict_peak(clf, data, y) < 0.25 * X.nbytes
    assert_array_equal(np.asarray(mapped), X)


@quiet
def test_continued_training_casts_X_a_batch_at_a_time() -> None:
    # After a float64 fit (or L-BFGS, which ends in float64), float32 X is not cast whole.
    X = np.random.default_rng(0).normal(size=(20_000, 50)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    for solver in ("adam", "lbfgs"):
        clf = TorchClassifier(solver=solver, max_iter=1, warm_start=True, hidden_layer_sizes=(16,))
        clf.fit(X.astype(np.float64)[:500], y[:500])
        assert fit_predict_peak(clf, X, y) < 0.25 * X.nbytes
        assert clf.predict_proba(X).dtype == np.float64  # the wider of X's and the network's dtype


@quiet
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("read_only", [False, True])
def test_a_module_that_writes_its_input_never_changes_X(solver: str, read_only: bool) -> None:
    X, y = blobs()
    X -= X.mean(0)  # negatives for the ReLU to zero
    X.flags.writeable = not read_only
    before = X.copy()
    clf = TorchClassifier(module=InPlace, solver=solver, **CUSTOM).fit(X, y)
    clf.predict(X), clf.predict_proba(X), clf.score(X, y)
    if solver != "lbfgs":
        clf.partial_fit(X, y)
        clf.set_params(early_stopping=True, scoring="accuracy").fit(X, y)
    assert_array_equal(X, before)
    X_t = torch.from_numpy(before.copy())
    with sklearn.config_context(array_api_dispatch=True):
        clf.set_params(early_stopping=False).fit(X_t, torch.from_numpy(y)).predict(X_t)
    assert_array_equal(X_t.numpy(), before)


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


# --- sparse input stays sparse for the built-in MLP; custom modules opt in ------------------------


@quiet
def test_sparse_input_is_never_densified_for_the_built_in_mlp() -> None:
    # 200,000 x 20,000: 32 GB dense in float64, 24 MB as CSR. Training and inference must not densify.
    rng = np.random.default_rng(0)
    n, d, per_row = 200_000, 20_000, 10
    X = scipy.sparse.csr_matrix(
        (
            rng.normal(size=n * per_row),
            rng.integers(0, d, n * per_row),
            np.arange(0, n * per_row + 1, per_row),
        ),
        shape=(n, d),
    )
    X.sum_duplicates()
    y = np.asarray(X[:, :100].sum(axis=1)).ravel() > 0
    csr_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    clf = TorchClassifier(max_iter=1, batch_size=2000, hidden_layer_sizes=(8,), random_state=0)
    clf.fit(X[:1000], y[:1000])  # warm-up outside the count
    assert fit_predict_peak(clf, X, y) < 0.25 * csr_bytes


class LayoutSpy(nn.Module):
    """A linear module recording the layout of each batch it is given."""

    layouts: list[torch.layout] = []

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        LayoutSpy.layouts.append(x.layout)
        return self.linear(x)  # type: ignore[no-any-return]


class SparseSpy(LayoutSpy):
    accepts_sparse = True  # opts in: batches of a sparse X arrive as sparse COO tensors


@quiet
@pytest.mark.parametrize(("module", "layout"), [(LayoutSpy, torch.strided), (SparseSpy, torch.sparse_coo)])
def test_custom_modules_get_dense_batches_unless_they_opt_in(module: Any, layout: torch.layout) -> None:
    X, y = blobs()
    LayoutSpy.layouts = []
    clf = TorchClassifier(module=module, **CUSTOM).fit(scipy.sparse.csr_matrix(X), y)
    clf.predict(scipy.sparse.csr_matrix(X))
    assert set(LayoutSpy.layouts) == {layout}
    assert_allclose(clf.predict_proba(X), clf.predict_proba(scipy.sparse.csr_matrix(X)), rtol=1e-12)


@quiet
@PROPERTIES
@given(st.sampled_from(sorted(ESTIMATORS)), st.integers(0, 2**16), st.sampled_from(["adam", "lbfgs"]))
def test_sparse_and_dense_inputs_give_the_same_model(name: str, seed: int, solver: str) -> None:
    X, y = blobs(seed=seed) if name == "TorchClassifier" else regression(seed=seed)
    X[X < 0.5] = 0.0
    params = {**TINY, "solver": solver}
    dense = ESTIMATORS[name](**params).fit(X, y)
    sparse = ESTIMATORS[name](**params).fit(scipy.sparse.csr_matrix(X), y)
    # The same model to float64 rounding: the sparse first layer sums the same products in another order.
    assert_allclose(outputs(sparse, X), outputs(dense, X), rtol=1e-10, atol=1e-12)
    assert_allclose(outputs(sparse, scipy.sparse.csr_matrix(X)), outputs(dense, X), rtol=1e-10, atol=1e-12)
    # A float32 network reads float64 sparse rows cast to float32, as it reads dense ones.
    narrow = ESTIMATORS[name](**params).fit(scipy.sparse.csr_matrix(X.astype(np.float32)), y)
    assert_allclose(outputs(narrow, scipy.sparse.csr_matrix(X)), outputs(narrow, X), rtol=1e-5, atol=1e-6)


# --- predict: pure, thread-safe, exact in chunks, predict_proba's argmax --------------------------


@quiet
def test_concurrent_predict_from_8_threads_matches_serial() -> None:
    X, y = blobs(n=3000)
    clf = TorchClassifier(**TINY).fit(X, y)
    expected = clf.predict_proba(X)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: clf.predict_proba(X), range(16)))
    for result in results:
        assert_array_equal(result, expected)


@quiet
def test_chunked_inference_equals_row_blocks() -> None:
    X, y = blobs(n=40_000, n_features=3)  # more rows than one inference chunk
    clf = TorchClassifier(**TINY).fit(X[:200], y[:200])
    whole = clf.predict_proba(X)
    assert_allclose(whole, np.concatenate([clf.predict_proba(X[i : i + 999]) for i in range(0, len(X), 999)]))
    sparse = scipy.sparse.csr_matrix(X)
    assert_allclose(clf.predict_proba(sparse), whole)


@quiet
def test_predict_is_predict_probas_argmax_even_when_outputs_overflow() -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(X, y)
    huge = np.array([[1.7e308, 0.0, 1.7e308, 1.7e308], [-1.7e308, 1e308, 0.0, 1.7e308], X[0]])
    with np.errstate(all="ignore"):
        proba = as_numpy(clf.predict_proba(huge))
    assert not np.isfinite(proba[:2]).all()  # the raw outputs overflowed: softmax gives NaN
    assert_array_equal(clf.predict(huge), clf.classes_[proba.argmax(axis=1)])


@quiet
def test_predict_is_each_rows_first_largest_raw_output() -> None:
    # Finite raw outputs, however large, row by row: equal outputs (row 0), outputs whose probabilities
    # round to equal (1: MLP would take the first), whose sum exceeds float32 (2, 3), and a row
    # predicted alone or beside the others.
    raw = np.array(
        [[2, 2, 0, 0], [0, 1e-9, -1, -1], [3e38, 3e38, 0, 0], [0, 1e-9, -3e38, -3e38]], dtype=np.float32
    )
    X, y = np.eye(4, dtype=np.float32), np.arange(4)
    clf = TorchClassifier(module=lambda n_in, n_out: nn.Linear(n_in, n_out), **CUSTOM).fit(X, y)
    weight, bias = clf.module_.parameters()
    with torch.no_grad():
        weight.copy_(torch.from_numpy(raw.T))  # row i of X is the unit vector e_i
        bias.zero_()
    expected = clf.classes_[[0, 1, 0, 1]]
    assert_array_equal(clf.predict(X), expected)
    for i in range(len(X)):
        assert_array_equal(clf.predict(X[i : i + 1]), expected[i : i + 1])
    proba = as_numpy(clf.predict_proba(X))
    assert proba[1, 0] == proba[1, 1]  # where MLP's argmax of the probabilities takes class 0


# --- every target MLP takes, fitted and predicted as MLP does -------------------------------------

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
def test_a_single_class_is_fitted_and_predicted() -> None:
    X, _ = blobs(n=10)
    clf = TorchClassifier(**TINY).fit(X, np.full(10, "only"))
    assert_array_equal(clf.predict(X), np.full(10, "only"))
    assert_array_equal(clf.predict_proba(X), np.ones((10, 1)))


@quiet
def test_multilabel_and_multi_output_targets_keep_their_shape() -> None:
    X, codes = blobs()
    Y = np.stack([codes == 0, codes == 1, codes >= 1], axis=1).astype(int)
    # The thresholds hold for every random_state in 0..19 (checked once; minimum 0.87 and 0.99).
    clf = TorchClassifier(max_iter=40, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert as_numpy(clf.predict(X)).shape == Y.shape and as_numpy(clf.predict(X)).dtype.kind == "i"
    assert clf.predict_proba(X).shape == Y.shape and clf.out_activation_ == "logistic"
    assert clf.score(X, Y) > 0.8
    two = TorchClassifier(**TINY).fit(X, Y[:, :2])  # two labels: two probabilities, not one class's pair
    assert two.predict_proba(X).shape == (len(X), 2) and two.n_outputs_ == 2
    X, Y = regression(n_outputs=3)
    reg = TorchRegressor(max_iter=60, learning_rate_init=0.01, random_state=0).fit(X, Y)
    assert reg.predict(X).shape == Y.shape and reg.n_outputs_ == 3 and reg.score(X, Y) > 0.8


@quiet
def test_sparse_multilabel_targets_fit_and_predict_sparse_like_mlp() -> None:
    from sklearn.preprocessing import MultiLabelBinarizer

    X, codes = blobs(n=90)
    tags = [{"a"} if c == 0 else {"b", "c"} if c == 1 else {"a", "c"} for c in codes]
    Y = MultiLabelBinarizer(sparse_output=True).fit_transform(tags)
    ours = TorchClassifier(**TINY).fit(X, Y)
    theirs = MLPClassifier(**TINY).fit(X, Y)
    dense = TorchClassifier(**TINY).fit(X, Y.toarray())
    predicted = ours.predict(X)
    assert type(predicted) is type(theirs.predict(X))
    if "sparse_interface" in sklearn.get_config():  # scikit-learn 1.9 and later: arrays, if asked
        with sklearn.config_context(sparse_interface="sparray"):
            assert type(ours.predict(X)) is type(theirs.predict(X)) is scipy.sparse.csr_array
    assert_array_equal(predicted.toarray(), dense.predict(X))  # type: ignore[union-attr]
    assert_array_equal(ours.predict_proba(X), dense.predict_proba(X))


@quiet
def test_poisson_regression_predicts_positive_means() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = rng.poisson(np.exp(X @ [0.5, -0.3, 0.2]))
    reg = TorchRegressor(loss="poisson", max_iter=50, learning_rate_init=0.01, random_state=0).fit(X, y)
    assert (reg.predict(X) > 0).all() and reg.out_activation_ == "exp"
    with pytest.raises(ValueError, match="y >= 0"):
        TorchRegressor(loss="poisson").fit(X, -y - 1)


# --- early stopping: MLP's rule and MLP's split ---------------------------------------------------


@quiet
def test_early_stopping_records_validation_scores() -> None:
    X, y = blobs(n=200)
    clf = TorchClassifier(early_stopping=True, max_iter=50, n_iter_no_change=3, random_state=0).fit(X, y)
    assert clf.validation_scores_ is not None and clf.best_loss_ is None
    assert len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_ or [])
    plain = TorchClassifier(**TINY).fit(X, y)
    assert plain.validation_scores_ is None and plain.best_validation_score_ is None
    assert plain.best_loss_ == min(plain.loss_curve_)


@quiet
@mlp_1_7
def test_a_multiclass_early_stopping_split_is_mlps() -> None:
    X, y = blobs(n=90)
    params: dict[str, Any] = {"solver": "sgd", "momentum": 0.0, "batch_size": 16, "max_iter": 1}
    params.update(early_stopping=True, random_state=5)
    ours, theirs = TorchClassifier(**params).fit(X, y), MLPClassifier(**params).fit(X, y)
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_, strict=True):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@quiet
@pytest.mark.parametrize(
    "y", [np.arange(40) % 20, np.r_[np.zeros(39, int), 1], np.r_[np.arange(38) % 3, 3, 4]]
)
def test_early_stopping_needs_no_stratification_beyond_mlps(y: NDArray) -> None:
    # More classes than validation rows, or a class of one sample: MLP stratifies binary targets only.
    X = np.random.default_rng(0).normal(size=(len(y), 3))
    y = y if len(np.unique(y)) > 2 else np.r_[y[:-2], 1, 1]  # binary: stratified, so 2 of each
    params: dict[str, Any] = {"early_stopping": True, "validation_fraction": 0.1, **TINY}
    ours = TorchClassifier(**params).fit(X, y)
    assert ours.validation_scores_ is not None and len(ours.validation_scores_) == ours.n_iter_


class Recorder(nn.Module):
    """A linear module that records the rows it sees in eval mode (validation scoring, predict)."""

    seen: list[NDArray] = []

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training and len(x) > 2:  # two rows are the output-shape check
            Recorder.seen.append(x.detach().numpy().copy())
        return self.linear(x)  # type: ignore[no-any-return]


@quiet
def test_warm_started_fits_validate_on_the_same_rows() -> None:
    X, y = blobs(n=100)
    clf = TorchClassifier(module=Recorder, warm_start=True, early_stopping=True, max_iter=2, random_state=0)
    Recorder.seen = []
    clf.fit(X, y)
    first = Recorder.seen[0]
    Recorder.seen = []
    clf.fit(X, y)
    assert len(first) == 10 and all(np.array_equal(rows, first) for rows in Recorder.seen)


@quiet
def test_validation_fraction_0_is_accepted_as_in_mlp() -> None:
    X, y = blobs()
    TorchClassifier(validation_fraction=0.0, **TINY).fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        TorchClassifier(validation_fraction=0.0, early_stopping=True, **TINY).fit(X, y)
    with pytest.raises(ValueError, match="validation_fraction"):
        TorchClassifier(validation_fraction=1.0, **TINY).fit(X, y)


@quiet
def test_lbfgs_ignores_early_stopping_and_trains_on_all_data() -> None:
    X, y = blobs()
    plain = TorchClassifier(solver="lbfgs", **TINY).fit(X, y)
    early = TorchClassifier(solver="lbfgs", early_stopping=True, **TINY).fit(X, y)
    assert_array_equal(early.predict_proba(X), plain.predict_proba(X))
    assert early.validation_scores_ is None


@quiet
def test_a_split_part_that_weighs_nothing_is_a_clear_error() -> None:
    # One sample weighs anything: the part of the split without it weighs nothing, which is a
    # ValueError that says so, not an error from inside the loop or a scorer.
    X, y = blobs(n=20)
    refused = held = 0  # the one sample fell in the training part, or in the validation part
    for i in range(8):
        w = np.zeros(20)
        w[i] = 1.0
        clf = TorchClassifier(early_stopping=True, validation_fraction=0.5, **TINY)
        try:
            clf.fit(X, y, sample_weight=w)
        except ValueError as err:
            assert not hasattr(clf, "module_")
            refused += "training part weighs 0" in str(err)
            held += "validation part weighs 0" in str(err)
    assert refused > 0 and held > 0 and refused + held == 8


# --- early stopping: the loss or any scorer, the best weights kept --------------------------------


@quiet
def test_early_stopping_watches_the_loss_or_any_scorer_and_keeps_the_best_weights() -> None:
    X, y = blobs(n=200, n_classes=2)
    seen: list[tuple[Any, NDArray]] = []

    def brier(est: Any, X_val: Any, y_val: NDArray) -> float:
        seen.append((X_val, y_val))
        return -float(np.mean((est.predict_proba(X_val)[:, 1] - y_val) ** 2))

    clf = TorchClassifier(early_stopping=True, scoring=brier, max_iter=15, random_state=0).fit(X, y)
    assert clf.validation_scores_ is not None and clf.best_validation_score_ == max(clf.validation_scores_)
    X_val, y_val = seen[-1]
    assert brier(clf, X_val, y_val) == clf.best_validation_score_  # the kept weights are the best ones
    by_loss = TorchClassifier(early_stopping=True, scoring="loss", max_iter=15, random_state=0).fit(X, y)
    assert by_loss.validation_scores_ is not None and max(by_loss.validation_scores_) < 0  # minus the loss
    plain = TorchClassifier(early_stopping=True, max_iter=15, random_state=0).fit(X, y)
    named = TorchClassifier(early_stopping=True, scoring="accuracy", max_iter=15, random_state=0).fit(X, y)
    assert plain.validation_scores_ == named.validation_scores_  # None is MLP's rule: accuracy


@quiet
def test_scoring_loss_watches_minus_the_weighted_validation_loss() -> None:
    X, y, X_val, y_val = split_blobs()
    w_val = np.linspace(0.1, 3.0, len(y_val))
    one_epoch: dict[str, Any] = {"early_stopping": True, "scoring": "loss", "max_iter": 1, **FAST_ES}
    clf = TorchClassifier(**one_epoch).fit(X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    assert clf.validation_scores_ is not None
    expected = log_loss(y_val, clf.predict_proba(X_val), sample_weight=w_val)
    assert -clf.validation_scores_[0] == pytest.approx(expected, rel=1e-6)
    Xr, yr = regression(n=90, n_outputs=2)
    reg = TorchRegressor(**one_epoch).fit(
        Xr[:60], yr[:60], X_val=Xr[60:], y_val=yr[60:], sample_weight_val=w_val
    )
    assert reg.validation_scores_ is not None  # half the squared error, averaged over outputs, as MLP's
    expected = mean_squared_error(yr[60:], reg.predict(Xr[60:]), sample_weight=w_val) / 2
    assert -reg.validation_scores_[0] == pytest.approx(expected, rel=1e-6)


@quiet
def test_a_scorer_sees_no_feature_names_of_a_dataframe_fit() -> None:
    # The scorer predicts from the NumPy split of a DataFrame: it must not be told the names fit saw,
    # or scikit-learn warns that X has none (and every warning fails a test here).
    X, y = blobs()
    frame = pd.DataFrame(X, columns=list("abcd"))
    clf = TorchClassifier(early_stopping=True, scoring="accuracy", **TINY).fit(frame, y)
    assert list(clf.feature_names_in_) == list("abcd") and clf.validation_scores_


@quiet
def test_early_stopping_on_balanced_accuracy_keeps_a_better_balanced_model() -> None:
    # 9 to 1 classes that overlap. With n_iter_no_change=inf both runs train the same epochs; only the
    # epoch kept differs. On the validation rows, balanced accuracy's pick is never worse balanced than
    # accuracy's, and for most random states strictly better.
    rng = np.random.default_rng(0)
    y = (rng.random(1500) < 0.1).astype(int)
    X = rng.normal(size=(1500, 5)) + y[:, None]
    gains = []
    for seed in range(6):
        kept = {}
        for name in ("accuracy", "balanced_accuracy"):
            seen: list[tuple[Any, NDArray]] = []

            def watch(
                est: Any, X_val: Any, y_val: NDArray, name: str = name, seen: list[Any] = seen
            ) -> float:
                seen.append((X_val, y_val))
                return float(get_scorer(name)(est, X_val, y_val))

            clf = TorchClassifier(
                early_stopping=True,
                scoring=watch,
                n_iter_no_change=np.inf,
                max_iter=30,
                validation_fraction=0.3,
                hidden_layer_sizes=(16,),
                random_state=seed,
            ).fit(X, y)
            X_val, y_val = seen[-1]
            kept[name] = balanced_accuracy_score(y_val, clf.predict(X_val))
        gains.append(kept["balanced_accuracy"] - kept["accuracy"])
    assert min(gains) >= 0 and sum(g > 0 for g in gains) >= 3


@quiet
def test_a_plain_scorer_callable_is_called_as_it_is_written() -> None:
    X, y = blobs(n=90)
    calls: list[bool] = []

    def unweighted(est: Any, X_val: Any, y_val: Any) -> float:
        calls.append(False)
        return float(np.mean(est.predict(X_val) == y_val))

    def weighted(est: Any, X_val: Any, y_val: Any, sample_weight: Any = None) -> float:
        calls.append(sample_weight is not None)
        return float(np.average(est.predict(X_val) == y_val, weights=sample_weight))

    w = np.linspace(0.5, 2.0, len(y))
    for scorer in (unweighted, weighted):
        TorchClassifier(early_stopping=True, scoring=scorer, class_weight="balanced", **TINY).fit(X, y)
        TorchClassifier(early_stopping=True, scoring=scorer, **TINY).fit(X, y, sample_weight=w)
    assert calls.count(False) == 2 * TINY["max_iter"] + 2 and calls.count(True) == 2 * TINY["max_iter"] + 2


@quiet
@pytest.mark.parametrize("scoring", ["accuracy", "balanced_accuracy", "loss"])
def test_tensors_under_dispatch_stop_early_on_any_scorer(scoring: str) -> None:
    X, y = blobs(n=90)
    X_t, y_t = torch.from_numpy(X), torch.from_numpy(y)
    with sklearn.config_context(array_api_dispatch=True):
        clf = TorchClassifier(early_stopping=True, scoring=scoring, **TINY).fit(X_t, y_t)
        reg = TorchRegressor(early_stopping=True, scoring="r2", **TINY).fit(X_t, X_t[:, 0])
        assert isinstance(clf.predict(X_t), torch.Tensor) and isinstance(reg.predict(X_t), torch.Tensor)
    assert clf.validation_scores_ is not None and np.isfinite(clf.validation_scores_).all()


@quiet
def test_with_early_stopping_divergence_is_recorded_as_nan_scores() -> None:
    X, y = regression(n=200)
    reg = TorchRegressor(early_stopping=True, warm_start=True, max_iter=20, random_state=0).fit(X, y)
    before = reg.predict(X)
    reg.set_params(solver="sgd", learning_rate_init=1e6).fit(X * 1e3, y * 1e3)
    assert reg.validation_scores_ is not None and np.isnan(reg.validation_scores_[-1])
    assert_array_equal(reg.predict(X), before)  # the best validated weights are kept


@quiet
def test_a_scorer_that_cannot_score_the_split_fails_before_training() -> None:
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(100, 3)), (rng.random((100, 3)) > 0.5).astype(int)
    Y[:, 2] = np.arange(100) < 3  # a rare label: 3 positives in 100, none in the validation part
    clf = TorchClassifier(early_stopping=True, scoring="roc_auc", max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn warns about the undefined score too
        with pytest.raises(ValueError, match="NaN on the validation part"):
            clf.fit(X, Y)
    assert not hasattr(clf, "module_")


# --- class_weight equals the equivalent sample_weight ---------------------------------------------


@quiet
def test_class_weight_is_the_equivalent_sample_weight() -> None:
    X, y = blobs()
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    factors = {0: 3.0, 2: 0.5}  # class 1 keeps 1.0
    per_class = np.array([3.0, 1.0, 0.5])[y]
    weighted = TorchClassifier(class_weight=factors, **TINY).fit(X, y, sample_weight=w)
    explicit = TorchClassifier(**TINY).fit(X, y, sample_weight=w * per_class)
    assert_array_equal(weighted.predict_proba(X), explicit.predict_proba(X))
    balanced = TorchClassifier(class_weight="balanced", **TINY).fit(X[:50], y[:50])
    counts = compute_class_weight("balanced", classes=np.unique(y[:50]), y=y[:50])[y[:50]]
    by_hand = TorchClassifier(**TINY).fit(X[:50], y[:50], sample_weight=counts)
    assert_array_equal(balanced.predict_proba(X), by_hand.predict_proba(X))
    dropped = TorchClassifier(class_weight={1: 0.0}, **TINY).fit(X, y)  # a factor of 0 is allowed
    unweighed = TorchClassifier(**TINY).fit(X, y, sample_weight=(y != 1).astype(float))
    assert_array_equal(dropped.predict_proba(X), unweighed.predict_proba(X))
    partial = TorchClassifier(class_weight=factors, **TINY).partial_fit(X, y, classes=[0, 1, 2])
    assert_array_equal(
        partial.predict_proba(X),
        TorchClassifier(**TINY)
        .partial_fit(X, y, sample_weight=per_class, classes=[0, 1, 2])
        .predict_proba(X),
    )


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"class_weight": {0: 1.0, 7: 2.0}}, ValueError, r"\[7\]"),
        ({"class_weight": {0: -1.0}}, ValueError, "-1.0"),
        ({"class_weight": {0: np.inf}}, ValueError, "inf"),
        ({"class_weight": {0: "heavy"}}, ValueError, "heavy"),
        ({"class_weight": "auto"}, ValueError, "auto"),
        ({"class_weight": [1.0, 2.0]}, TypeError, r"\[1.0, 2.0\]"),
        ({"scoring": "no_such_scorer", "early_stopping": True}, ValueError, "no_such_scorer"),
        ({"scoring": 3, "early_stopping": True}, TypeError, "3"),
    ],
)
def test_bad_class_weight_or_scoring_fails_before_training(
    params: dict[str, Any], error: type, match: str
) -> None:
    clf = TorchClassifier(**TINY, **params)
    with pytest.raises(error, match=match):
        clf.fit(*blobs())
    assert not hasattr(clf, "module_")


def test_class_weight_refuses_what_it_cannot_mean() -> None:
    X, codes = blobs()
    Y = np.stack([codes == 0, codes == 1], axis=1).astype(int)
    with pytest.raises(ValueError, match="multilabel"):
        TorchClassifier(class_weight={0: 2.0}, **TINY).fit(X, Y)
    with pytest.raises(ValueError, match="compute_class_weight"):
        TorchClassifier(class_weight="balanced", **TINY).partial_fit(X, codes, classes=[0, 1, 2])
    with pytest.raises(ValueError, match="predict_proba"):
        TorchRegressor(scoring="neg_log_loss", early_stopping=True, **TINY).fit(*regression())


# --- sample_weight: one per sample, routed through meta-estimators --------------------------------


@quiet
def test_scalar_sample_weight_is_one_weight_per_sample() -> None:
    X, y = blobs()
    a = TorchClassifier(**TINY).fit(X, y, sample_weight=2.0)
    b = TorchClassifier(**TINY).fit(X, y, sample_weight=np.full(len(X), 2.0))
    assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    X, Y = regression(n_outputs=2)  # several outputs: each sample's weight applies to all of them
    a = TorchRegressor(**TINY).fit(X, Y, sample_weight=2.0)
    b = TorchRegressor(**TINY).fit(X, Y, sample_weight=np.full(len(X), 2.0))
    assert_array_equal(a.predict(X), b.predict(X))


@quiet
def test_batches_whose_weights_are_all_zero_are_skipped() -> None:
    X, y = blobs(n=12, n_classes=2)
    w = np.ones(12)
    w[:4] = 0.0  # with batch_size=2 and no shuffling, the first two batches weigh nothing
    clf = TorchClassifier(**{**TINY, "batch_size": 2, "shuffle": False}).fit(X, y, sample_weight=w)
    assert np.isfinite(clf.loss_curve_).all() and np.isfinite(clf.predict_proba(X)).all()


@quiet
def test_sample_weight_is_routed_through_meta_estimators() -> None:
    X, y = blobs(n=90)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    direct = TorchClassifier(**TINY).fit(StandardScaler().fit_transform(X), y, sample_weight=w)
    with sklearn.config_context(enable_metadata_routing=True):
        clf = (
            TorchClassifier(**TINY).set_fit_request(sample_weight=True).set_score_request(sample_weight=False)
        )
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False), clf)
        routed = pipe.fit(X, y, sample_weight=w)
        search = GridSearchCV(clf, {"alpha": [1e-4]}, cv=3).fit(X, y, sample_weight=w)
        folds = cross_validate(
            clf, X, y, cv=3, params={"sample_weight": w}, return_estimator=True, return_indices=True
        )
    assert_array_equal(routed.predict_proba(X), direct.predict_proba(StandardScaler().fit_transform(X)))
    assert_array_equal(
        search.best_estimator_.predict_proba(X),
        TorchClassifier(**TINY).fit(X, y, sample_weight=w).predict_proba(X),
    )
    for est, train in zip(folds["estimator"], folds["indices"]["train"], strict=True):
        alone = TorchClassifier(**TINY).fit(X[train], y[train], sample_weight=w[train])
        assert_array_equal(est.predict_proba(X), alone.predict_proba(X))


# --- what MLP refuses, we refuse ------------------------------------------------------------------

DEFAULT_SIZE: dict[str, Any] = {"hidden_layer_sizes": (100,)}


@quiet
def test_bad_targets_and_calls_mlp_refuses_too() -> None:
    X, y = blobs()
    with pytest.raises(ValueError, match="multiclass-multioutput"):
        TorchClassifier(**TINY).fit(X, np.c_[y, 2 - y])
    with pytest.raises(ValueError, match="early_stopping"):
        TorchClassifier(early_stopping=True, **TINY).fit(X, y).partial_fit(X, y)
    with pytest.raises(ValueError, match="classes"):
        TorchClassifier(**TINY).partial_fit(X, y, classes=[0, 1, 2]).partial_fit(X, y, classes=[0, 1, 5])
    with pytest.raises(ValueError, match="validation_fraction=0.1 of 2 samples leaves 1:"):
        TorchRegressor(early_stopping=True).fit(*regression(n=2))
    warm = TorchClassifier(warm_start=True, **TINY).fit(X, y)
    for change in (
        {"hidden_layer_sizes": (9,)},
        {"activation": "tanh"},
        {"module": Residual, **DEFAULT_SIZE},
    ):
        with pytest.raises(ValueError, match="shape"):
            clone(warm).set_params(warm_start=True).fit(X, y).set_params(**change).fit(X, y)
    Y = np.stack([y == 0, y == 1, y == 2], axis=1).astype(int)
    with pytest.raises(ValueError, match="fitted on single-label y, now y is multilabel"):
        clone(warm).fit(X, y).fit(X, Y)
    with pytest.raises(ValueError, match="fitted on multilabel y, now y is single-label"):
        TorchClassifier(**TINY).fit(X, Y).partial_fit(X, y)
    X_r, y_r = regression()
    with pytest.raises(ValueError, match="y has 2 outputs; the fitted model has 1"):
        TorchRegressor(**TINY).partial_fit(X_r, y_r).partial_fit(X_r, np.c_[y_r, y_r])


def test_predict_unfitted_or_on_other_features_and_bad_arguments_are_clear_errors() -> None:
    X, y = blobs(n=8, n_features=2, n_classes=2)
    with pytest.raises(NotFittedError):
        TorchClassifier().predict(X)
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
    with pytest.raises(ValueError, match="(?i)cuda") if not torch.cuda.is_available() else nullcontext():
        TorchClassifier(device="cuda", **TINY).fit(X, y)


@quiet
def test_warm_start_continues_and_refuses_new_classes() -> None:
    X, y = blobs()
    clf = TorchClassifier(**{**TINY, "tol": 0.0}, warm_start=True).fit(X, y)
    clf.fit(X, y)
    # As in MLP: n_iter_ counts the last fit's epochs, the loss curve goes on across fits.
    assert clf.n_iter_ == TINY["max_iter"] and len(clf.loss_curve_) == 2 * clf.n_iter_
    with pytest.raises(ValueError, match="classes"):
        clf.fit(X, y + 1)
    with pytest.raises(ValueError, match="classes"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="classes="):
        TorchClassifier().partial_fit(X, y)


def test_lbfgs_has_no_partial_fit_like_mlp() -> None:
    assert not hasattr(TorchClassifier(solver="lbfgs"), "partial_fit")
    assert hasattr(TorchRegressor(solver="adam"), "partial_fit")


# --- pickles, clones, searches, pipelines ---------------------------------------------------------


@quiet
@PROPERTIES
@given(st.sampled_from(sorted(ESTIMATORS)), st.integers(0, 2**16))
def test_pickle_round_trip_gives_identical_predictions(name: str, seed: int) -> None:
    X, y = blobs(seed=seed) if name == "TorchClassifier" else regression(seed=seed)
    est = ESTIMATORS[name](**TINY).fit(X, y)
    assert_array_equal(outputs(pickle.loads(pickle.dumps(est)), X), outputs(est, X))


@quiet
def test_joblib_deepcopy_and_pickle_copies_predict_alike_and_a_clone_is_unfitted() -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(X, y)
    buffer = io.BytesIO()
    joblib.dump(clf, buffer)
    buffer.seek(0)
    for other in (joblib.load(buffer), copy.deepcopy(clf), pickle.loads(pickle.dumps(clf))):
        assert_array_equal(other.predict_proba(X), clf.predict_proba(X))
    assert not hasattr(clone(clf), "module_") and clone(clf).get_params() == clf.get_params()


@quiet
def test_lambda_modules_fit_but_do_not_pickle() -> None:
    X, y = regression()
    reg = TorchRegressor(module=lambda n_in, n_out: nn.Linear(n_in, n_out), **CUSTOM).fit(X, y)
    with pytest.raises((pickle.PicklingError, AttributeError)):
        pickle.dumps(reg)
    pickle.loads(pickle.dumps(TorchRegressor(module=nn.Linear, **CUSTOM).fit(X, y)))  # a class pickles


def test_grid_search_in_two_processes_equals_one() -> None:
    X, y = blobs()
    grid = {"hidden_layer_sizes": [(8,), (16,)], "alpha": [1e-4, 1e-2]}
    searches = [
        GridSearchCV(
            TorchClassifier(max_iter=20, learning_rate_init=0.01, random_state=0), grid, cv=2, n_jobs=n
        )
        for n in (1, 2)
    ]
    with warnings.catch_warnings():  # workers' ConvergenceWarnings travel back; short max_iter on purpose
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial, parallel = (search.fit(X, y) for search in searches)
    assert_array_equal(parallel.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"])
    assert parallel.best_params_ == serial.best_params_


@quiet
def test_a_dataframe_cross_validates_in_a_pipeline_and_sets_feature_names_in() -> None:
    X, y = blobs()
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    pipe = make_pipeline(StandardScaler(), TorchClassifier(**FAST, random_state=0))
    # 0.9 holds for every random_state in 0..19 (checked once; minimum 0.98): separable, trained enough.
    assert cross_val_score(pipe, frame, y, cv=3).mean() > 0.9
    clf = TorchClassifier(**TINY).fit(frame, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]


# --- tensors in, tensors out (scikit-learn's array API dispatch) ----------------------------------


@quiet
def test_tensor_X_and_y_fit_and_predict_as_their_numpy_arrays() -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(torch.from_numpy(X), torch.from_numpy(y))
    assert_array_equal(clf.predict(torch.from_numpy(X)), clf.predict(X))


class DLPackOnly:
    """An array that only exports DLPack, as CuPy's does, here on the CPU."""

    def __init__(self, a: NDArray) -> None:
        self.a, self.shape, self.ndim = a, a.shape, a.ndim

    def __dlpack__(self, **kwargs: Any) -> Any:
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> Any:
        return self.a.__dlpack_device__()


@quiet
def test_an_array_that_only_exports_dlpack_fits_and_predicts_as_its_numpy_array() -> None:
    X, y = blobs()
    clf = TorchClassifier(**TINY).fit(DLPackOnly(X), DLPackOnly(y))
    assert_array_equal(clf.predict_proba(DLPackOnly(X)), TorchClassifier(**TINY).fit(X, y).predict_proba(X))


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
    on = X_t.device
    named = f"fit had torch arrays on {on}, predict got numpy on cpu; convert X to torch on {on} first"
    with sklearn.config_context(array_api_dispatch=True), pytest.raises(ValueError, match=named):
        pipe[-1].predict(X)  # NumPy X for a model fitted on tensors
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


# --- device names: cpu:0 is the CPU; a device that is not here is a ValueError --------------------


@quiet
def test_cpu_0_is_the_cpu_and_shares_X(monkeypatch: pytest.MonkeyPatch) -> None:
    import estimators
    from bridge import shares_memory, to_tensor

    X, y = blobs()
    shared = []

    def spy(x: Any, **kwargs: Any) -> torch.Tensor:
        out = to_tensor(x, **kwargs)
        shared.append(x is X and shares_memory(out, X))
        return out

    monkeypatch.setattr(estimators, "to_tensor", spy)
    TorchClassifier(device="cpu:0", **TINY).fit(X, y)
    assert any(shared)  # X itself crossed to torch without a copy


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "xpu", "mps"])
def test_a_device_that_is_not_here_is_a_value_error(device: str) -> None:
    kind = getattr(torch, device.split(":")[0])
    if kind.is_available() and (":" not in device or kind.device_count() > 7):
        pytest.skip(f"{device} exists here")
    with pytest.raises(ValueError, match=device.split(":")[0]):
        TorchClassifier(device=device, **TINY).fit(*blobs())


# --- CUDA: the CPU's model, draws repeat, CuPy in and out (skip without a GPU) --------------------

CUDA_CASES: list[tuple[Any, dict[str, Any], bool, bool]] = [  # estimator, params, sparse X, weighted
    (TorchClassifier, {}, False, False),
    (TorchClassifier, {"solver": "sgd", "learning_rate": "adaptive", "batch_size": 16}, False, True),
    (TorchClassifier, {"solver": "lbfgs"}, True, True),
    (TorchClassifier, {"early_stopping": True, "class_weight": "balanced", "scoring": "loss"}, True, False),
    (TorchRegressor, {"early_stopping": True}, False, True),
    (TorchRegressor, {"loss": "poisson", "solver": "sgd"}, True, False),
]


def fit_twice_on(device: str, estimator: Any, params: dict[str, Any], sparse: bool, weighted: bool) -> Any:
    """A fit, then one partial_fit epoch where there is one (not for lbfgs nor early stopping), on
    ``device``, of float64 data."""
    X, y = blobs(n=80) if estimator is TorchClassifier else regression(n=80)
    if params.get("loss") == "poisson":
        y = np.exp(y / 4)
    X_ = scipy.sparse.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0)) if sparse else X
    w = np.linspace(0.5, 2.0, len(y)) if weighted else None
    est = estimator(device=device, max_iter=8, hidden_layer_sizes=(8,), random_state=0, **params)
    est.fit(X_, y, sample_weight=w)
    if params.get("solver") != "lbfgs" and not params.get("early_stopping"):
        est.partial_fit(X_, y, sample_weight=w)
    return est, X_


@cuda
@quiet
@pytest.mark.parametrize(("estimator", "params", "sparse", "weighted"), CUDA_CASES)
def test_cuda_fits_the_model_the_cpu_fits(
    estimator: Any, params: dict[str, Any], sparse: bool, weighted: bool
) -> None:
    """The same random_state gives the same float64 model on CUDA as on the CPU, to rounding: the same
    draws, batches, steps and stopping, for every solver, sparse rows and early stopping alike."""
    on_cpu, X = fit_twice_on("cpu", estimator, params, sparse, weighted)
    on_cuda, _ = fit_twice_on("cuda", estimator, params, sparse, weighted)
    assert next(on_cuda.module_.parameters()).is_cuda
    assert on_cuda.n_iter_ == on_cpu.n_iter_
    assert_allclose(on_cuda.loss_curve_, on_cpu.loss_curve_, rtol=1e-7)
    assert_allclose(outputs(on_cuda, X), outputs(on_cpu, X), rtol=1e-7, atol=1e-10)


@cuda
@quiet
def test_cuda_custom_module_draws_repeat_and_global_generators_stay() -> None:
    X, y = blobs()
    states = torch.get_rng_state(), torch.cuda.get_rng_state()
    fits = [TorchClassifier(module=Residual, device="cuda", **CUSTOM).fit(X, y) for _ in range(2)]
    assert_array_equal(fits[0].predict_proba(X), fits[1].predict_proba(X))  # dropout's draws are seeded
    assert torch.equal(torch.get_rng_state(), states[0]) and torch.equal(
        torch.cuda.get_rng_state(), states[1]
    )


@cuda
@quiet
def test_cuda_training_pickles_device_free_and_resumes_on_the_gpu() -> None:
    X, y = blobs()
    clf = TorchClassifier(device="cuda", **TINY).fit(X, y)
    assert next(clf.module_.parameters()).is_cuda
    restored = pickle.loads(pickle.dumps(clf))
    assert next(clf.module_.parameters()).is_cuda  # saving left the estimator on its GPU
    assert next(restored.module_.parameters()).is_cpu  # loads on a machine without a GPU
    sio = pytest.importorskip("skops.io", reason="skops is in the test extra")
    assert_array_equal(
        sio.loads(sio.dumps(clf), trusted=["estimators.TorchClassifier"]).predict_proba(X),
        restored.predict_proba(X),
    )
    assert_allclose(restored.predict_proba(X), clf.predict_proba(X), rtol=1e-5)
    # partial_fit goes on on the GPU, the optimizer's state moving back with the module.
    restored.partial_fit(X, y)
    assert next(restored.module_.parameters()).is_cuda
    assert_allclose(restored.predict_proba(X), clf.partial_fit(X, y).predict_proba(X), rtol=1e-5)
    on_gpu = TorchClassifier(**TINY).fit(torch.from_numpy(X).cuda(), y)  # device=None follows X
    assert next(on_gpu.module_.parameters()).is_cuda


@cuda
@quiet
def test_cupy_arrays_come_back_as_cupy() -> None:
    cp = pytest.importorskip("cupy")
    X, y = blobs()
    with sklearn.config_context(array_api_dispatch=True):
        clf = TorchClassifier(**TINY).fit(cp.asarray(X), cp.asarray(y), sample_weight=cp.ones(len(y)))
        proba, pred = clf.predict_proba(cp.asarray(X)), clf.predict(cp.asarray(X))
    assert isinstance(proba, cp.ndarray) and isinstance(pred, cp.ndarray)
    reference = TorchClassifier(**TINY).fit(X, y)
    assert_allclose(cp.asnumpy(proba), reference.predict_proba(X))
    assert_array_equal(cp.asnumpy(pred), reference.predict(X))


# --- users' modules train through the same API, sized as MLP's ------------------------------------


@quiet
def test_a_custom_module_trains_through_the_same_api() -> None:
    X, y = blobs()
    clf = TorchClassifier(module=Residual, max_iter=30, learning_rate_init=0.01, random_state=0).fit(X, y)
    # The thresholds here hold for every random_state in 0..19 (checked once; minimum 0.98 and 0.97).
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


@quiet
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_lazy_layers_train_as_their_eager_twins(solver: str) -> None:
    # The dry run sizes them before the optimizer sees the parameters; their draws come in the same
    # order from the same seeded stream, so the models are the same (float32: no cast after the draws).
    def lazy(n_in: int, n_out: int) -> nn.Module:
        return nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.LazyLinear(n_out))

    def eager(n_in: int, n_out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(n_in, 16), nn.ReLU(), nn.Linear(16, n_out))

    X, y = blobs()
    X = X.astype(np.float32)
    params: dict[str, Any] = {"solver": solver, "max_iter": 20, "learning_rate_init": 0.01, "random_state": 0}
    lazily, eagerly = (TorchClassifier(module=m, **params).fit(X, y) for m in (lazy, eager))
    if solver == "lbfgs":  # float64 for L-BFGS: lazy layers draw in float64, eager ones draw then cast
        assert lazily.score(X, y) > 0.9
        return
    assert_array_equal(lazily.predict_proba(X), eagerly.predict_proba(X))
    assert_array_equal(lazily.partial_fit(X, y).predict_proba(X), eagerly.partial_fit(X, y).predict_proba(X))


class Embedded(nn.Module):
    """An embedding of the first feature's integer part, with sparse gradients."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(10, 4, sparse=True)
        self.head = nn.Linear(4 + n_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = x[:, 0].clamp(0, 9).long()
        return self.head(torch.cat([self.embedding(index), x], 1))  # type: ignore[no-any-return]


def embedding(clf: Any) -> torch.Tensor:
    return clf.module_.embedding.weight.detach().clone()  # type: ignore[no-any-return]


@quiet
@pytest.mark.parametrize("alpha", [0.0, 1e-3])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
def test_modules_with_sparse_gradients_train_with_every_solver(
    solver: str, momentum: float, alpha: float
) -> None:
    X, y = blobs()
    params: dict[str, Any] = {
        "solver": solver,
        "momentum": momentum,
        "alpha": alpha,
        "learning_rate_init": 0.01,
    }
    clf = TorchClassifier(module=Embedded, **params, **CUSTOM).fit(X, y)
    before = embedding(clf)
    assert np.isfinite(clf.loss_curve_).all() and clf.n_iter_ > 0
    if solver != "lbfgs":
        assert clf.loss_curve_[-1] < clf.loss_curve_[0]
        clf.partial_fit(X, y)
        assert not torch.equal(embedding(clf), before)


class Sized(nn.Module):
    """A network whose width and depth come from MLP's parameters."""

    def __init__(
        self, n_features: int, n_outputs: int, hidden_layer_sizes: Any = (100,), activation: str = "relu"
    ) -> None:
        super().__init__()
        widths = [n_features, *hidden_layer_sizes]
        act = {"relu": nn.ReLU, "tanh": nn.Tanh}[activation]
        layers = [m for a, b in itertools.pairwise(widths) for m in (nn.Linear(a, b), act())]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1], n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class Widened(nn.Module):
    """A network with a width of its own name."""

    def __init__(self, n_features: int, n_outputs: int, width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


@quiet
def test_a_custom_networks_size_is_searched_like_mlps() -> None:
    X, y = blobs(n=90)
    search_params: dict[str, Any] = {"max_iter": 20, "learning_rate_init": 0.01, "random_state": 0}
    pipe = Pipeline([("scale", StandardScaler()), ("clf", TorchClassifier(module=Sized, **search_params))])
    grid = {"clf__hidden_layer_sizes": [(2,), (16, 16)], "clf__activation": ["relu", "tanh"]}
    for cell in ParameterGrid(grid):  # each cell's network has that cell's size and activation
        net = clone(pipe).set_params(**cell).fit(X, y)["clf"].module_.net
        assert [m.out_features for m in net if isinstance(m, nn.Linear)][:-1] == list(
            cell["clf__hidden_layer_sizes"]
        )
        assert any(type(m).__name__.lower() == cell["clf__activation"] for m in net)
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    best = search.best_estimator_["clf"].module_
    assert best.net[0].out_features == search.best_params_["clf__hidden_layer_sizes"][0]
    pipe = Pipeline([("scale", StandardScaler()), ("clf", TorchClassifier(module=Widened, **search_params))])
    search = GridSearchCV(pipe, {"clf__module__width": [2, 32]}, cv=3).fit(X, y)
    width = search.best_params_["clf__module__width"]
    assert search.best_estimator_["clf"].module_.net[0].out_features == width
    assert clone(search.best_estimator_).get_params()["clf__module__width"] == width


def test_a_size_the_module_would_ignore_is_an_error() -> None:
    X, y = blobs()
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        TorchClassifier(module=Widened, hidden_layer_sizes=(5,), **CUSTOM).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        TorchClassifier(module=Widened, activation="tanh", **CUSTOM).fit(X, y)
    with pytest.raises(ValueError, match="module__width"):
        TorchClassifier(**TINY).set_params(module__width=3)


def test_a_factory_taking_keyword_arguments_gets_mlps_sizes() -> None:
    X, y = blobs()
    seen: list[dict[str, Any]] = []

    def net(n_in: int, n_out: int, **options: Any) -> nn.Module:
        seen.append(options)
        return nn.Sequential(
            nn.Linear(n_in, options["hidden_layer_sizes"][0]),
            nn.ReLU(),
            nn.Linear(options["hidden_layer_sizes"][0], n_out),
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        TorchClassifier(module=net, hidden_layer_sizes=(8,), activation="tanh", **CUSTOM).fit(X, y)
        TorchClassifier(module=net, **CUSTOM).set_params(module__hidden_layer_sizes=(6,)).fit(X, y)
    assert seen == [
        {"hidden_layer_sizes": (8,), "activation": "tanh"},
        {"hidden_layer_sizes": (6,), "activation": "relu"},
    ]


@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_the_l2_term_reaches_only_the_matrices_fit_trains(solver: str) -> None:
    # A frozen weight matrix is not the model's to shrink: every solver leaves it out of the L2 term
    # and so out of the reported loss, as L-BFGS's objective always did.
    X, y = regression(n=40)

    def net(n_in: int, n_out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(n_in, 8).requires_grad_(False), nn.ReLU(), nn.Linear(8, n_out))

    params: dict[str, Any] = {
        "module": net,
        "solver": solver,
        "max_iter": 1,
        "shuffle": False,
        "batch_size": len(X),
        "learning_rate_init": 1e-12,
        "random_state": 0,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = TorchRegressor(alpha=0.0, **params).fit(X, y)
        shrunk = TorchRegressor(alpha=2.0, **params).fit(X, y)
    trained = float(shrunk.module_.get_parameter("2.weight").detach().square().sum())
    np.testing.assert_allclose(shrunk.loss_, plain.loss_ + 0.5 * 2.0 * trained / len(X), rtol=1e-6)


# --- a module fit cannot train is refused before training -----------------------------------------


def test_module_must_build_an_nn_module() -> None:
    with pytest.raises(TypeError, match="nn.Module"):
        TorchClassifier(module=lambda n_in, n_out: "not a module").fit(*blobs())  # type: ignore[arg-type, return-value]  # the wrong type is the test


class Flat(nn.Module):
    """A regressor module that forgets the output axis: (batch,) instead of (batch, 1)."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(1)  # type: ignore[no-any-return]


def test_a_module_output_of_the_wrong_shape_is_named() -> None:
    with pytest.raises(ValueError, match=r"maps 2 rows to shape \(2,\); .* \(batch, n_outputs\) = \(2, 1\)"):
        TorchRegressor(module=Flat, **CUSTOM).fit(*regression())


@quiet
@pytest.mark.parametrize("n_classes", [2, 3, "multilabel"])
def test_a_module_that_ends_in_softmax_is_refused(n_classes: int | str) -> None:
    X, codes = blobs()
    y = (
        np.stack([codes == 0, codes == 1], axis=1).astype(int)
        if n_classes == "multilabel"
        else codes % int(n_classes)
    )

    def ending_in(last: nn.Module) -> Callable[[int, int], nn.Module]:
        return lambda n_in, n_out: nn.Sequential(nn.Linear(n_in, n_out), last)

    with pytest.raises(ValueError, match="softmax"):
        TorchClassifier(module=ending_in(nn.Softmax(dim=1)), **CUSTOM).fit(X, y)
    log_softmax = TorchClassifier(module=ending_in(nn.LogSoftmax(dim=1)), **CUSTOM)
    if n_classes == "multilabel":  # each output is its own logistic: log-probabilities learn nothing
        with pytest.raises(ValueError, match="softmax"):
            log_softmax.fit(X, y)
    else:  # softmax's input shifted per row, which softmax ignores; one column: 0, as a zero layer gives
        log_softmax.fit(X, y)


@pytest.mark.parametrize("start", ["partial_fit", "warm_start"])
def test_the_built_in_network_is_never_taken_for_a_softmax(start: str) -> None:
    # Two equal first rows whose binary output is 1.0 look like rows of probabilities (each sums to 1);
    # only a module of the caller's can end in softmax, and MLPClassifier fits such data.
    X, y = blobs(n_classes=2)
    clf = TorchClassifier(activation="identity", warm_start=start == "warm_start", **TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.partial_fit(X, y, classes=[0, 1]) if start == "partial_fit" else clf.fit(X, y)

    def logit(Z: NDArray) -> NDArray:
        p = as_numpy(clf.predict_proba(Z))[:, 1]
        odds: NDArray = p / (1 - p)
        return np.log(odds)

    zero, x = logit(np.zeros((1, 4))), logit(X[:1])
    record = X[:1] * (1 - zero) / (x - zero)  # the network is affine: its raw output here is 1
    assert_allclose(logit(record), 1.0, atol=1e-6)
    X2, y2 = np.vstack([record, record, X]), np.r_[0, 0, y]
    MLPClassifier(activation="identity", max_iter=1, hidden_layer_sizes=(8,)).partial_fit(
        X2, y2, classes=[0, 1]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.partial_fit(X2, y2) if start == "partial_fit" else clf.fit(X2, y2)


class ComplexLinear(nn.Module):
    """A linear layer with complex weights whose real part is the output."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_features, n_outputs, dtype=torch.complex64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.weight.dtype) @ self.weight).real


def test_a_module_with_complex_parameters_is_refused_before_training() -> None:
    # Casting it to X's real dtype would drop the imaginary parts and train another, real model.
    X, y = blobs()
    clf = TorchClassifier(module=ComplexLinear, **CUSTOM)
    with pytest.raises(TypeError, match=r"complex.*weight.*complex64"):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


class Fixed(nn.Module):
    """Outputs of the right shape from nothing trainable: no parameters at all, or only frozen ones."""

    def __init__(self, n_in: int, n_out: int, frozen: bool = False) -> None:
        super().__init__()
        self.n_out = n_out
        self.layer = nn.Linear(n_in, n_out).requires_grad_(False) if frozen else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) if self.layer is not None else x[:, :1].expand(-1, self.n_out) * 0.5


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("frozen", [False, True], ids=["no parameters", "frozen"])
def test_a_module_with_nothing_to_train_is_a_clear_error(frozen: bool, solver: str) -> None:
    X, y = regression()
    with pytest.raises(ValueError, match="no parameter that requires grad"):
        TorchRegressor(module=functools.partial(Fixed, frozen=frozen), solver=solver, **CUSTOM).fit(X, y)


# --- threads: one for small steps, in the fitting thread only -------------------------------------


class Counting(nn.Module):
    """A linear network that records torch's intra-op thread count in each training step, and what a
    thread started during the fit sees."""

    seen: list[int] = []
    fresh: list[int] = []

    def __init__(self, n_features: int, n_outputs: int, width: int = 8) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(n_features, width), nn.ReLU(), nn.Linear(width, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            Counting.seen.append(torch.get_num_threads())
            if not Counting.fresh:
                other = threading.Thread(target=lambda: Counting.fresh.append(torch.get_num_threads()))
                other.start()
                other.join()
        return self.layers(x)  # type: ignore[no-any-return]


many_threads = pytest.mark.skipif(torch.get_num_threads() < 2, reason="torch runs one thread here")


@quiet
@many_threads
@pytest.mark.parametrize(("width", "threads"), [(8, 1), (8192, torch.get_num_threads())])
def test_small_steps_train_on_one_thread_and_large_ones_keep_them(width: int, threads: int) -> None:
    from threadpoolctl import threadpool_info

    before, pools = torch.get_num_threads(), threadpool_info()
    Counting.seen, Counting.fresh = [], []
    X, y = blobs(n=64, n_features=64)  # 8192 wide: (64 + 3) * 8192 parameters x 64 rows, past the line
    TorchClassifier(module=partial(Counting, width=width), max_iter=2, batch_size=64, random_state=0).fit(
        X, y
    )
    assert set(Counting.seen) == {threads}
    assert Counting.fresh == [before]  # other threads, even new ones, keep theirs
    assert torch.get_num_threads() == before and threadpool_info() == pools


@quiet
@many_threads
def test_concurrent_fits_limit_only_their_own_threads() -> None:
    before = torch.get_num_threads()
    Counting.seen, Counting.fresh = [], [before]
    X, y = blobs()
    started = threading.Event()

    def fit(seed: int) -> Any:
        started.set()
        return TorchClassifier(module=Counting, max_iter=20, random_state=seed).fit(X, y)

    with ThreadPoolExecutor(4) as pool:
        fits = [pool.submit(fit, seed) for seed in range(4)]
        started.wait()
        assert torch.get_num_threads() == before  # this thread is not limited by theirs
        fitted = [f.result() for f in fits]
    assert set(Counting.seen) == {1} and torch.get_num_threads() == before
    alone = TorchClassifier(module=Counting, max_iter=20, random_state=3).fit(X, y)
    assert_array_equal(fitted[3].predict_proba(X), alone.predict_proba(X))


# --- saving and loading: the fitted state is plain data -------------------------------------------


class Normed(nn.Module):
    """A network with buffers (batch norm's running statistics) and dropout's draws."""

    def __init__(self, n_features: int, n_outputs: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(n_features, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, n_outputs)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)  # type: ignore[no-any-return]


def plain_leaves(value: Any, path: str = "state") -> Iterator[tuple[str, Any]]:
    """Every leaf of a saved state, with its path: what is not a dict, a list or a tuple."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from plain_leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from plain_leaves(item, f"{path}[{i}]")
    else:
        yield path, value


SAVED: dict[str, tuple[Any, Callable[[], tuple[Any, Any]]]] = {  # estimator, data
    "binary": (TorchClassifier(**TINY), lambda: blobs(n_classes=2)),
    "multiclass": (TorchClassifier(**TINY), blobs),
    "multilabel": (TorchClassifier(**TINY), lambda: (blobs()[0], (blobs()[0][:, :3] > 2).astype(int))),
    "string labels": (TorchClassifier(**TINY), lambda: (blobs()[0], np.array(["a", "b", "c"])[blobs()[1]])),
    "k outputs": (TorchRegressor(**TINY), lambda: regression(n_outputs=3)),
    "float32": (TorchRegressor(**TINY), lambda: (regression()[0].astype(np.float32), regression()[1])),
    "lbfgs": (TorchClassifier(**{**TINY, "solver": "lbfgs"}), blobs),
    "sgd, early stopping": (TorchClassifier(**{**TINY, "solver": "sgd", "early_stopping": True}), blobs),
    "sparse": (TorchClassifier(**TINY), lambda: (scipy.sparse.csr_matrix(blobs()[0]), blobs()[1])),
    "custom module": (TorchRegressor(module=Residual, **CUSTOM), regression),
    "buffers and dropout": (TorchClassifier(module=Normed, **CUSTOM), blobs),
    "pipeline": (make_pipeline(StandardScaler(), PCA(3), TorchClassifier(**TINY)), blobs),
}


def fitted(case: str) -> tuple[Any, Any, Any]:
    """A fitted copy of the case's estimator, and its data."""
    est, data = SAVED[case]
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clone(est).fit(X, y), X, y


def final(est: Any) -> Any:
    """The torch estimator itself, or at the end of a pipeline."""
    return est[-1] if isinstance(est, Pipeline) else est


@pytest.mark.parametrize("case", list(SAVED))
def test_the_saved_state_is_plain_data_and_saving_changes_nothing(case: str) -> None:
    est, X, _ = fitted(case)
    torch_est = final(est)
    before = dict(vars(torch_est))
    weights = [p.clone() for p in torch_est.module_.parameters()]
    state = torch_est.__getstate__()
    for path, leaf in plain_leaves(state):
        if path.startswith(("state['module']", "state['_shape']['module']")):
            continue  # the module factory: a parameter, the user's class or function
        assert isinstance(leaf, (np.ndarray, np.generic, int, float, str, type(None))), (path, type(leaf))
    arrays = [leaf for _, leaf in plain_leaves(state) if isinstance(leaf, np.ndarray)]
    saved = [a.copy() for a in arrays]
    with torch.no_grad():  # the state is a copy: what later happens to the network does not reach it
        for p in torch_est.module_.parameters():
            p.add_(1)
    assert all(
        np.array_equal(a, b, equal_nan=a.dtype.kind == "f") for a, b in zip(arrays, saved, strict=True)
    )
    with torch.no_grad():
        for p, w in zip(torch_est.module_.parameters(), weights, strict=True):
            p.copy_(w)
    cls: Any = type(torch_est)
    twin = cls.__new__(cls)
    twin.__setstate__(state)
    X = est[:-1].transform(X) if isinstance(est, Pipeline) else X  # what the estimator itself reads
    expected = outputs(twin, X)
    for a in arrays:  # loading copies too: the state it read can change without reaching the model
        if a.flags.writeable and a.dtype.kind == "f":
            a[...] = 0
    assert_array_equal(outputs(twin, X), expected)
    pickle.dumps(est)
    assert vars(torch_est).keys() == before.keys()
    assert all(vars(torch_est)[k] is v for k, v in before.items())  # the live objects, untouched
    assert all(torch.equal(p, w) for p, w in zip(torch_est.module_.parameters(), weights, strict=True))


@pytest.mark.parametrize("case", list(SAVED))
def test_skops_loads_what_it_saved_trusting_only_the_estimator_and_the_factory(case: str) -> None:
    sio = pytest.importorskip("skops.io", reason="skops is in the test extra: pip install -e '.[test]'")
    est, X, y = fitted(case)
    data = sio.dumps(est)
    factory = final(est).module
    expected = {f"estimators.{type(final(est)).__name__}"} | (
        set() if factory is None else {f"{factory.__module__}.{factory.__qualname__}"}
    )
    untrusted = sio.get_untrusted_types(data=data)
    assert set(untrusted) == expected
    loaded = sio.loads(data, trusted=untrusted)
    assert_array_equal(outputs(loaded, X), outputs(est, X))
    assert_array_equal(loaded.predict(X), est.predict(X))


@quiet
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("how", ["pickle", "skops"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_loaded_estimator_trains_on_exactly_as_the_original(solver: str, how: str, dtype: type) -> None:
    sio = pytest.importorskip("skops.io", reason="skops is in the test extra: pip install -e '.[test]'")
    X, y = blobs()
    X = X.astype(dtype)
    for module in (None, Normed):
        est = TorchClassifier(solver=solver, module=module, warm_start=True, **CUSTOM).fit(X, y)
        generator = torch.get_rng_state()
        if how == "pickle":
            loaded = pickle.loads(pickle.dumps(est))
        else:
            data = sio.dumps(est)
            loaded = sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        assert torch.equal(torch.get_rng_state(), generator)  # the factory's draws were its own
        assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        for model in (est, loaded):
            if solver != "lbfgs":  # first the fitted optimizer, going on: three more epochs
                for _ in range(3):
                    model.partial_fit(X, y)
            model.set_params(max_iter=3).fit(X, y)  # warm start: three more epochs (iterations)
        for a, b in zip(est.module_.parameters(), loaded.module_.parameters(), strict=True):
            assert torch.equal(a, b)
        assert est.loss_curve_ == loaded.loss_curve_ and est.t_ == loaded.t_


SAVED_MODULE = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        return self.linear(x)
"""

IN_A_NEW_PROCESS = """
import pickle, sys
import numpy as np
import skops.io as sio
from numpy.testing import assert_array_equal

X, y, expected, grown = np.load("data.npz", allow_pickle=False).values()
for how in ("pickle", "skops"):
    if how == "pickle":
        with open("model.pkl", "rb") as f:
            clf = pickle.load(f)
    else:
        clf = sio.load("model.skops", trusted=["estimators.TorchClassifier", "mynets.Net"])
    assert_array_equal(clf.predict_proba(X), expected)
    for _ in range(3):
        clf.partial_fit(X, y)
    assert_array_equal(clf.predict_proba(X), grown)
print("ok")
"""


@quiet
def test_a_model_saved_with_its_module_class_in_a_module_loads_in_a_new_process(tmp_path: Any) -> None:
    sio = pytest.importorskip("skops.io", reason="skops is in the test extra: pip install -e '.[test]'")
    (tmp_path / "mynets.py").write_text(SAVED_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import mynets  # type: ignore[import-not-found]  # written just above

        X, y = blobs()
        clf = TorchClassifier(module=mynets.Net, **CUSTOM).fit(X, y)
        (tmp_path / "model.pkl").write_bytes(pickle.dumps(clf))
        sio.dump(clf, tmp_path / "model.skops")
        expected = clf.predict_proba(X)
        for _ in range(3):
            clf.partial_fit(X, y)
        np.savez(tmp_path / "data.npz", X=X, y=y, expected=expected, grown=clf.predict_proba(X))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("mynets", None)
    here = str(Path(__file__).parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, str(tmp_path)])}
    run = subprocess.run(
        [sys.executable, "-c", IN_A_NEW_PROCESS], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr


def tampered(est: Any, change: Callable[[dict[str, Any]], None], how: str, monkeypatch: Any) -> bytes:
    """``est`` saved (by pickle or skops) with ``change`` made to its saved state."""
    state = est.__getstate__()
    change(state)
    monkeypatch.setattr(type(est), "__getstate__", lambda self: state)
    try:
        if how == "pickle":
            return pickle.dumps(est)
        sio = pytest.importorskip("skops.io", reason="skops is in the test extra")
        return sio.dumps(est)  # type: ignore[no-any-return]
    finally:
        monkeypatch.undo()


def load(data: bytes, how: str) -> Any:
    if how == "pickle":
        return pickle.loads(data)
    sio = pytest.importorskip("skops.io", reason="skops is in the test extra")
    return sio.loads(data, trusted=sio.get_untrusted_types(data=data))


TAMPERED: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "a layer of another width": (
        lambda s: s["module_"]["coefs"].__setitem__(0, s["module_"]["coefs"][0][:, :-1]),
        "shapes",
    ),
    "fewer features than n_features_in_": (lambda s: s.__setitem__("n_features_in_", 3), "n_features_in_=3"),
    "more outputs than the network": (lambda s: s.__setitem__("n_outputs_", 4), "n_outputs_=4"),
    "an unknown activation": (
        lambda s: s["module_"].__setitem__("activation", "swish"),
        "activation 'swish'",
    ),
    "float16 weights": (
        lambda s: s["module_"]["coefs"].__setitem__(0, s["module_"]["coefs"][0].astype(np.float16)),
        "float16",
    ),
    "mixed dtypes": (
        lambda s: s["module_"]["intercepts"].__setitem__(0, s["module_"]["intercepts"][0].astype(np.float32)),
        "float32 or float64",
    ),
    "a missing attribute": (lambda s: s.pop("loss_curve_"), "loss_curve_"),
    "a missing key": (lambda s: s["module_"].pop("intercepts"), "intercepts"),
    "a newer format": (lambda s: s.__setitem__("_state_format", 2), "format 2"),
    "a format that is not a number": (lambda s: s.__setitem__("_state_format", True), "format True"),
    "an optimizer state of another shape": (
        lambda s: s["_optimizer"]["state"][0].__setitem__(0, np.zeros(3)),
        "does not fit",
    ),
    "an optimizer setting more": (lambda s: s["_optimizer"]["options"].__setitem__("lr", 0.1), "'lr'"),
    "another optimizer": (lambda s: s["_optimizer"].__setitem__("solver", "sgd"), "'sgd'"),
    "integer weights": (
        lambda s: s["module_"]["coefs"].__setitem__(0, s["module_"]["coefs"][0].astype(np.int64)),
        "int64",
    ),
    "an activation its shape does not record": (
        lambda s: s["module_"].__setitem__("activation", "tanh"),
        "'tanh'",
    ),
    "fewer classes than outputs": (lambda s: s.__setitem__("classes_", s["classes_"][:2]), "2 classes"),
    "no network": (lambda s: s.__setitem__("module_", None), "malformed"),
    "no shape": (lambda s: s.__setitem__("_shape", None), "malformed"),
}


@pytest.mark.parametrize("how", ["pickle", "skops"])
@pytest.mark.parametrize("case", list(TAMPERED))
def test_a_tampered_state_is_a_value_error_naming_what_is_wrong(
    case: str, how: str, monkeypatch: Any
) -> None:
    est, _, _ = fitted("multiclass")
    change, match = TAMPERED[case]
    data = tampered(est, change, how, monkeypatch)
    with pytest.raises(ValueError, match=re.escape(match)):
        load(data, how)


@pytest.mark.parametrize("how", ["pickle", "skops"])
def test_a_custom_modules_tampered_state_is_a_value_error(how: str, monkeypatch: Any) -> None:
    est, _, _ = fitted("buffers and dropout")
    changes: list[tuple[Callable[[dict[str, Any]], None], str]] = [
        (lambda s: s["module_"]["state_dict"].pop("layers.1.running_mean"), "running_mean"),
        (lambda s: s["module_"]["state_dict"].__setitem__("layers.1.weight", np.ones(8, bool)), "torch.bool"),
        (lambda s: s["_global_rng_states"].__setitem__(0, np.zeros(3, np.uint8)), "malformed"),
        (lambda s: s["module_"].__setitem__("state_dict", []), "malformed"),
        (
            lambda s: s["module_"]["state_dict"].__setitem__("layers.0.weight", np.zeros((9, 4))),
            "size mismatch",
        ),
        (lambda s: s["module_"]["state_dict"].__setitem__("extra", np.zeros(2)), "extra"),
        (lambda s: s.__setitem__("n_features_in_", 5), "size mismatch"),
    ]
    for change, match in changes:
        with pytest.raises(ValueError, match=match):
            load(tampered(est, change, how, monkeypatch), how)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.complex64])
def test_tensors_fit_never_makes_are_a_type_error_when_saving(dtype: torch.dtype) -> None:
    # Only a change made after fit brings them; loading would refuse them, so saving does.
    est, _, _ = fitted("custom module")
    est.module_.register_buffer("scale", torch.ones(2, dtype=dtype))
    with pytest.raises(TypeError, match=rf"scale \({dtype}\)"):
        pickle.dumps(est)


# --- a validation set of one's own ----------------------------------------------------------------


@quiet
def test_a_validation_set_of_ones_own_replaces_the_split() -> None:
    X, y, X_val, y_val = split_blobs()
    w_val = np.linspace(0.5, 1.5, len(y_val))
    clf = TorchClassifier(early_stopping=True, max_iter=30, n_iter_no_change=30, **FAST_ES)
    clf.fit(X, y, X_val=X_val, y_val=y_val, sample_weight_val=w_val)
    assert clf.t_ == clf.n_iter_ * len(X)  # every row trained: nothing was held out
    # The best weights are kept: their score on the caller's set is the best validation score.
    assert clf.best_validation_score_ == max(clf.validation_scores_ or [])
    assert clf.score(X_val, y_val, sample_weight=w_val) == pytest.approx(clf.best_validation_score_)
    reg = TorchRegressor(early_stopping=True, max_iter=20, **FAST_ES)
    Xr, yr = regression(n=90)
    reg.fit(Xr[:60], yr[:60], X_val=scipy.sparse.csr_matrix(Xr[60:]), y_val=torch.from_numpy(yr[60:]))
    assert reg.score(Xr[60:], yr[60:]) == pytest.approx(reg.best_validation_score_)
    frame, frame_val = pd.DataFrame(X, columns=list("abcd")), pd.DataFrame(X_val, columns=list("abcd"))
    assert clone(clf).fit(frame, y, X_val=frame_val, y_val=y_val).n_iter_ > 0
    with sklearn.config_context(array_api_dispatch=True):  # tensors in, as under dispatch
        on_tensors = clone(clf).fit(
            torch.from_numpy(X),
            torch.from_numpy(y),
            X_val=torch.from_numpy(X_val),
            y_val=torch.from_numpy(y_val),
        )
    assert on_tensors.n_iter_ > 0
    # class_weight weighs the validation rows too; 'balanced' from y_val's own classes, which may be fewer
    rare = y_val != 2
    balanced = clone(clf).set_params(class_weight="balanced").fit(X, y, X_val=X_val[rare], y_val=y_val[rare])
    assert balanced.score(
        X_val[rare], y_val[rare], sample_weight=compute_sample_weight("balanced", y_val[rare])
    ) == (pytest.approx(balanced.best_validation_score_))
    warm = clone(clf).set_params(warm_start=True).fit(X, y, X_val=X_val, y_val=y_val)
    first = len(warm.validation_scores_)
    warm.fit(X, y, X_val=X_val, y_val=y_val)  # the bookkeeping goes on, on the same set
    assert len(warm.validation_scores_) > first


Given: TypeAlias = Callable[[NDArray, NDArray, NDArray], dict[str, Any]]  # (X_val, y_val, w_val) -> fit's


@pytest.mark.parametrize(
    ("given", "params", "match"),
    [
        (lambda X, y, w: {"X_val": X}, {}, "come together"),
        (lambda X, y, w: {"y_val": y}, {}, "come together"),
        (lambda X, y, w: {"sample_weight_val": w}, {}, "come together"),
        (lambda X, y, w: {"X_val": X, "y_val": y}, {"early_stopping": False}, "early_stopping=False"),
        (lambda X, y, w: {"X_val": X, "y_val": y}, {"solver": "lbfgs"}, "'lbfgs'"),
        (lambda X, y, w: {"X_val": X[:, :3], "y_val": y}, {}, "X_val and y_val: X has 3 features"),
        (lambda X, y, w: {"X_val": X, "y_val": y[:10]}, {}, "X_val and y_val: Found input variables with"),
        (lambda X, y, w: {"X_val": X, "y_val": y + 7}, {}, "y_val has the labels [7 8 9], which y has not"),
        (
            lambda X, y, w: {"X_val": X[:1], "y_val": y[:1]},
            {},
            "X_val has 1 row; early stopping needs at least 2",
        ),
        (lambda X, y, w: {"X_val": X, "y_val": np.c_[y == 0, y == 1]}, {}, "y_val does not fit"),
        (lambda X, y, w: {"X_val": X, "y_val": y, "sample_weight_val": w[:5]}, {}, "sample_weight_val"),
    ],
)
def test_a_validation_set_that_does_not_fit_is_a_value_error_before_training(
    given: Given, params: dict[str, Any], match: str
) -> None:
    X, y, X_val, y_val = split_blobs()
    clf = TorchClassifier(early_stopping=True, warm_start=True, max_iter=3, **FAST_ES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    before = dict(vars(clf))
    with pytest.raises(ValueError, match=re.escape(match)):
        clf.set_params(**params).fit(X, y, **given(X_val, y_val, np.ones(len(y_val))))
    assert all(vars(clf)[k] is v for k, v in before.items() if k not in params)


@quiet
def test_a_validation_set_is_read_as_the_training_targets_are() -> None:
    # A sparse multilabel y_val is its dense twin, as a sparse y is; it has y's labels, no fewer.
    X, y, X_val, y_val = split_blobs()
    Y, Y_val = (np.stack([t == 0, t == 1, t != 1], axis=1).astype(int) for t in (y, y_val))
    clf = TorchClassifier(early_stopping=True, max_iter=5, **FAST_ES)
    for scoring in (None, "loss"):
        dense = clone(clf).set_params(scoring=scoring).fit(X, Y, X_val=X_val, y_val=Y_val)
        sparse = clone(dense).fit(
            X, scipy.sparse.csr_matrix(Y), X_val=X_val, y_val=scipy.sparse.csr_matrix(Y_val)
        )
        assert sparse.validation_scores_ == dense.validation_scores_
        assert_array_equal(sparse.predict_proba(X_val), dense.predict_proba(X_val))
    with pytest.raises(ValueError, match=re.escape("y_val has 2 outputs, and y has 3")):
        clone(clf).fit(X, Y, X_val=X_val, y_val=Y_val[:, :2])


@quiet
@pytest.mark.skipif(
    tuple(int(n) for n in sklearn.__version__.split(".")[:2]) < (1, 7),
    reason="Pipeline(transform_input=...) arrived in scikit-learn 1.7",
)
def test_a_pipeline_sends_the_validation_set_through_its_steps() -> None:
    X, y, X_val, y_val = split_blobs()
    X, X_val = X * 100 + 50, X_val * 100 + 50  # the scaler matters
    with sklearn.config_context(enable_metadata_routing=True):
        clf = TorchClassifier(early_stopping=True, max_iter=20, **FAST_ES).set_fit_request(
            X_val=True, y_val=True
        )
        pipe = Pipeline([("scale", StandardScaler()), ("clf", clf)], transform_input=["X_val"])
        pipe.fit(X, y, X_val=X_val, y_val=y_val)
        assert pipe.score(X_val, y_val) == pytest.approx(pipe[-1].best_validation_score_)


# --- verbose prints MLP's lines -------------------------------------------------------------------


def verbose_lines(est: Any, X: Any, y: Any, capsys: Any) -> list[str]:
    """The lines ``est.fit`` prints, each once, in order of first appearance: losses and scores masked
    (they differ by rounding), the stopping lines' tol and learning rates kept."""
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    measured = ("Iteration ", "Validation score: ")
    masked = [
        re.sub(r"-?\d+(\.\d+)?|nan|inf", "#", line) if line.startswith(measured) else line for line in lines
    ]
    return list(dict.fromkeys(masked))


@pytest.mark.parametrize(
    "params",
    [
        {"solver": "adam"},
        {"solver": "sgd", "learning_rate": "adaptive", "learning_rate_init": 1e-3, "tol": 1.0},
        {"solver": "sgd", "learning_rate": "adaptive", "learning_rate_init": 2e-6, "tol": 1.0},
        {"solver": "lbfgs"},
    ],
)
@pytest.mark.parametrize("early_stopping", [False, True])
def test_verbose_prints_mlps_lines(params: dict[str, Any], early_stopping: bool, capsys: Any) -> None:
    X, y = blobs(n=90)
    shared: dict[str, Any] = {"hidden_layer_sizes": (8,), "max_iter": 12, "n_iter_no_change": 2}
    shared |= {"random_state": 0, "verbose": True, "early_stopping": early_stopping, "tol": 1e-4, **params}
    ours = verbose_lines(TorchClassifier(**shared), X, y, capsys)
    theirs = verbose_lines(MLPClassifier(**shared), X, y, capsys)
    assert ours == theirs


@quiet
def test_verbose_says_why_training_stopped(capsys: pytest.CaptureFixture[str]) -> None:
    TorchClassifier(tol=10.0, n_iter_no_change=1, max_iter=50, verbose=True).fit(*blobs())
    last = capsys.readouterr().out.splitlines()[-1]
    assert last == "Training loss did not improve more than tol=10.000000 for 1 consecutive epochs. Stopping."


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


# --- scikit-learn's callbacks ---------------------------------------------------------------------

callbacks_1_9 = pytest.mark.skipif(
    tuple(int(n) for n in sklearn.__version__.split(".")[:2]) < (1, 9),
    reason="scikit-learn's callbacks (set_callbacks) arrived in scikit-learn 1.9",
)


@callbacks_1_9
@quiet
@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
def test_a_scoring_monitor_scores_every_epoch_and_the_fit(solver: str) -> None:
    from sklearn.callback import ScoringMonitor

    X, y = blobs(n=90)
    monitor = ScoringMonitor(scoring="accuracy")
    clf = TorchClassifier(solver=solver, max_iter=8, **FAST_ES).set_callbacks(monitor).fit(X, y)
    rows = monitor.get_logs().data
    steps = [row["accuracy"] for row in rows if row["task_name"] == "epoch"]
    assert len(steps) == clf.n_iter_  # an epoch, or an L-BFGS iteration, each
    assert [row["accuracy"] for row in rows if row["task_name"] == "fit"] == [clf.score(X, y)]
    assert steps[-1] == clf.score(X, y)  # the last step's model is the fitted one
    assert "_callback_fit_ctx" not in vars(clf)  # scikit-learn's teardown ran
    split = TorchClassifier(solver=solver, early_stopping=True, max_iter=8, **FAST_ES)
    monitor = ScoringMonitor(scoring="accuracy")
    split.set_callbacks(monitor).fit(X, y)  # the monitor scores all of fit's rows, the split's too
    assert [row["accuracy"] for row in monitor.get_logs().data][0] == split.score(X, y)
    # Scoring each epoch's model leaves training alone: dropout still draws in the epochs after.
    plain = TorchClassifier(solver=solver, module=Residual, **CUSTOM).fit(X, y)
    watched = clone(plain).set_callbacks(ScoringMonitor(scoring="accuracy")).fit(X, y)
    assert_array_equal(watched.predict_proba(X), plain.predict_proba(X))


class StopOrRaise:
    """A callback that asks training to stop, or raises, at the end of epoch ``at`` (counted from 1)."""

    def __init__(self, at: int, error: type[Exception] | None = None) -> None:
        self.at, self.error = at, error

    def setup(self, estimator: Any, context: Any) -> None:
        pass

    def teardown(self, estimator: Any, context: Any) -> None:
        pass

    def on_fit_task_begin(self, estimator: Any, context: Any) -> None:
        pass

    def on_fit_task_end(self, estimator: Any, context: Any) -> bool:
        if context.task_name != "epoch" or context.task_id + 1 < self.at:
            return False
        if self.error is not None:
            raise self.error("raised by a callback")
        return True


@callbacks_1_9
@quiet
def test_a_callback_may_stop_training_and_one_that_raises_changes_nothing() -> None:
    X, y = blobs(n=90)
    clf = TorchClassifier(max_iter=20, warm_start=True, **FAST_ES).set_callbacks(StopOrRaise(3)).fit(X, y)
    assert clf.n_iter_ == 3
    before, weights = dict(vars(clf)), [p.clone() for p in clf.module_.parameters()]
    clf.set_callbacks(StopOrRaise(2, RuntimeError))
    with pytest.raises(RuntimeError, match="raised by a callback"):
        clf.fit(X, y)
    assert all(vars(clf)[k] is v for k, v in before.items() if k != "_skl_callbacks")
    assert all(torch.equal(p, w) for p, w in zip(clf.module_.parameters(), weights, strict=True))


@callbacks_1_9
@quiet
def test_callbacks_reach_the_estimator_inside_a_pipeline_and_a_search() -> None:
    from sklearn.callback import ScoringMonitor

    X, y = blobs(n=90)
    monitor = ScoringMonitor(scoring="accuracy")
    pipe = make_pipeline(StandardScaler(), TorchClassifier(max_iter=4, **FAST_ES).set_callbacks(monitor))
    search = GridSearchCV(pipe, {"torchclassifier__alpha": [1e-4, 1e-2]}, cv=2).fit(X, y)
    (run,) = monitor.get_logs(select="all")  # one run: the search's, its fits within it
    tasks = [row["task_name"] for row in run.data if row["estimator_name"] == "TorchClassifier"]
    assert tasks.count("fit") == 5 and tasks.count("epoch") == 5 * 4  # 2 candidates x 2 folds, the refit
    assert search.best_estimator_[-1].n_iter_ == 4
    pytest.importorskip("rich", reason="ProgressBar needs rich: pip install -e '.[progress]'")
    from sklearn.callback import ProgressBar

    GridSearchCV(TorchClassifier(max_iter=3, **FAST_ES), {"alpha": [1e-4]}, cv=2).set_callbacks(
        ProgressBar()
    ).fit(X, y)
    make_pipeline(StandardScaler(), TorchClassifier(max_iter=3, **FAST_ES)).set_callbacks(ProgressBar()).fit(
        X, y
    )
