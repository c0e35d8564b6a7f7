"""scikit-learn estimators around any ``torch.nn.Module``: TorchClassifier and TorchRegressor.

Copy this file together with bridge.py into one directory, at your project's top level or inside a
package of yours; both work unchanged, typed. It needs torch, numpy and scikit-learn (whose own
dependency SciPy runs L-BFGS, as for MLP).

They take MLPClassifier's and MLPRegressor's parameters under the same names and meanings, so an MLP
parameter grid works unchanged, and the same random_state draws MLP's initial weights. They add
``module``, a callable ``(n_features_in, n_outputs) -> nn.Module`` that builds the network (the
estimator owns the loss and the output activation), ``device``, ``scoring`` for early stopping, and the
classifier's ``class_weight``. Every numpy/torch crossing goes through bridge.py; fit never touches the
caller's data, torch's or NumPy's global random state or default dtype (small fits run on one thread,
in the fitting thread only: see _threads_for), and records what it computed in one step at the end, so
a failed fit changes nothing; predict is pure and thread-safe. A fitted estimator saves as plain data
(pickle, joblib, skops), checked when it loads.

The file, top to bottom:

1. ``_TorchEstimator``: what both estimators share, and the fit story (``_train``): check the
   parameters -> validate the data -> seed -> build or continue the network (``_Start`` names the four
   ways a call starts) -> hold out a validation part -> train; then ``_fit`` records the result.
2. ``TorchClassifier`` and ``TorchRegressor``: what makes each one itself: its targets, its loss (as
   autograd differentiates it, and as MLP reports it), its scores, its predict methods.
3. Checking parameters: scikit-learn's check of MLP's constraints, then what they cannot say.
4. Data: validation, sample weights, the hold-out split, and batches of rows as a module takes them.
5. The network: the built-in MLP (with MLP's initial weights) or the caller's module, checked by a
   dry run.
6. Training: the optimizer, MLP's stopping bookkeeping, epochs of mini-batch steps, and L-BFGS.
7. Inference: chunked forward passes, outputs in the caller's array library.
8. The fitted state as plain data: what pickle, joblib and skops save, and its checked loading.
9. What fit leaves as it found it: random generators, thread counts, and where warnings point.
"""
# Settings a copy needs, since it cannot lean on this repository's pyproject.toml: scikit-learn ships no
# types (its imports are untyped), and the estimators subclass its mixins and use its available_if.
# mypy: disable-error-code="import-untyped"
# mypy: disallow-subclassing-any=False, disallow-untyped-decorators=False

from __future__ import annotations

import contextlib
import copy
import enum
import functools
import inspect
import itertools
import math
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, TypeVar, cast

import numpy as np
import scipy.optimize
import scipy.sparse
import torch
import torch.nn.functional as F
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, check_scoring, r2_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
from threadpoolctl import ThreadpoolController
from torch import nn
from torch.optim.adam import adam
from torch.optim.sgd import sgd

try:  # scikit-learn 1.9 and later: callbacks (set_callbacks), which Pipeline and searches pass down
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # before 1.9 the estimators fit as ever, and have no set_callbacks

    class CallbackSupportMixin:  # type: ignore[no-redef]  # a stand-in that adds nothing
        pass

    def with_callbacks(method: Any) -> Any:
        return method


_Method = TypeVar("_Method", bound=Callable[..., Any])


def _with_callbacks(method: _Method) -> _Method:
    """scikit-learn's with_callbacks, typed: its callbacks' teardown after the method, whatever happens."""
    return cast(_Method, with_callbacks(method))


# bridge.py sits beside this file: both at a project's top level, or both inside a package of yours.
if TYPE_CHECKING:
    # mypy reads only this branch. A star import it cannot resolve binds nothing, so whichever of the
    # two exists gives the real types, wherever the files sit.
    import numpy.typing as npt

    from bridge import *  # type: ignore[import-not-found, unused-ignore]  # noqa: F403

    from .bridge import *  # type: ignore[import-not-found, unused-ignore]  # noqa: F403

    def _device(device: torch.device | str | int) -> torch.device: ...  # bridge's, left out of __all__

    NDArray: TypeAlias = npt.NDArray[Any]  # bridge's alias, which its __all__ leaves out
elif __package__:  # inside a package: bridge is this module's sibling
    from .bridge import Device, NDArray, _device, numpy_dtype, to_numpy, to_tensor, torch_dtype
else:  # at the top level (a copy, this checkout, or pip's install): bridge is top-level too
    from bridge import Device, NDArray, _device, numpy_dtype, to_numpy, to_tensor, torch_dtype

__all__ = ["TorchClassifier", "TorchRegressor"]

ModuleFactory: TypeAlias = Callable[[int, int], nn.Module]
Output: TypeAlias = NDArray | torch.Tensor  # NumPy, or a tensor under array API dispatch
_Estimator = TypeVar("_Estimator", bound="_TorchEstimator")


# --- 1. what both estimators share, and the fit story -----------------------------------------------


class _TorchEstimator(CallbackSupportMixin, BaseEstimator):
    """What both estimators share: MLP's parameters, fit, and the hooks each estimator fills in."""

    # MLP's parameter constraints (the same from scikit-learn 1.6.1 to 1.9), and ours, in scikit-learn's
    # private but long-standing form, which BaseEstimator._validate_params checks as for MLP (its
    # test_check_param_validation passes); what they cannot say, _check_parameters does.
    _parameter_constraints: dict[str, list[Any]] = {
        **MLPClassifier._parameter_constraints,
        "scoring": [None, str, callable],
        "module": [None, callable],
        "device": [None, str, Integral, torch.device],
    }

    # What fit records, all at once (see _fit, and _FITTED below), besides feature_names_in_ and the
    # classifier's classes_: declared here for the type checker, saved as plain data by __getstate__.
    module_: nn.Module
    n_features_in_: int
    n_outputs_: int
    out_activation_: str
    loss_: float
    loss_curve_: list[float]
    best_loss_: float | None
    validation_scores_: list[float] | None
    best_validation_score_: float | None
    n_iter_: int
    t_: int
    _no_improvement_count: int  # MLP's name and meaning
    _optimizer: _Optimizer | None  # None after L-BFGS, which SciPy runs
    _rng: np.random.RandomState
    _split_state: dict[str, Any] | None
    _global_rng_states: list[torch.Tensor] | None
    _shape: dict[str, Any]
    _sparse_y: bool  # y was a sparse indicator matrix: predict returns one
    _fit_library: tuple[str, str] | None  # the array library and device of X, under array API dispatch

    # The parameters, MLP's and ours, which each estimator's __init__ stores (see there).
    hidden_layer_sizes: int | Sequence[int]
    activation: str
    solver: str
    alpha: float
    batch_size: int | str
    learning_rate: str
    learning_rate_init: float
    power_t: float
    max_iter: int
    shuffle: bool
    random_state: int | np.random.RandomState | None
    tol: float
    verbose: bool | int
    warm_start: bool
    momentum: float
    nesterovs_momentum: bool
    early_stopping: bool
    validation_fraction: float
    beta_1: float
    beta_2: float
    epsilon: float
    n_iter_no_change: int | float
    max_fun: int
    scoring: str | Callable[..., float] | None
    module: ModuleFactory | None
    device: Device

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR: sparse batches for the built-in MLP, dense for other modules
        tags.array_api_support = True  # tensor in, tensor out under array_api_dispatch
        return tags

    def fit(
        self: _Estimator,
        X: Any,
        y: Any,
        sample_weight: Any = None,
        *,
        X_val: Any = None,
        y_val: Any = None,
        sample_weight_val: Any = None,
    ) -> _Estimator:
        """Train the network on ``X`` (n_samples, n_features) and ``y``; returns ``self``.

        ``X_val`` and ``y_val`` (and ``sample_weight_val``) are a validation set of the caller's for early
        stopping, in place of ``validation_fraction`` of X, as in HistGradientBoosting's fit.
        """
        given = (X_val, y_val, sample_weight_val)
        return self._fit(
            X, y, sample_weight, partial=False, validation=None if all(v is None for v in given) else given
        )

    def __sklearn_is_fitted__(self) -> bool:
        return "module_" in vars(self)  # what check_is_fitted asks, without scanning every attribute

    def _has_partial_fit(self) -> bool:
        return self.solver != "lbfgs"  # as in MLP: L-BFGS needs the full batch

    @property
    def coefs_(self) -> list[NDArray]:
        """The built-in MLP's weight matrices, (fan_in, fan_out) as in MLP: read-only views of module_."""
        return [to_numpy(layer.weight).T for layer in self._linear_layers()]

    @property
    def intercepts_(self) -> list[NDArray]:
        """The built-in MLP's bias vectors, (fan_out,) each: read-only views of module_."""
        return [to_numpy(layer.bias) for layer in self._linear_layers()]

    def _linear_layers(self) -> list[nn.Linear]:
        if "module_" not in vars(self):
            raise AttributeError("coefs_ and intercepts_ are set by fit; call fit first")
        if self._shape["module"] is not None:
            raise AttributeError(
                "coefs_ and intercepts_ describe the built-in MLP; a custom module's weights are in "
                "module_ (e.g. module_.state_dict())"
            )
        return [layer for layer in self.module_.modules() if isinstance(layer, nn.Linear)]

    def set_params(self, **params: Any) -> Any:
        """Set parameters, as in scikit-learn. ``module__<name>=value`` binds a keyword argument of the
        module factory (``module`` becomes ``functools.partial(module, <name>=value)``), so a search
        can size a custom network: ``{"clf__module__width": [32, 64]}``."""
        bound = {
            k.removeprefix("module__"): params.pop(k) for k in [k for k in params if k.startswith("module__")]
        }
        if bound:
            factory = params.get("module", self.module)
            if factory is None:
                names = ", ".join(f"module__{k}" for k in bound)
                raise ValueError(
                    f"{names} binds arguments of the module factory, but module=None (the built-in MLP, "
                    f"sized by hidden_layer_sizes): set module= first"
                )
            params["module"] = functools.partial(factory, **bound)
        return super().set_params(**params)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters, as in scikit-learn; with ``deep``, also the keywords ``module__<name>`` bound by
        set_params, so that ``set_params(**get_params())`` is a round trip."""
        params: dict[str, Any] = super().get_params(deep=deep)
        if deep and isinstance(self.module, functools.partial):
            params.update({f"module__{k}": v for k, v in self.module.keywords.items()})
        return params

    def __getstate__(self) -> dict[str, Any]:
        """What pickle, joblib and skops save: parameters and fitted attributes as plain data (NumPy
        arrays, numbers, strings, lists, dicts), on no device; the estimator itself is left as it is."""
        state = dict(super().__getstate__())  # a copy: Python 3.11's default returns the live __dict__
        if "module_" in state:
            state.update(_plain_state(state))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load what __getstate__ saved, checked: a state that does not describe a model of this
        estimator is a ValueError naming what is wrong. The network loads onto the CPU."""
        state = dict(state)
        if any(name in state for name in _FITTED):
            state.update(_live_state(self, state))
            del state["_state_format"]
        super().__setstate__(state)

    # The fit story: check -> validate -> seed -> build or continue -> hold out -> train -> record.

    @_with_callbacks
    def _fit(
        self: _Estimator,
        X: Any,
        y: Any,
        sample_weight: Any,
        *,
        partial: bool,
        classes: Any = None,
        validation: tuple[Any, Any, Any] | None = None,
    ) -> _Estimator:
        # Training needs autograd, also inside a caller's no_grad() or inference_mode() block.
        with torch.inference_mode(False), torch.enable_grad():
            fitted = self._train(X, y, sample_weight, partial, classes, validation)
        # Fit's one write: everything it computed, at once; a call that raised has written nothing.
        if isinstance(self.random_state, np.random.RandomState):  # as MLP: each call that succeeds
            self.random_state.set_state(fitted["_rng"].get_state())  # advances a RandomState passed in
        for name in ("feature_names_in_", "classes_", *_FITTED):
            self.__dict__.pop(name, None)
        self.__dict__.update(fitted)
        return self

    def _train(
        self,
        X: Any,
        y: Any,
        sample_weight: Any,
        partial: bool,
        classes: Any,
        validation: tuple[Any, Any, Any] | None,
    ) -> dict[str, Any]:
        """Train a network on ``X`` and ``y``; return the fitted attributes, changing nothing."""
        start = _check_parameters(self, partial)
        X_, y_, device, seen = _validate_X_y(self, X, y, reset=not start.continues)
        # The network's dtype is X's, as in MLP (L-BFGS ends in float64: see _Training.lbfgs); targets and
        # weights follow it. Continued training casts X to the network's dtype, a batch at a time.
        dtype = numpy_dtype(next(self.module_.parameters()).dtype) if start.continues else X_.dtype
        w = _check_weights(sample_weight, X_.shape[0], dtype)
        Y, targets = self._encode_targets(y_, dtype, start, classes)
        w = self._weigh_classes(w, y_, dtype, targets.get("classes_"), start)
        # The model as fit will record it, for the steps below that read it: a view, so that nothing is
        # written on the estimator before training succeeds.
        model = _view(self, **seen, **targets)
        given = None if validation is None else _validation_set(model, *validation, dtype, start)
        rng = _random_state(self, start)
        cuda = [device] if device.type == "cuda" else []
        with _private_global_rng(self.module is not None, cuda):
            if start.continues:
                module = _resume(model, device, cuda)
            else:
                module = _build_module(model, X_, device, rng, cuda)
            # Callbacks see all of fit's rows, the validation split's too, as fit was given them.
            callbacks = _Callbacks(self, 1 if start.one_epoch else self.max_iter, X_, y_, {**seen, **targets})
            split = model._split_state if start.continues else None
            X_, Y, w, val, split = _hold_out(model, X_, Y, y_, w, rng, split, given)
            data = _rows(X_, Y, w, device, torch_dtype(dtype))
            if self.module is not None and not start.continues:  # a dry run, which also sizes lazy layers
                _check_outputs(model, module, data)
            optimizer = self._make_optimizer(module, device, resume=start is _Start.PARTIAL)
            training = _Training(model, module, optimizer, data, val, callbacks)
            if val is not None and self.scoring not in (None, "loss"):
                training.check_scorer()
            with _threads_for(training.step_rows() * sum(p.numel() for p in module.parameters())):
                trained = training.run(rng, start, _Progress.of(model, start, val is not None))
            callbacks.end(callbacks.root, module)
            global_states = _global_rng_states(cuda) if self.module is not None else None
        module.eval()  # predict is pure: it relies on eval mode and never toggles it
        return {
            **seen,
            **targets,
            **trained,
            "module_": module,
            "_optimizer": optimizer,
            "_shape": _shape_params(self),
            "_rng": rng,
            "_split_state": split,
            "_global_rng_states": global_states,
        }

    def _make_optimizer(self, module: nn.Module, device: torch.device, *, resume: bool) -> _Optimizer | None:
        """The optimizer for ``module``: as in MLP, partial_fit continues the fitted one (a copy of it)
        and every fit starts a new one. None for L-BFGS, which SciPy runs (see _Training.lbfgs)."""
        if self.solver == "lbfgs":
            return None
        params: list[torch.Tensor] = list(module.parameters())
        if resume and self._optimizer is not None:
            return self._optimizer.copy_for(params, device)
        lr = float(self.learning_rate_init)  # torch wants Python floats
        if self.solver == "sgd":
            nesterov = self.nesterovs_momentum and self.momentum > 0
            return _Optimizer(
                "sgd", params, lr, momentum=float(self.momentum), nesterov=nesterov, dampening=0.0
            )
        betas = {"beta1": float(self.beta_1), "beta2": float(self.beta_2)}
        return _Optimizer("adam", params, lr, **betas, eps=float(self.epsilon), amsgrad=False)

    # Hooks: what each estimator fills in.

    def _encode_targets(
        self, y: NDArray, dtype: np.dtype[Any], start: _Start, classes: Any
    ) -> tuple[NDArray, dict[str, Any]]:
        """Targets as the loss takes them, and what fit records of them: ``n_outputs_``,
        ``out_activation_`` (the output activation's name) and the classifier's ``classes_``."""
        raise NotImplementedError

    def _weigh_classes(
        self, w: NDArray | None, y: NDArray, dtype: np.dtype[Any], classes: NDArray | None, start: _Start
    ) -> NDArray | None:
        """The sample weights times the class weights (the classifier's class_weight)."""
        return w

    def _losses(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of each sample, (n,), or of each sample's output, (n, n_outputs): what training
        differentiates (MLP's gradient is this sum's)."""
        raise NotImplementedError

    def _shown(self, losses: torch.Tensor) -> torch.Tensor:
        """Each sample's loss as MLP reports it, (n,), from ``_losses``'s values."""
        raise NotImplementedError

    def _check_raw(self, raw: torch.Tensor) -> None:
        """Refuse outputs that cannot be raw scores for this estimator's loss (the classifier's)."""

    def _score_module(self, module: nn.Module, X: Any, y: NDArray, w: NDArray | None) -> float:
        """The validation score early stopping watches: accuracy or R^2."""
        raise NotImplementedError


class _Start(enum.Enum):
    """The four ways a call starts training."""

    FIT = "fit: a new network, up to max_iter epochs"
    WARM = "fit with warm_start, fitted: the fitted network, classes and split go on, a new optimizer"
    FIRST_PARTIAL = "partial_fit, unfitted: a new network, one epoch"
    PARTIAL = "partial_fit, fitted: the fitted network, optimizer and counts go on, one epoch"

    @property
    def continues(self) -> bool:
        """Whether training goes on from the fitted model."""
        return self in (_Start.WARM, _Start.PARTIAL)

    @property
    def one_epoch(self) -> bool:
        """Whether the call trains one epoch (partial_fit's) rather than up to max_iter."""
        return self in (_Start.FIRST_PARTIAL, _Start.PARTIAL)


# The names of what fit records: the attributes _TorchEstimator declares for it, named with scikit-learn's
# trailing underscore, or a leading one where private.
_FITTED = tuple(
    name
    for name in _TorchEstimator.__annotations__
    if name.endswith("_") or name.startswith("_") and name != "_parameter_constraints"
)


def _view(est: _Estimator, **fitted: Any) -> _Estimator:
    """A shallow view of ``est`` with ``fitted`` in place of its attributes, which it leaves alone."""
    view = type(est).__new__(type(est))
    view.__dict__.update(vars(est), **fitted)
    return view


# --- 2. the estimators ------------------------------------------------------------------------------


class TorchClassifier(ClassifierMixin, _TorchEstimator):
    """A classifier training any ``nn.Module`` on log-loss: binary, multiclass or multilabel.

    Parameters and fitted attributes are MLPClassifier's (see docs/estimators.md); ``module`` builds the
    network from ``(n_features_in, n_outputs)`` and returns raw scores (logits).
    """

    classes_: NDArray
    _parameter_constraints = {
        **_TorchEstimator._parameter_constraints,
        "class_weight": [None, dict, StrOptions({"balanced"})],
    }

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 1e-3,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        scoring: str | Callable[..., float] | None = None,
        module: ModuleFactory | None = None,
        device: Device = None,
        class_weight: dict[Any, float] | str | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.scoring = scoring
        self.module = module
        self.device = device
        self.class_weight = class_weight

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    @available_if(_TorchEstimator._has_partial_fit)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> TorchClassifier:
        """One epoch over ``X``, ``y``; ``classes`` (all labels) is required on the first call."""
        return self._fit(X, y, sample_weight, partial=True, classes=classes)

    def _encode_targets(
        self, y: NDArray, dtype: np.dtype[Any], start: _Start, classes: Any
    ) -> tuple[NDArray, dict[str, Any]]:
        check_classification_targets(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim == 2 and type_of_target(y) != "multilabel-indicator":
            raise ValueError(
                f"y is {type_of_target(y)} with {y.shape[1]} columns; a classifier takes one label per "
                f"sample or a multilabel indicator matrix of 0s and 1s (for several multiclass outputs, "
                f"wrap it in sklearn.multioutput.MultiOutputClassifier)"
            )
        multilabel, keep = y.ndim == 2, start.continues
        if start is _Start.FIRST_PARTIAL and classes is None and not multilabel:
            raise ValueError("the first call to partial_fit needs classes=, every label y may ever hold")
        if keep and multilabel != (self.out_activation_ == "logistic" and self.n_outputs_ > 1):
            fitted, now = ("multilabel", "single-label") if not multilabel else ("single-label", "multilabel")
            raise ValueError(
                f"the model was fitted on {fitted} y, now y is {now}; set warm_start=False to refit"
            )
        found = np.arange(y.shape[1]) if multilabel else np.unique(y)
        given = None if classes is None else np.unique(_host(classes))
        if keep and given is not None and not np.array_equal(given, self.classes_):
            raise ValueError(
                f"classes={given} differs from the classes {self.classes_} of the first call; "
                f"partial_fit keeps the classes it started with"
            )
        known = self.classes_ if keep else found if given is None else given
        unknown = np.setdiff1d(found, known)
        if unknown.size or start is _Start.WARM and not np.array_equal(found, known):
            raise ValueError(
                f"y has the labels {found}, but the model's classes are {known}; warm_start and "
                f"partial_fit keep the classes of the first fit (pass every label as classes=)"
            )
        if multilabel:
            Y, activation = y.astype(dtype), "logistic"
        elif len(known) <= 2:  # one logistic output, as in MLP; with a single class its target is always 1
            Y, activation = (y == known[-1]).astype(dtype)[:, None], "logistic"
        else:
            Y, activation = np.searchsorted(known, y), "softmax"
        n_outputs = Y.shape[1] if Y.ndim == 2 else len(known)
        return Y, {"classes_": known, "out_activation_": activation, "n_outputs_": n_outputs}

    def _weigh_classes(
        self, w: NDArray | None, y: NDArray, dtype: np.dtype[Any], classes: NDArray | None, start: _Start
    ) -> NDArray | None:
        cw, classes = self.class_weight, cast(NDArray, classes)
        if cw is None:
            return w
        if y.ndim == 2:
            raise ValueError("class_weight needs one label per sample; with multilabel y, pass sample_weight")
        if isinstance(cw, dict):
            bad = {k: v for k, v in cw.items() if not isinstance(v, Real) or not 0 <= v < np.inf}
            if bad:
                raise ValueError(f"class_weight factors must be finite numbers >= 0; got {bad}")
            unknown = [k for k in cw if k not in set(classes.tolist())]
            if unknown:
                raise ValueError(
                    f"class_weight names labels {unknown} that are not among the classes {classes}"
                )
            factors = np.array([cw.get(c, 1.0) for c in classes.tolist()])
        elif start.one_epoch:  # partial_fit's
            raise ValueError(
                "class_weight='balanced' needs every label's frequency, which one partial_fit batch "
                "does not have: pass a dict, e.g. dict(zip(classes, sklearn.utils.class_weight."
                "compute_class_weight('balanced', classes=classes, y=y_all)))"
            )
        else:  # 'balanced': n_samples / (n_classes * count) over the classes y holds (y_val may lack some)
            classes = np.unique(y)
            factors = compute_class_weight("balanced", classes=classes, y=y)
        per_sample: NDArray = factors[np.searchsorted(classes, y)].astype(dtype)
        weighted = per_sample if w is None else w * per_sample
        if not weighted.any():
            raise ValueError("every sample weighs 0 once class_weight is applied; raise some factors")
        return weighted

    def _losses(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.ndim == 1:  # class indices: softmax cross-entropy, (n,)
            return F.cross_entropy(raw, target, reduction="none")
        return F.binary_cross_entropy_with_logits(raw, target, reduction="none")  # logistic: (n, n_outputs)

    def _shown(self, losses: torch.Tensor) -> torch.Tensor:
        # MLP's log-loss clips each probability to [eps, 1 - eps] (its gradient does not): each
        # -log(p) to [-log(1 - eps), -log(eps)]. Logistic outputs' losses add up, as in MLP.
        eps = torch.finfo(losses.dtype).eps
        clipped = losses.clamp(-math.log1p(-eps), -math.log(eps))
        return clipped.sum(1) if clipped.ndim == 2 else clipped

    def _check_raw(self, raw: torch.Tensor) -> None:
        # Rows of probabilities, or of log-probabilities where each output is its own logistic, are raw
        # scores only by accident, which two rows of an untrained network do not meet. Trained through
        # the estimator's own softmax or sigmoid, such a module learns nothing, silently. (Softmax over
        # one column is 1; log-softmax over one is 0, which a zero-initialised layer gives too.)
        ones = torch.ones_like(raw[:, 0])
        probabilities = bool((raw >= 0).all()) and torch.allclose(raw.sum(1), ones, atol=1e-4)
        logs = bool((raw <= 0).all()) and torch.allclose(raw.logsumexp(1), 0 * ones, atol=1e-4)
        if probabilities or (self.out_activation_ == "logistic" and raw.shape[1] > 1 and logs):
            raise ValueError(
                "the module's outputs are probabilities or their logs (each row sums to 1): it seems to "
                "end in softmax or log-softmax; the estimator applies softmax (or a sigmoid per output) "
                "itself, so return raw scores (logits): drop the final nn.Softmax"
            )

    def _probabilities(self, raw: torch.Tensor) -> torch.Tensor:
        if self.out_activation_ == "softmax":
            return raw.softmax(1)
        p = raw.sigmoid()
        if self.n_outputs_ > 1:  # multilabel: one probability per label
            return p
        if len(self.classes_) == 1:  # a single class seen in training: it is certain
            return torch.ones_like(p)
        return torch.cat([1 - p, p], 1)

    def _most_probable(self, raw: torch.Tensor) -> torch.Tensor:
        """The index in ``classes_`` of each row's most probable class. Softmax keeps the order of a row's
        raw outputs while their largest is finite, so their argmax is the answer and no probabilities
        need computing; a row whose largest output is infinite or NaN takes the argmax of its (NaN)
        probabilities from predict_proba, as MLP does."""
        if self.out_activation_ != "softmax":
            return self._probabilities(raw).argmax(1)
        # max's indices are argmax's (the first of equal maxima), and its values say which rows need
        # the probabilities: on 10,000 x 10 and 2 CPU threads, 64 us against 200 for isfinite and argmax.
        largest, index = raw.max(1)
        finite = largest.isfinite()
        return index if bool(finite.all()) else torch.where(finite, index, self._probabilities(raw).argmax(1))

    def _score_module(self, module: nn.Module, X: Any, y: NDArray, w: NDArray | None) -> float:
        proba = to_numpy(_map_chunks(module, X, self._probabilities))
        if not np.isfinite(proba).all():
            return np.nan
        labels = (proba > 0.5).astype(y.dtype) if y.ndim == 2 else self.classes_[proba.argmax(1)]
        return float(accuracy_score(y, labels, sample_weight=w))

    def predict_proba(self, X: Any) -> Output:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self)
        _check_library(self, X, "predict_proba")
        return _to_caller(X, _forward(self, X, self._probabilities))

    def predict_log_proba(self, X: Any) -> Output:
        """Log of ``predict_proba``."""
        check_is_fitted(self)
        _check_library(self, X, "predict_log_proba")
        return _to_caller(X, _forward(self, X, lambda raw: self._probabilities(raw).log()))

    def predict(self, X: Any) -> Output:
        """Labels from ``classes_`` (an indicator matrix for multilabel): the argmax of predict_proba,
        taken over finite raw outputs under softmax, so where rounding makes two probabilities equal the
        larger raw output wins.

        Under array API dispatch a tensor ``X`` gets a tensor of labels, unless the labels are strings
        or other objects no tensor can hold: then, as without dispatch, a NumPy array.
        """
        check_is_fitted(self)
        _check_library(self, X, "predict")
        if self.out_activation_ == "logistic" and self.n_outputs_ > 1:
            indicator = _forward(self, X, lambda raw: self._probabilities(raw) > 0.5)
            indicator = indicator.to(torch_dtype(self.classes_.dtype))
            return _sparse(to_numpy(indicator)) if self._sparse_y else _to_caller(X, indicator)
        index = _forward(self, X, self._most_probable)
        if _tensor_out(X) and self.classes_.dtype.kind in "biuf":
            return _to_caller(X, to_tensor(self.classes_, device=index.device)[index])
        labels: NDArray = self.classes_[to_numpy(index)]
        return labels


class TorchRegressor(RegressorMixin, _TorchEstimator):
    """A regressor training any ``nn.Module`` on squared error or Poisson deviance, one or many outputs.

    Parameters and fitted attributes are MLPRegressor's (see docs/estimators.md); ``module`` builds the
    network from ``(n_features_in, n_outputs)`` and returns raw predictions (log-means for Poisson).
    """

    _parameter_constraints = {
        **_TorchEstimator._parameter_constraints,
        "loss": [StrOptions({"squared_error", "poisson"})],
    }

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        loss: str = "squared_error",
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 1e-3,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        scoring: str | Callable[..., float] | None = None,
        module: ModuleFactory | None = None,
        device: Device = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.scoring = scoring
        self.module = module
        self.device = device
        self.loss = loss

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @available_if(_TorchEstimator._has_partial_fit)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> TorchRegressor:
        """One epoch over ``X``, ``y``, continuing from the current weights."""
        return self._fit(X, y, sample_weight, partial=True)

    def _encode_targets(
        self, y: NDArray, dtype: np.dtype[Any], start: _Start, classes: Any
    ) -> tuple[NDArray, dict[str, Any]]:
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(f"loss='poisson' needs y >= 0; the smallest target is {y.min()}")
        Y = y.reshape(len(y), -1).astype(dtype, copy=False)  # (n_samples, n_outputs)
        if start.continues and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs; the fitted model has {self.n_outputs_}")
        activation = "exp" if self.loss == "poisson" else "identity"
        return Y, {"out_activation_": activation, "n_outputs_": Y.shape[1]}

    def _losses(self, raw: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.loss == "poisson":  # MLP's Poisson deviance / 2, raw being the log-mean
            return raw.exp() - target * raw + torch.xlogy(target, target) - target
        return (raw - target).square() * 0.5  # half the squared error

    def _shown(self, losses: torch.Tensor) -> torch.Tensor:
        # MLP reports the squared error averaged over the outputs, but steps on its sum's gradient;
        # Poisson deviances add up in both.
        return losses.sum(1) if self.loss == "poisson" else losses.mean(1)

    def _mean(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.exp() if self.loss == "poisson" else raw

    def _score_module(self, module: nn.Module, X: Any, y: NDArray, w: NDArray | None) -> float:
        pred = to_numpy(_map_chunks(module, X, self._mean))
        if not np.isfinite(pred).all():
            return np.nan
        return float(r2_score(y, pred.reshape(y.shape), sample_weight=w))

    def predict(self, X: Any) -> Output:
        """Predictions (n_samples,) for one output, (n_samples, n_outputs) for several."""
        check_is_fitted(self)
        _check_library(self, X, "predict")
        out = _forward(self, X, self._mean)
        return _to_caller(X, out.reshape(-1) if self.n_outputs_ == 1 else out)


# --- 3. checking parameters -------------------------------------------------------------------------

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}


def _check_parameters(est: _TorchEstimator, partial: bool) -> _Start:
    """Raise on a bad parameter of ``est``; return how this call (``partial``: partial_fit's) starts."""
    est._validate_params()  # scikit-learn's check of _parameter_constraints, with its messages
    _check_shape_params(est)
    if est.scoring is not None and est.scoring != "loss":
        check_scoring(est, scoring=est.scoring)  # an unknown name is a ValueError naming it
    if partial and est.early_stopping:
        raise ValueError(
            "partial_fit has no validation split to stop on: set early_stopping=False, or call fit"
        )
    fitted = hasattr(est, "module_")
    if partial:
        start = _Start.PARTIAL if fitted else _Start.FIRST_PARTIAL
    else:
        start = _Start.WARM if est.warm_start and fitted else _Start.FIT
    if start.continues and est._shape != _shape_params(est):
        raise ValueError(
            f"the fitted network was built from {est._shape}, now {_shape_params(est)}; "
            f"warm_start and partial_fit cannot change its shape: set warm_start=False to refit"
        )
    return start


def _check_shape_params(est: _TorchEstimator) -> None:
    """What scikit-learn's constraints on hidden_layer_sizes and module leave unchecked."""
    sizes = est.hidden_layer_sizes
    if isinstance(sizes, bool):  # an int to scikit-learn's constraint
        raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}")
    if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in _hidden_sizes(est)):
        raise ValueError(f"hidden_layer_sizes must be positive ints, got {sizes!r}")
    if isinstance(est.module, nn.Module):
        raise TypeError(
            f"module must build a new network from (n_features_in, n_outputs), not be one: pass "
            f"the class ({type(est.module).__name__}) or a function returning a module, got an instance "
            f"{est.module!r}"
        )
    if est.module is not None:
        _module_kwargs(est)  # raises where a size would be ignored


def _module_kwargs(est: _TorchEstimator) -> dict[str, Any]:
    """What the module factory is called with besides (n_features_in, n_outputs): MLP's
    hidden_layer_sizes and activation, where it takes arguments of those names, so that an MLP
    parameter grid sizes a custom network too. A value it would not see must be the default:
    nothing is silently ignored."""
    taken = _keywords_taken(cast(Callable[..., Any], est.module), ["hidden_layer_sizes", "activation"])
    kwargs: dict[str, Any] = {}
    for name, value, default in (
        ("hidden_layer_sizes", _hidden_sizes(est), [100]),
        ("activation", est.activation, "relu"),
    ):
        if name in taken:
            kwargs[name] = tuple(value) if name == "hidden_layer_sizes" else value
        elif value != default:
            raise ValueError(
                f"{name}={getattr(est, name)!r} would be ignored: module={est.module!r} takes no "
                f"{name} argument. Add one to it (e.g. def net(n_in, n_out, {name}=...)), leave "
                f"{name} at its default, or size the module with module__<argument>=..."
            )
    return kwargs


def _hidden_sizes(est: _TorchEstimator) -> list[int]:
    sizes = est.hidden_layer_sizes  # an int is one hidden layer, as in MLP
    return [int(sizes)] if isinstance(sizes, (int, np.integer)) else list(sizes)


def _shape_params(est: _TorchEstimator) -> dict[str, Any]:
    """The parameters the network's shape follows from."""
    if isinstance(est.module, functools.partial):  # set_params makes a new one each time: compare
        factory = est.module  # what it binds
        return {"module": (factory.func, factory.args, factory.keywords), **_module_kwargs(est)}
    if est.module is not None:
        return {"module": est.module, **_module_kwargs(est)}
    return {"module": None, "hidden_layer_sizes": _hidden_sizes(est), "activation": est.activation}


def _keywords_taken(factory: Callable[..., Any], names: Iterable[str]) -> set[str]:
    """Which of ``names`` ``factory`` takes by name (all of them, with ``**kwargs``) that no
    functools.partial has bound already."""
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # a callable whose signature Python cannot read
        return set()
    bound = set(factory.keywords) if isinstance(factory, functools.partial) else set()
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return set(names) - bound
    named = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return named & set(names) - bound


# --- 4. data: validation, sample weights, the hold-out split, batches -------------------------------


def _validate_X_y(
    est: _TorchEstimator, X: Any, y: Any, *, reset: bool
) -> tuple[Any, NDArray, torch.device, dict[str, Any]]:
    """X and y as training reads them, the device to train on, and what fit records of the data."""
    device = _resolve_device(est, X)
    library = _library(X)  # where X lives: predict under dispatch insists on it (_check_library)
    X, y = _host(X), _host(y)
    seen = _view(est) if reset else est  # validate_data records n_features_in_ (and names) on it
    X_, y_ = validate_data(
        seen,
        X,
        y,
        reset=reset,
        accept_sparse="csr",
        dtype=(np.float64, np.float32),  # kept: batches are cast to the network's dtype, if it differs
        multi_output=True,
        y_numeric=not is_classifier(est),
    )
    names = {k: v for k, v in vars(seen).items() if k in ("n_features_in_", "feature_names_in_")}
    # A sparse y (MultiLabelBinarizer(sparse_output=True)) is densified, as MLP does; the
    # classifier then predicts a sparse indicator matrix, as MLP does.
    sparse_y = scipy.sparse.issparse(y_)
    fitted = {**names, "_sparse_y": sparse_y, "_fit_library": library}
    return _canonical(X_), y_.toarray() if sparse_y else y_, device, fitted


def _resolve_device(est: _TorchEstimator, X: Any) -> torch.device:
    if est.device is None:
        return X.device if isinstance(X, torch.Tensor) and not X.is_cpu else torch.device("cpu")
    if not isinstance(est.device, (str, int, torch.device)) or isinstance(est.device, bool):
        raise TypeError(f"device must be None, a str, an int or a torch.device, got {est.device!r}")
    return _device(est.device)  # a ValueError for a device this machine or torch build lacks


def _check_weights(
    sample_weight: Any, n: int, dtype: np.dtype[Any], name: str = "sample_weight"
) -> NDArray | None:
    if sample_weight is None:
        return None
    if isinstance(sample_weight, Real):  # one weight for every sample, as MLP accepts
        sample_weight = np.full(n, sample_weight)
    w: NDArray = check_array(_host(sample_weight), ensure_2d=False, dtype=dtype, input_name=name)
    if w.shape != (n,):
        raise ValueError(f"{name} has shape {w.shape}; expected ({n},), one per sample")
    if (w < 0).any() or not w.any():
        raise ValueError(f"{name} must be >= 0 with at least one non-zero weight")
    return w


class _Held(NamedTuple):
    """The validation part of the data: ``X``, the targets as given (``y``) and as the loss takes them
    (``Y``), and the sample weights."""

    X: Any
    y: NDArray
    Y: NDArray
    w: NDArray | None


def _hold_out(
    est: _TorchEstimator,
    X: Any,
    Y: NDArray,
    y: NDArray,
    w: NDArray | None,
    rng: np.random.RandomState,
    split: dict[str, Any] | None,
    given: _Held | None,
) -> tuple[Any, NDArray, NDArray | None, _Held | None, dict[str, Any] | None]:
    """The training part ``(X, Y, w)`` and, with early stopping, the validation part of the data (the
    caller's own, ``given``, or a split of X), and the state of the random stream the split drew from.

    As in MLP, L-BFGS trains on all of it, and the first split takes MLP's draws from the random stream.
    Its state before the split (``split``, once fitted) is kept, so warm-started fits validate on the
    same rows (given the same data).
    """
    if not est.early_stopping or est.solver == "lbfgs" or given is not None:
        return X, Y, w, given, split
    if est.validation_fraction == 0:
        raise ValueError(
            "early_stopping needs a validation split, and validation_fraction=0 holds out none: "
            "set validation_fraction in (0, 1), e.g. 0.1, or early_stopping=False"
        )
    if split is None:  # the first fit that splits: MLP's draws, remembered
        split = rng.get_state(legacy=False)
        splitter = rng
    else:
        splitter = np.random.RandomState()
        splitter.set_state(split)
    stratify = y if is_classifier(est) and est.n_outputs_ == 1 else None  # as MLP: binary only
    parts = [X, Y, y] + ([] if w is None else [w])
    halves = train_test_split(
        *parts, test_size=float(est.validation_fraction), random_state=splitter, stratify=stratify
    )
    X_tr, X_val, Y_tr, Y_val, _, y_val = halves[:6]
    if X_val.shape[0] < 2:
        raise ValueError(
            f"early stopping needs at least 2 validation samples; validation_fraction="
            f"{est.validation_fraction} of {X.shape[0]} samples leaves {X_val.shape[0]}: raise "
            f"validation_fraction, add data, or set early_stopping=False"
        )
    w_tr, w_val = (halves[6], halves[7]) if w is not None else (None, None)
    for part, weights in (("training", w_tr), ("validation", w_val)):
        if weights is not None and not weights.any():
            raise ValueError(
                f"every sample of the {part} part weighs 0 after the early-stopping split "
                f"(validation_fraction={est.validation_fraction}): weigh more samples, or set "
                f"early_stopping=False"
            )
    return X_tr, Y_tr, w_tr, _Held(X_val, y_val, Y_val, w_val), split


def _validation_set(
    est: _TorchEstimator, X: Any, y: Any, sample_weight: Any, dtype: np.dtype[Any], start: _Start
) -> _Held:
    """fit's ``X_val``, ``y_val`` and ``sample_weight_val``, checked against the training data, with the
    targets as the loss takes them and the class weights applied, as HistGradientBoosting applies them."""
    if X is None or y is None:
        raise ValueError(
            "X_val and y_val come together: pass both (and sample_weight_val, if any), or neither"
        )
    if not est.early_stopping or est.solver == "lbfgs":
        raise ValueError(
            f"X_val and y_val are a validation set for early stopping, which is off here (early_stopping="
            f"{est.early_stopping}, solver={est.solver!r}): set early_stopping=True with adam or sgd"
        )
    try:
        X_, y_ = validate_data(
            est, _host(X), _host(y), reset=False, accept_sparse="csr", dtype=(np.float64, np.float32),
            multi_output=True, y_numeric=not is_classifier(est),
        )  # fmt: skip
    except ValueError as err:
        raise ValueError(f"X_val and y_val: {err}") from err
    y_ = y_.toarray() if scipy.sparse.issparse(y_) else y_
    if X_.shape[0] < 2:
        raise ValueError(f"X_val has {X_.shape[0]} row; early stopping needs at least 2")
    unseen: Any = np.setdiff1d(y_, est.classes_) if is_classifier(est) and y_.ndim == 1 else []
    if len(unseen):
        raise ValueError(f"y_val has the labels {unseen}, which y has not: the classes are {est.classes_}")
    try:
        Y, _ = est._encode_targets(y_, dtype, _Start.PARTIAL, None)  # as the fitted targets
    except ValueError as err:
        raise ValueError(f"y_val does not fit the training targets: {err}") from err
    if Y.ndim == 2 and Y.shape[1] != est.n_outputs_:
        raise ValueError(f"y_val has {Y.shape[1]} outputs, and y has {est.n_outputs_}")
    w = _check_weights(sample_weight, X_.shape[0], dtype, "sample_weight_val")
    w = est._weigh_classes(w, y_, dtype, getattr(est, "classes_", None), start)
    return _Held(_canonical(X_), y_, Y, w)


class _Rows(NamedTuple):
    """Training data as the loop reads it: ``X`` (a tensor, or CSR sliced a batch at a time), the
    targets and sample weights on the device, and the weights on the host too, where batch sums need no
    device sync."""

    X: Any
    Y: torch.Tensor
    w: NDArray | None
    w_t: torch.Tensor | None
    dtype: torch.dtype | None  # what batches of X are cast to: the network's dtype, where X's differs

    @property
    def n(self) -> int:
        return int(self.X.shape[0])


def _rows(X: Any, Y: NDArray, w: NDArray | None, device: torch.device, dtype: torch.dtype) -> _Rows:
    """The training data as the loop reads it. A dense X crosses to the device whole, on the CPU as a
    view of the caller's memory, unless that memory is read-only (joblib hands each fit of a parallel
    search a read-only memmap; np.load(mmap_mode="r") gives one): then X stays NumPy and each batch
    is copied as it is read, so memory stays O(batch) and nothing read-only becomes writable."""
    host = hasattr(X, "tocsr") or (device.type == "cpu" and not X.flags.writeable)
    w_t = None if w is None else to_tensor(w, device=device)
    cast = None if torch_dtype(X.dtype) == dtype else dtype
    return _Rows(X if host else to_tensor(X, device=device), to_tensor(Y, device=device), w, w_t, cast)


def _host(x: Any) -> Any:
    """Foreign arrays cross to NumPy through the bridge (a view on the CPU); anything else is left alone."""
    return to_numpy(x if isinstance(x, torch.Tensor) else to_tensor(x)) if _foreign(x) else x


def _canonical(X: Any) -> Any:
    """``X``, or for a sparse matrix with unsorted or duplicate indices, a canonical copy of it."""
    if getattr(X, "has_canonical_format", True):
        return X
    X = X.copy()
    X.sum_duplicates()  # sorts the indices too
    return X


class _CSRRows(NamedTuple):
    """Rows of a CSR matrix as tensors: SciPy's own arrays, shared where their dtypes allow."""

    indptr: torch.Tensor  # (n_rows + 1,)
    indices: torch.Tensor  # (nnz,), the column of each value
    values: torch.Tensor  # (nnz,)


def _batch(
    module: nn.Module, X: Any, rows: Any, device: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor | _CSRRows:
    """Rows of ``X`` on ``device`` (cast to ``dtype``) as ``module`` takes them.

    A module of the caller's gets the rows in memory of its own: it may write its input
    (``nn.ReLU(inplace=True)`` first), and X is the caller's. The built-in MLP, whose first layer only
    reads, gets views of X where the bridge allows them. Rows of a sparse matrix stay sparse: as
    _CSRRows for the built-in MLP, whose first layer multiplies them as they are, and as a COO tensor
    for a module that says it takes one (``accepts_sparse = True``). Any other module gets them
    densified, and only them.
    """
    own = isinstance(rows, slice) and not isinstance(module, _MLP)  # a slice would be a view of X
    if isinstance(X, torch.Tensor):
        part = _take(X, rows)
        return part if dtype is None and not own else part.to(dtype=dtype, copy=own)
    if isinstance(rows, torch.Tensor):
        rows = to_numpy(rows.cpu())
    if isinstance(module, _MLP) and getattr(X, "format", None) == "csr":
        indptr, columns, data = _csr_parts(X, rows)
        wide = torch.int64 in (torch_dtype(indptr.dtype), torch_dtype(columns.dtype))
        index = torch.int64 if wide else torch.int32  # embedding_bag wants one index dtype for both
        return _CSRRows(
            to_tensor(indptr, dtype=index, device=device),
            to_tensor(columns, dtype=index, device=device),
            to_tensor(data, dtype=dtype, device=device),
        )
    part = X[rows]
    if not hasattr(part, "tocoo"):
        return to_tensor(part, dtype=dtype, device=device, copy=True if own else None)
    if not getattr(module, "accepts_sparse", False):
        return to_tensor(part.toarray(), dtype=dtype, device=device)
    coo = part.tocoo()  # rows of a canonical CSR matrix: sorted, no duplicates, hence coalesced
    indices = to_tensor(np.vstack([coo.row, coo.col]), dtype=torch.int64, device=device)
    values = to_tensor(coo.data, dtype=dtype, device=device)
    # Invariants hold by construction (validated CSR); saying so explicitly is how torch asks us to
    # opt out of its per-tensor checks instead of warning.
    return torch.sparse_coo_tensor(indices, values, coo.shape, check_invariants=False, is_coalesced=True)


def _csr_parts(X: Any, rows: Any) -> tuple[NDArray, NDArray, NDArray]:
    """indptr (from 0), indices and data of ``rows`` of the CSR matrix ``X``. A run of rows (every
    inference chunk) is views on X's own arrays: scipy's X[rows] would copy them, a large part of
    what each chunk adds to predict's peak memory."""
    if not isinstance(rows, slice) or rows.step not in (None, 1):
        part = X[rows]
        return part.indptr, part.indices, part.data
    start, stop, _ = rows.indices(X.shape[0])
    indptr = X.indptr[start : stop + 1]
    first, last = int(indptr[0]), int(indptr[-1])
    return indptr - first, X.indices[first:last], X.data[first:last]


def _take(t: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """Rows of ``t``: a view for a slice, one gather for an index tensor (cheaper than t[rows])."""
    return t[rows] if isinstance(rows, slice) else t.index_select(0, rows)


_CHUNK = 16384  # rows per inference step: bounds predict's memory whatever n_samples is
_SPARSE_CHUNK = 256  # for sparse X, whose rows' activations outweigh them: see _chunk_rows
_SPARSE_PREDICT_CHUNK = 128  # smaller in inference, where the chunk's activations set the peak memory


def _chunk_rows(module: nn.Module, X: Any, *, inference: bool = False) -> int:
    """Rows per chunk: _CHUNK for dense X. A sparse X is small next to the activations of its rows, so
    its chunks are _SPARSE_PREDICT_CHUNK rows in inference and _SPARSE_CHUNK in L-BFGS's full-batch loss
    (whose backward adds a dense weight gradient per chunk: fewer chunks, less time), and fewer when
    densified, near 16 MiB a chunk."""
    if not hasattr(X, "tocsr"):
        return _CHUNK
    if getattr(module, "accepts_sparse", False):
        return _SPARSE_PREDICT_CHUNK if inference else _SPARSE_CHUNK
    return max(1, min(_SPARSE_CHUNK, 2**22 // max(int(X.shape[1]), 1)))


# --- 5. the network: the built-in MLP, or the caller's module ---------------------------------------


class _MLP(nn.Sequential):
    """The built-in network: nn.Linear layers with MLP's activation between them."""

    accepts_sparse = True  # batches of a sparse X arrive as _CSRRows (see _batch)

    def forward(self, x: torch.Tensor | _CSRRows) -> torch.Tensor:
        first, *rest = self
        h: torch.Tensor = _sparse_linear(cast(nn.Linear, first), x) if isinstance(x, _CSRRows) else first(x)
        for layer in rest:
            h = layer(h)
        return h


def _sparse_linear(layer: nn.Linear, x: _CSRRows) -> torch.Tensor:
    """``layer`` applied to sparse rows: for each row, the weight rows of its columns scaled by its
    values and summed, which is x @ W + b without densifying x or copying its indices (W =
    ``layer.weight.t()`` is the (fan_in, fan_out) matrix MLP keeps, stored in that order)."""
    W = layer.weight.t()
    out = F.embedding_bag(
        x.indices, W, x.indptr, mode="sum", per_sample_weights=x.values, include_last_offset=True
    )
    return out.add_(layer.bias)  # in place: one activation-sized buffer less; backward never reads out


def _build_module(
    est: _TorchEstimator, X: Any, device: torch.device, rng: np.random.RandomState, cuda: list[torch.device]
) -> nn.Module:
    """A new network for ``X``, in its dtype: the caller's module, or the built-in MLP."""
    n_in, dtype = X.shape[1], torch_dtype(X.dtype)
    if est.module is not None:  # the module's own draws come from the (forked) global streams
        _seed_global_generators(int(rng.randint(2**31 - 1)), cuda)
        return _call_factory(_shape_params(est), n_in, est.n_outputs_).to(device=device, dtype=dtype)
    sizes = [n_in, *_hidden_sizes(est), est.n_outputs_]
    coefs, intercepts = [], []
    for fan_in, fan_out in itertools.pairwise(sizes):
        # MLP's Glorot-uniform initialisation: its draws, in its order, in float64 for every dtype.
        bound = ((2.0 if est.activation == "logistic" else 6.0) / (fan_in + fan_out)) ** 0.5
        coefs.append(rng.uniform(-bound, bound, (fan_in, fan_out)))
        intercepts.append(rng.uniform(-bound, bound, fan_out))
    return _mlp(coefs, intercepts, est.activation, dtype, device)


def _call_factory(shape: dict[str, Any], n_in: int, n_out: int) -> nn.Module:
    """A new module from the factory and the arguments that ``shape`` records (see _shape_params)."""
    factory = shape["module"]
    if isinstance(factory, tuple):  # a functools.partial, taken apart
        func, args, keywords = factory
        factory = functools.partial(func, *args, **keywords)
    module = factory(n_in, n_out, **{k: v for k, v in shape.items() if k != "module"})
    if not isinstance(module, nn.Module):
        raise TypeError(f"module({n_in}, {n_out}) returned {type(module).__name__}, not an nn.Module")
    tensors = itertools.chain(module.named_parameters(), module.named_buffers())
    complex_ = [f"{name} ({t.dtype})" for name, t in tensors if t.is_complex()]
    if complex_:  # casting them to X's dtype would drop their imaginary parts: another model
        raise TypeError(
            f"the module has complex tensors, {', '.join(complex_)}; the estimators train real networks "
            f"in X's dtype: hold each complex weight as two real ones (e.g. torch.view_as_complex of a "
            f"real (..., 2) parameter inside forward)"
        )
    return module


def _mlp(
    coefs: list[NDArray], intercepts: list[NDArray], activation: str, dtype: torch.dtype, device: torch.device
) -> _MLP:
    """The built-in network with MLP's weights ``coefs`` (fan_in, fan_out) and ``intercepts``."""
    layers: list[nn.Module] = []
    for coef, intercept in zip(coefs, intercepts, strict=True):
        fan_in, fan_out = np.shape(coef)
        layer = nn.Linear(fan_in, fan_out, device="meta")
        # Stored as MLP stores coefs_, (fan_in, fan_out) row-major; nn.Linear's weight is its
        # transpose, so x @ weight.t() reads memory in order (a sparse batch's product is about 4x
        # faster than through a transposed copy, and the gradient needs no transposing copy).
        layer.weight = nn.Parameter(to_tensor(coef, dtype=dtype, device=device, copy=True).t())
        layer.bias = nn.Parameter(to_tensor(intercept, dtype=dtype, device=device, copy=True))
        layers += [layer, _ACTIVATIONS[activation]()]
    return _MLP(*layers[:-1])  # no activation after the output layer


def _resume(est: _TorchEstimator, device: torch.device, cuda: list[torch.device]) -> nn.Module:
    """A copy of the fitted module to train on: module_ stays untouched until the fit succeeds, so
    a failed call changes nothing."""
    if est._global_rng_states is not None:  # a custom module's stream continues too
        _set_global_rng_states(est._global_rng_states, cuda)
    return copy.deepcopy(est.module_).to(device)


def _check_outputs(est: _TorchEstimator, module: nn.Module, data: _Rows) -> None:
    """The module must map (batch, n_features_in) to (batch, n_outputs); checked on two rows in
    eval mode without gradients, so no layer updates its statistics or draws a random number."""
    if not any(p.requires_grad for p in module.parameters()):
        raise ValueError(
            f"{type(module).__name__} has no parameter that requires grad, so fit has nothing to train: "
            f"give it a layer with weights (e.g. nn.Linear), or unfreeze one (requires_grad_(True))"
        )
    module.eval()
    with torch.no_grad():
        raw = module(_batch(module, data.X, slice(0, 2), data.Y.device, data.dtype))
    expected = (min(2, data.n), est.n_outputs_)
    if not isinstance(raw, torch.Tensor):
        raise TypeError(f"the module returned {type(raw).__name__}; it must return one tensor")
    if tuple(raw.shape) != expected:
        raise ValueError(
            f"the module maps {expected[0]} rows to shape {tuple(raw.shape)}; it must return raw "
            f"outputs of shape (batch, n_outputs) = {expected}, e.g. end with nn.Linear(..., "
            f"{est.n_outputs_})"
        )
    est._check_raw(raw)


# --- 6. training: the optimizer, MLP's bookkeeping, epochs of mini-batch steps, L-BFGS -------------


class _Optimizer:
    """MLP's 'adam', or 'sgd' with momentum, on ``params``. It keeps its own state and steps through
    torch's documented functional forms, torch.optim.adam.adam and torch.optim.sgd.sgd, the fused
    kernels torch.optim.Adam and SGD run, without their per-step wrapper (hooks, profiling, state
    look-ups): docs/performance.md times both steps."""

    def __init__(self, solver: str, params: list[torch.Tensor], learning_rate: float, **options: Any) -> None:
        self.solver, self.params = solver, params
        self._learning_rate = learning_rate
        fused = all(p.is_floating_point() for p in params)  # one kernel per step
        self.options = {**options, "fused": fused, "weight_decay": 0.0, "maximize": False}  # L2: by hand
        if solver == "adam":  # two moments from zero, and step counts, float32 on each parameter's device
            self.state = [[torch.zeros_like(p) for p in params] for _ in range(2)]
            self.state.append([p.new_zeros((), dtype=torch.float32) for p in params])
            self.options["has_complex"] = any(p.is_complex() for p in params)
        else:  # velocities from -0.0, the zero that adds exactly (x + -0.0 is x, a zero's sign too), so
            # that the first step is torch's, which copies the gradient (to the bit for real numbers)
            self.state = [[torch.full_like(p, -0.0) for p in params]]

    @property
    def learning_rate(self) -> float:
        """The rate of the next step (MLP's optimizers' name for it)."""
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, rate: float) -> None:
        # MLP's SGD velocity carries the rates it was built with; torch's buffer holds gradients that
        # the current rate scales. Rescaling the buffer by old / new keeps MLP's velocity when the rate
        # changes ('invscaling', 'adaptive'), and nothing changes while it stays constant.
        if self.solver == "sgd" and rate != self._learning_rate:
            with torch.no_grad():
                for velocity in self.state[0]:
                    velocity.mul_(self._learning_rate / rate)
        self._learning_rate = rate

    def zero_grad(self) -> None:
        """torch.optim's zero_grad(set_to_none=True), without its per-call profiling hooks."""
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        """Update every parameter that has a gradient; as in torch.optim, the others and their state
        stay as they are."""
        have = [i for i, p in enumerate(self.params) if p.grad is not None]
        params = [self.params[i] for i in have]
        grads = [cast(torch.Tensor, p.grad) for p in params]
        state = [[tensors[i] for i in have] for tensors in self.state]
        # Sparse gradients (nn.Embedding(sparse=True)) step as they are only in plain SGD: Adam's moments
        # and SGD's velocities are dense, so every row moves anyway. No fused kernel takes them.
        sparse = any(g.is_sparse for g in grads)
        if sparse and (self.solver == "adam" or self.options["momentum"]):
            grads, sparse = [g.to_dense() for g in grads], False
        options = {**self.options, "fused": False} if sparse else self.options
        with torch.no_grad():
            if self.solver == "adam":
                exp_avgs, exp_avg_sqs, steps = state  # [] below: no AMSGrad maxima
                adam(params, grads, exp_avgs, exp_avg_sqs, [], steps, lr=self.learning_rate, **options)
            else:
                velocities = cast(list[torch.Tensor | None], state[0])  # the type sgd() declares
                sgd(params, grads, velocities, sparse, lr=self.learning_rate, **options)

    SETTINGS = {"adam": ("beta1", "beta2", "eps", "amsgrad"), "sgd": ("momentum", "nesterov", "dampening")}

    def plain(self) -> dict[str, Any]:
        """This optimizer as plain data: its solver's settings, and its state copied to NumPy."""
        options = {name: self.options[name] for name in self.SETTINGS[self.solver]}
        state = [[to_numpy(t, copy=True) for t in tensors] for tensors in self.state]
        return {
            "solver": self.solver,
            "learning_rate": self.learning_rate,
            "options": options,
            "state": state,
        }

    @classmethod
    def from_plain(cls, plain: dict[str, Any], params: list[torch.Tensor]) -> _Optimizer:
        """The optimizer that ``plain`` describes, stepping ``params``; its state must fit them."""
        solver, options = plain["solver"], plain["options"]
        if set(options) != set(cls.SETTINGS.get(solver, ())):
            raise ValueError(
                f"the saved optimizer is {solver!r} with {sorted(options)}; expected {cls.SETTINGS}"
            )
        optimizer = cls(solver, params, float(plain["learning_rate"]), **options)
        state = [[to_tensor(a) for a in arrays] for arrays in plain["state"]]
        expected = [[(t.shape, t.dtype) for t in tensors] for tensors in optimizer.state]
        if [[(t.shape, t.dtype) for t in tensors] for tensors in state] != expected:
            raise ValueError(
                f"the saved {solver} state does not fit the network's parameters: expected (shape, dtype) "
                f"{expected}"
            )
        # Into the new state's memory, laid out as each parameter is: a fused step pairs the two element
        # by element in memory order (the built-in MLP's weights are transposed views).
        for fresh, saved in zip(optimizer.state, state, strict=True):
            for t, values in zip(fresh, saved, strict=True):
                t.copy_(values)
        return optimizer

    def copy_for(self, params: list[torch.Tensor], device: torch.device | str) -> _Optimizer:
        """A copy of this optimizer that steps ``params`` (copies of its parameters, in their order),
        its state copied to ``device``."""
        twin = copy.copy(self)
        twin.params = params
        twin.state = [[t.to(device, copy=True) for t in tensors] for tensors in self.state]
        return twin


@dataclass
class _Progress:
    """MLP's bookkeeping across epochs (and warm starts), with its stopping rule: the training loss
    decides, or with early stopping the validation score."""

    early_stopping: bool
    loss_curve: list[float] = field(default_factory=list)
    validation_scores: list[float] = field(default_factory=list)
    best_loss: float = np.inf
    best_score: float = -np.inf
    stalled: int = 0  # epochs in a row without a tol improvement: MLP's _no_improvement_count
    n_iter: int = 0  # epochs (L-BFGS iterations), and samples seen: MLP's n_iter_ and t_
    t: int = 0

    @classmethod
    def of(cls, est: _TorchEstimator, start: _Start, early_stopping: bool) -> _Progress:
        """New, or under warm start and partial_fit the fitted model's, continued."""
        if not start.continues:
            return cls(early_stopping)
        best_score = est.best_validation_score_
        return cls(
            early_stopping,
            list(est.loss_curve_),
            list(est.validation_scores_ or []) if early_stopping else [],
            best_loss=np.inf if est.best_loss_ is None else est.best_loss_,
            best_score=-np.inf if best_score is None or not early_stopping else best_score,
            stalled=est._no_improvement_count,
            n_iter=est.n_iter_ if start is _Start.PARTIAL else 0,  # a fit counts its own epochs
            t=est.t_,
        )

    def add_loss(self, loss: float, tol: float) -> None:
        self.loss_curve.append(loss)
        if not self.early_stopping:
            self.stalled = self.stalled + 1 if loss > self.best_loss - tol else 0
            self.best_loss = min(self.best_loss, loss)

    def add_score(self, score: float, tol: float) -> bool:
        """Record a validation score; True when it is the best so far (early stopping keeps its weights)."""
        self.validation_scores.append(score)
        self.stalled = 0 if score >= self.best_score + tol else self.stalled + 1  # NaN never improves
        if score > self.best_score:
            self.best_score = score
            return True
        return False

    def attributes(self) -> dict[str, Any]:
        """The fitted attributes MLP derives from this bookkeeping."""
        early = self.early_stopping
        return {
            "loss_": self.loss_curve[-1],
            "loss_curve_": self.loss_curve,
            "best_loss_": None if early else self.best_loss,
            "validation_scores_": self.validation_scores if early else None,
            "best_validation_score_": self.best_score if early else None,
            "_no_improvement_count": self.stalled,
            "n_iter_": self.n_iter,
            "t_": self.t,
        }


class _Losses(NamedTuple):
    """The losses of some rows, as ``_losses`` returns them ((n,), or (n, n_outputs)), and the rows'
    sample weights (n,), or None."""

    losses: torch.Tensor
    w: torch.Tensor | None

    def total(self) -> torch.Tensor:
        """The weighted sum of the losses."""
        if self.w is None:
            return self.losses.sum()
        total = self.w @ self.losses
        return total if total.ndim == 0 else total.sum()

    def detach(self) -> _Losses:
        return _Losses(self.losses.detach(), self.w)


class _Callbacks:
    """scikit-learn's callbacks (1.9 and later, set by set_callbacks or passed down by a Pipeline or a
    search), told of fit as a task whose subtasks are epochs, or L-BFGS iterations. A callback that
    predicts gets the estimator as fit would record it at that point (``fitted`` and the module then).
    Without callback support every call does nothing."""

    def __init__(self, est: _TorchEstimator, steps: int, X: Any, y: Any, fitted: dict[str, Any]) -> None:
        start = getattr(est, "_init_callback_context", None)  # sets what with_callbacks removes
        self.root = None if start is None else start(max_subtasks=steps)
        self.est, self.data, self.fitted = est, {"X": X, "y": y}, fitted
        if self.root is not None:
            self.root.call_on_fit_task_begin(estimator=est, **self.data)

    def begin(self) -> Any:
        """Begin a step (an epoch, an iteration): its context, or None."""
        if self.root is None:
            return None
        step = self.root.subcontext(task_name="epoch")
        step.call_on_fit_task_begin(estimator=self.est, **self.data)
        return step

    def end(self, task: Any, module: nn.Module) -> bool:
        """End ``task`` (a step, or fit itself); whether a callback asks training to stop."""
        if task is None:
            return False
        model = lambda: {**self.fitted, "module_": copy.deepcopy(module).eval()}  # noqa: E731  # lazily
        return bool(
            task.call_on_fit_task_end(estimator=self.est, **self.data, reconstruction_attributes=model)
        )


@dataclass
class _Training:
    """One fit's training of ``module`` on ``data`` (and ``val``, with early stopping): epochs of
    mini-batch steps with ``optimizer``, or L-BFGS (no optimizer). ``model`` is the estimator as fit
    will record it (a view: see _TorchEstimator._train), for its parameters, its loss and its scores."""

    model: _TorchEstimator
    module: nn.Module
    optimizer: _Optimizer | None
    data: _Rows
    val: _Held | None
    callbacks: _Callbacks

    def run(self, rng: np.random.RandomState, start: _Start, progress: _Progress) -> dict[str, Any]:
        """Train the module in place, on from ``progress``; return the fitted attributes that describe
        the training."""
        model, module, optimizer, data, val = self.model, self.module, self.optimizer, self.data, self.val
        module.train()
        if optimizer is None:
            return self.lbfgs()
        one_epoch, first = start.one_epoch, progress.n_iter
        # Under warm start the current weights are the best validated so far.
        best = copy.deepcopy(module.state_dict()) if start.continues and val is not None else None
        try:
            for _ in range(1 if one_epoch else model.max_iter):
                epoch = self.callbacks.begin()
                # MLP's draws; a fresh permutation each epoch, so that partial_fit repeats fit exactly.
                order = rng.permutation(data.n) if model.shuffle else None
                loss = self.epoch(optimizer, order)
                progress.n_iter, progress.t = progress.n_iter + 1, progress.t + data.n
                if model.verbose:
                    print(f"Iteration {progress.n_iter}, loss = {loss:.8f}")
                progress.add_loss(loss, model.tol)
                if val is None:
                    self.check_finite(loss, progress.n_iter)
                else:
                    improved = progress.add_score(self.validation_score(), model.tol)
                    if model.verbose:
                        print(f"Validation score: {progress.validation_scores[-1]:f}")
                    if improved:
                        best = copy.deepcopy(module.state_dict())
                self.schedule(optimizer, progress.t)
                if self.callbacks.end(epoch, module):  # a callback asks training to stop
                    break
                if progress.stalled > model.n_iter_no_change:
                    if self.stop_or_slow_down(optimizer):
                        break
                    progress.stalled = 0
            else:
                if not one_epoch:
                    _warn_not_converged(f"max_iter={model.max_iter} epochs ended training")
        except KeyboardInterrupt:
            # As MLP: Ctrl-C in a notebook ends training and keeps what it trained, epochs whole or
            # not. Before the first epoch ends there is nothing to record: the fit fails as any other.
            if progress.n_iter == first:
                raise
            trained = progress.n_iter - first
            _warn(f"training was interrupted (KeyboardInterrupt) after {trained} epochs", UserWarning)
        if val is not None:
            if best is None:
                raise ValueError("no validation score was finite: scale the data or lower learning_rate_init")
            module.load_state_dict(best)  # early stopping keeps the best validated weights
        return progress.attributes()

    def step_rows(self) -> int:
        """Rows a training step computes: a batch, or for L-BFGS a chunk of the full batch."""
        if self.model.solver == "lbfgs":
            return min(_chunk_rows(self.module, self.data.X), self.data.n)
        return min(200 if self.model.batch_size == "auto" else int(self.model.batch_size), self.data.n)

    def epoch(self, optimizer: _Optimizer, order: NDArray | None) -> float:
        """One pass over the rows (in ``order``, if given) in mini-batches, one step each; the epoch's
        loss as MLP reports it."""
        data = self.data
        n, batch = data.n, self.step_rows()
        starts = range(0, n, batch)
        # Each batch's loss is a weighted mean: divided by its weight (MLP's sw_sum), computed here
        # for the whole epoch at once, on the host, so no step waits on the device.
        weights = (
            [min(batch, n - start) for start in starts]
            if data.w is None
            else np.add.reduceat(data.w if order is None else data.w[order], starts).tolist()
        )
        index = None if order is None else to_tensor(order, device=data.Y.device)
        matrices = _weight_matrices(optimizer.params)
        losses = []
        for start, weight in zip(starts, weights, strict=True):
            if weight == 0:  # every sample weighs nothing: there is nothing to learn from this batch
                continue
            rows = slice(start, start + batch) if index is None else index[start : start + batch]
            losses.append(self.step(optimizer, matrices, rows, weight))
        # As MLP reports it: every batch adds the L2 term (here with the epoch's final weights).
        penalty = self.penalty(matrices) * len(losses)
        return (self.reported(losses) + penalty) / sum(weights)

    def step(
        self, optimizer: _Optimizer, matrices: list[torch.Tensor], rows: slice | torch.Tensor, weight: float
    ) -> _Losses:
        """One optimizer step on ``rows``; returns their losses, detached."""
        losses = self.batch_loss(rows)
        optimizer.zero_grad()
        torch.autograd.backward(losses.total() / weight)
        self.add_penalty_gradient(matrices, weight)
        optimizer.step()
        return losses.detach()

    def batch_loss(self, rows: slice | torch.Tensor) -> _Losses:
        """The losses of ``rows``, with their sample weights."""
        data = self.data
        raw = self.module(_batch(self.module, data.X, rows, data.Y.device, data.dtype))
        return _Losses(
            self.model._losses(raw, _take(data.Y, rows)), None if data.w_t is None else _take(data.w_t, rows)
        )

    def reported(self, parts: list[_Losses]) -> float:
        """The (weighted) sum of the losses in ``parts`` as MLP reports them (see _shown)."""
        shown = self.model._shown(torch.cat([part.losses for part in parts]))
        weights = None if parts[0].w is None else torch.cat([cast(torch.Tensor, part.w) for part in parts])
        return float(_Losses(shown, weights).total())

    # MLP's L2 term, 0.5 * alpha * ||W||^2 summed over the weight matrices, is added by hand, outside
    # autograd: its value to the loss, its gradient to the matrices' gradients. One norm per matrix
    # takes about 5 us of an iris epoch, where square(), sum() and the adds took 38.

    def penalty(self, matrices: list[torch.Tensor]) -> float:
        with torch.no_grad():
            norms = [float(torch.linalg.vector_norm(W)) for W in matrices]
        # n * n overflows to inf; n ** 2 would raise
        return 0.5 * self.model.alpha * sum(n * n for n in norms)

    def add_penalty_gradient(self, matrices: list[torch.Tensor], weight: float) -> None:
        """Add alpha * W / ``weight`` to the gradient of each matrix W that has one."""
        alpha = self.model.alpha
        if alpha == 0:
            return
        with torch.no_grad():
            for W in matrices:
                if W.grad is None:
                    continue
                if W.grad.is_sparse:  # nn.Embedding(sparse=True): the L2 term reaches every row
                    W.grad = W.grad.to_dense()
                W.grad.add_(W, alpha=alpha / weight)

    def validation_score(self) -> float:
        self.module.eval()
        with np.errstate(all="ignore"):  # diverged predictions score NaN, as in MLP
            score = self.watched_score()
        self.module.train()
        return score if np.isfinite(score) else np.nan

    def watched_score(self) -> float:
        """What early stopping watches (higher is better): MLP's score for scoring=None (accuracy or
        R^2), minus the loss for 'loss', else the scorer's value."""
        model, module, val, device = self.model, self.module, cast(_Held, self.val), self.data.Y.device
        if model.scoring is None:
            return model._score_module(module, val.X, val.y, val.w)
        if model.scoring == "loss":
            raw = _map_chunks(module, val.X, lambda raw: raw)
            w = None if val.w is None else to_tensor(val.w, device=device)
            total = len(val.y) if val.w is None else float(val.w.sum())
            return -self.reported([_Losses(model._losses(raw, to_tensor(val.Y, device=device)), w)]) / total
        # A scorer calls predict on an estimator: a shallow view of this one, predicting with module
        # from the split, which is NumPy (so the view takes NumPy under array API dispatch too).
        view = _view(model, module_=module, _fit_library=None)
        view.__dict__.pop("feature_names_in_", None)  # no names to check either
        scorer = check_scoring(model, scoring=model.scoring)
        # A plain scorer(estimator, X, y) is called as it is written: without weights.
        weighted = val.w is not None and bool(_keywords_taken(scorer, ["sample_weight"]))
        try:
            return float(scorer(view, val.X, val.y, **({"sample_weight": val.w} if weighted else {})))
        except (AttributeError, TypeError, ValueError) as err:
            raise ValueError(f"scoring={model.scoring!r} cannot score {type(model).__name__}: {err}") from err

    def check_scorer(self) -> None:
        """A scorer that cannot score the validation part fails before training, not after it."""
        if np.isnan(self.validation_score()):
            raise ValueError(
                f"scoring={self.model.scoring!r} scores the untrained network NaN on the validation part "
                f"({len(cast(_Held, self.val).y)} rows): it may need labels the part lacks (e.g. both "
                f"classes of every label for 'roc_auc'); raise validation_fraction, or choose another scoring"
            )

    def check_finite(self, loss: float, n_iter: int) -> None:
        if not np.isfinite(loss):
            raise ValueError(
                f"the training loss became {loss} at iteration {n_iter}; the data may need scaling "
                f"(e.g. StandardScaler) or learning_rate_init={self.model.learning_rate_init} is too large"
            )

    def schedule(self, optimizer: _Optimizer, t: int) -> None:
        """MLP's 'invscaling' rate for sgd, set after each epoch: learning_rate_init / (t + 1) ** power_t,
        ``t`` being the number of samples seen."""
        model = self.model
        if model.solver == "sgd" and model.learning_rate == "invscaling":
            optimizer.learning_rate = float(model.learning_rate_init / (t + 1) ** model.power_t)

    def stop_or_slow_down(self, optimizer: _Optimizer) -> bool:
        """At a stall: stop, or with sgd's 'adaptive' rate divide it by 5 and go on (stop at 1e-6); with
        verbose, say so in MLP's words."""
        model, lr = self.model, optimizer.learning_rate
        adaptive = model.solver == "sgd" and model.learning_rate == "adaptive"
        slow_down = adaptive and lr > 1e-6
        watched = "Validation score" if self.val is not None else "Training loss"
        stall = f"tol={model.tol:f} for {model.n_iter_no_change} consecutive epochs."
        if slow_down:
            optimizer.learning_rate = lr / 5
        if model.verbose:
            then = f"Setting learning rate to {lr / 5:f}" if slow_down else "Stopping."
            too_small = " Learning rate too small." if adaptive and not slow_down else ""
            print(f"{watched} did not improve more than {stall}{too_small} {then}")
        return not slow_down

    def lbfgs(self) -> dict[str, Any]:
        """Full-batch L-BFGS as MLP runs it: SciPy's L-BFGS-B with max_iter, max_fun and gtol=tol, on
        MLP's loss (which clips probabilities) and the gradient autograd computes, in chunks of rows.

        As in MLP, the start is in the network's dtype, so SciPy hands back points in it (it rounds
        them to x0's dtype) and the network computes in it; the result is SciPy's float64 point,
        unrounded: L-BFGS leaves MLP's weights, and ours, in float64 (predictions follow).
        """
        model, module, data = self.model, self.module, self.data
        params: list[torch.Tensor] = [p for p in module.parameters() if p.requires_grad]
        with _flat_parameters(params) as (flat, gradient):
            result = scipy.optimize.minimize(
                self.full_batch_loss(params, flat, gradient),
                to_numpy(flat, copy=True),
                method="L-BFGS-B",
                jac=True,
                options={"maxiter": model.max_iter, "maxfun": model.max_fun, "gtol": model.tol},
                callback=lambda _: self.callbacks.end(self.callbacks.begin(), module),  # each iteration
            )
        module.to(torch.float64)  # in place: params stay the module's parameters
        with _flat_parameters(params) as (flat, _):
            flat.copy_(to_tensor(result.x))
        loss = float(result.fun)
        if not np.isfinite(loss):
            raise ValueError(f"the training loss became {loss}; scale the data or add alpha")
        if result.status != 0:  # MLP warns alike: max_iter or max_fun ran out, or the line search failed
            _warn_not_converged(f"L-BFGS stopped after {result.nit} iterations: {result.message}")
        n_iter = min(int(result.nit), model.max_iter)
        return _Progress(False, [loss], best_loss=loss, n_iter=n_iter, t=data.n * n_iter).attributes()

    def full_batch_loss(
        self, params: list[torch.Tensor], flat: torch.Tensor, gradient: torch.Tensor
    ) -> Callable[[NDArray], tuple[float, NDArray]]:
        """MLP's L-BFGS objective as SciPy calls it: parameters (``flat``, see _flat_parameters) in, the
        weighted mean loss over all rows plus the L2 term out, with its gradient (left in ``gradient``,
        where the parameters' gradients accumulate, and copied out).

        On small data an evaluation is a few hundred microseconds of arithmetic, each tensor operation
        a visible part of it: what stays the same between evaluations is prepared once, here."""
        model, data = self.model, self.data
        total_weight = data.n if data.w is None else float(data.w.sum())
        step = self.step_rows()
        chunks = [slice(start, start + step) for start in range(0, data.n, step)]  # bound activations
        # MLP's L2 term, 0.5 * alpha * ||W||^2 over the weight matrices, over the flat vector at once:
        # ``decays`` is 1 on the matrices' elements, 0 on the biases'. Its gradient, alpha * W, is added
        # by hand, outside autograd.
        matrices = {id(W) for W in _weight_matrices(params)}
        decays = torch.cat([torch.full_like(p.reshape(-1), id(p) in matrices) for p in params])

        def loss_and_gradient(x: NDArray) -> tuple[float, NDArray]:
            flat.copy_(to_tensor(x))
            gradient.zero_()
            parts = []
            for rows in chunks:
                losses = self.batch_loss(rows)
                torch.autograd.backward(losses.total() / total_weight)  # accumulates into gradient
                parts.append(losses.detach())
            value = self.reported(parts)
            if model.alpha:
                weights = flat * decays
                value += 0.5 * model.alpha * float(weights @ weights)
                gradient.add_(weights, alpha=model.alpha / total_weight)
            return value / total_weight, to_numpy(gradient, dtype=np.float64, copy=True)

        return loss_and_gradient


@contextlib.contextmanager
def _flat_parameters(params: list[torch.Tensor]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``params`` as one vector, the form SciPy's optimizers read and write, and their gradients as
    another: inside, each parameter's data and gradient are views of the two vectors, so that an
    evaluation copies one vector in and one out instead of one tensor per parameter. On exit each
    parameter gets its own memory back (and layout), holding the vector's values."""
    own = [p.data for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    gradient = torch.zeros_like(flat)
    start = 0
    for p in params:
        p.data, p.grad = (v[start : start + p.numel()].view(p.shape) for v in (flat, gradient))
        start += p.numel()
    try:
        yield flat, gradient
    finally:
        with torch.no_grad():
            for p, memory in zip(params, own, strict=True):
                p.data, p.grad = memory.copy_(p.data), None


def _weight_matrices(params: Iterable[torch.Tensor]) -> list[torch.Tensor]:
    """The parameters MLP's L2 term reaches: the weight matrices fit trains, not the biases (nor a
    frozen matrix, which is not the model's to shrink)."""
    return [p for p in params if p.ndim > 1 and p.requires_grad]


# --- 7. inference -----------------------------------------------------------------------------------


def _map_chunks(module: nn.Module, X: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn(module(rows))`` over ``X`` in chunks of rows, on the module's device and cast to its dtype,
    under inference mode."""
    n, step = X.shape[0], _chunk_rows(module, X, inference=True)
    weight = next(module.parameters())
    device = weight.device
    dtype = None if torch_dtype(X.dtype) == weight.dtype else weight.dtype  # None: no cast to check
    with torch.inference_mode():
        out = fn(module(_batch(module, X, slice(0, step), device, dtype)))
        if n > step:
            # One output buffer, filled in place: a list of small chunk results, concatenated at
            # the end, would fragment the heap and raise peak memory several times over.
            out = torch.cat([out, out.new_empty((n - len(out), *out.shape[1:]))])
            for start in range(step, n, step):
                rows = slice(start, start + step)
                out[rows] = fn(module(_batch(module, X, rows, device, dtype)))
        return out


def _forward(est: _TorchEstimator, X: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``fn`` of the module's raw outputs for ``X``: a tensor on the module's device, floating
    results in the wider of X's dtype (float32 or float64, as validate_data makes it) and the
    module's, as NumPy's promotion makes MLP's."""
    X_ = validate_data(est, _host(X), reset=False, accept_sparse="csr", dtype=(np.float64, np.float32))
    out = _map_chunks(est.module_, _canonical(X_), fn)  # where the module lives, in its dtype
    return out.to(torch.promote_types(torch_dtype(X_.dtype), out.dtype)) if out.is_floating_point() else out


def _to_caller(X: Any, out: torch.Tensor) -> Output:
    """``out`` in ``X``'s library, on its device, when ``X`` is a foreign array under dispatch; else NumPy."""
    if not _tensor_out(X):
        return to_numpy(out)
    if isinstance(X, torch.Tensor):
        return out.to(X.device, copy=True)  # a copy: an ordinary tensor, not an inference-mode one
    converted: Output
    if hasattr(X, "__array_namespace__"):  # it takes our host array through DLPack, onto X's device
        converted = X.__array_namespace__().from_dlpack(to_numpy(out), device=X.device)
    else:  # a DLPack-only library imports from X's own device: out goes there first, as a tensor
        device = to_tensor(X).device  # a view of X, for its device
        converted = sys.modules[_library_name(X)].from_dlpack(out.to(device, copy=True))
    return converted


def _tensor_out(X: Any) -> bool:
    """Whether outputs follow ``X`` into its library: a tensor or another array API array, under dispatch."""
    return _foreign(X) and bool(get_config()["array_api_dispatch"])


def _foreign(x: Any) -> bool:
    """Whether ``x`` is an array of another library than NumPy: a tensor, an array API array, or an
    array that only exports DLPack (CuPy's, which scikit-learn reaches through array-api-compat)."""
    return isinstance(x, torch.Tensor) or (
        not isinstance(x, np.ndarray) and (hasattr(x, "__array_namespace__") or hasattr(x, "__dlpack__"))
    )


def _library_name(X: Any) -> str:
    if isinstance(X, torch.Tensor):
        return "torch"
    if hasattr(X, "__array_namespace__"):
        return str(X.__array_namespace__().__name__)
    return type(X).__module__.partition(".")[0]  # cupy.ndarray -> cupy


def _library(X: Any) -> tuple[str, str] | None:
    """The array library and device of a foreign ``X`` under dispatch; None for NumPy or without dispatch."""
    if not _tensor_out(X):
        return None
    return _library_name(X), str(X.device)


def _check_library(estimator: Any, X: Any, method: str) -> None:
    """Under dispatch, a model fitted on a foreign array library takes ``X`` only from it, on its device.

    scikit-learn's array API estimators keep this rule (its checks test it); a model fitted on NumPy
    takes any ``X``, and outputs follow ``X`` as before.
    """
    fitted = getattr(estimator, "_fit_library", None)
    if fitted is None or not get_config()["array_api_dispatch"]:
        return
    found = _library(X) or ("numpy", "cpu")
    if found != fitted:
        raise ValueError(
            f"{type(estimator).__name__}.{method}() inputs must use the same namespace and device as fit's: "
            f"fit had {fitted[0]} arrays on {fitted[1]}, {method} got {found[0]} on {found[1]}; "
            f"convert X to {fitted[0]} on {fitted[1]} first, or fit on NumPy to predict from anything"
        )


def _sparse(indicator: NDArray) -> Any:
    """A CSR matrix of ``indicator``, as MLP predicts for a sparse y: scikit-learn's sparse interface
    setting (1.9 and later) says whether a scipy.sparse array or matrix."""
    sparray = get_config().get("sparse_interface") == "sparray"
    return (scipy.sparse.csr_array if sparray else scipy.sparse.csr_matrix)(indicator)


# --- 8. the fitted state as plain data: what pickle, joblib and skops save -------------------------

_FORMAT = 1  # the layout of what __getstate__ writes; __setstate__ refuses a newer one


def _plain_state(state: dict[str, Any]) -> dict[str, Any]:
    """The live objects of a fitted estimator's ``state`` (the network, the optimizer, the random
    streams) as plain data, copied to the host."""
    optimizer, generators = state["_optimizer"], state["_global_rng_states"]
    return {
        "_state_format": _FORMAT,
        "module_": _plain_network(state["module_"], state["_shape"]),
        "_optimizer": None if optimizer is None else optimizer.plain(),
        "_rng": state["_rng"].get_state(legacy=False),
        "_global_rng_states": None if generators is None else [to_numpy(g, copy=True) for g in generators],
    }


def _plain_network(module: nn.Module, shape: dict[str, Any]) -> dict[str, Any]:
    """The built-in MLP as its activation's name and MLP's coefs_ and intercepts_; a custom module as
    its state_dict (parameters and persistent buffers) in NumPy."""
    tensors = module.state_dict()
    inexact = [t for t in tensors.items() if t[1].is_floating_point() or t[1].is_complex()]
    odd = [f"{name} ({t.dtype})" for name, t in inexact if t.dtype not in (torch.float32, torch.float64)]
    if odd:  # fit trains float32 or float64 networks: these come from a change made after fit
        raise TypeError(
            f"module_ holds {', '.join(odd)}, and saving takes float32 or float64 (what fit trains): cast "
            f"it back first, e.g. module_.float()"
        )
    if shape["module"] is None:
        layers = [layer for layer in module.modules() if isinstance(layer, nn.Linear)]
        return {
            "activation": shape["activation"],
            "coefs": [to_numpy(layer.weight.t(), copy=True) for layer in layers],
            "intercepts": [to_numpy(layer.bias, copy=True) for layer in layers],
        }
    return {"state_dict": {name: to_numpy(t, copy=True) for name, t in tensors.items()}}


def _live_state(est: _TorchEstimator, state: dict[str, Any]) -> dict[str, Any]:
    """What _plain_state made of a fitted estimator, live again (the network on the CPU, in eval mode),
    once checked against the rest of ``state``."""
    version = state.get("_state_format")
    if type(version) is not int or not 1 <= version <= _FORMAT:
        raise ValueError(
            f"the saved state has format {version!r}, and this estimators.py reads formats 1 to {_FORMAT}: "
            f"load it with the copy of estimators.py that saved it"
        )
    required = [*_FITTED, *(["classes_"] if is_classifier(est) else [])]
    missing = [name for name in required if name not in state]
    if missing:
        raise ValueError(
            f"the saved state lacks {missing}: it was not saved from a fitted {type(est).__name__}"
        )
    try:
        _check_targets(state)
        module = _live_network(
            state["module_"], state["_shape"], state["n_features_in_"], state["n_outputs_"]
        )
        plain, generators = state["_optimizer"], state["_global_rng_states"]
        optimizer = None if plain is None else _Optimizer.from_plain(plain, list(module.parameters()))
        rng = np.random.RandomState()
        rng.set_state(state["_rng"])
        generators = None if generators is None else [to_tensor(g, copy=True) for g in generators]
        if generators is not None:
            torch.Generator().set_state(generators[0])  # refuses what is not a CPU generator's state
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
        raise ValueError(f"the saved state is malformed: {type(err).__name__}: {err}") from err
    return {"module_": module.eval(), "_optimizer": optimizer, "_rng": rng, "_global_rng_states": generators}


def _check_targets(state: dict[str, Any]) -> None:
    """A classifier's outputs are what its classes make: one logistic output for one or two classes,
    one logistic output per label for multilabel y, one softmax output per class for more."""
    if "classes_" not in state:
        return
    n_classes, activation, n_outputs = len(state["classes_"]), state["out_activation_"], state["n_outputs_"]
    logistic = activation == "logistic" and (n_outputs == 1 and n_classes <= 2 or n_outputs == n_classes > 1)
    if not logistic and not (activation == "softmax" and n_outputs == n_classes > 2):
        raise ValueError(
            f"the saved classifier has {n_classes} classes, out_activation_={activation!r} and n_outputs_="
            f"{n_outputs}, which fit never makes together"
        )


def _live_network(plain: dict[str, Any], shape: dict[str, Any], n_in: int, n_out: int) -> nn.Module:
    """The network _plain_network saved, checked against the data's and targets' sizes."""
    if shape["module"] is None:
        activation, arrays = plain["activation"], [*plain["coefs"], *plain["intercepts"]]
        if activation != shape["activation"] or activation not in _ACTIVATIONS:
            raise ValueError(
                f"the saved activation {activation!r} is not {shape['activation']!r}, the one the fitted "
                f"shape records, or not one of {tuple(_ACTIVATIONS)}"
            )
        sizes = [n_in, *shape["hidden_layer_sizes"], n_out]
        expected = [*itertools.pairwise(sizes), *((size,) for size in sizes[1:])]
        if [np.shape(a) for a in arrays] != expected:
            raise ValueError(
                f"the saved network's shapes {[np.shape(a) for a in arrays]} do not fit n_features_in_="
                f"{n_in}, hidden_layer_sizes={shape['hidden_layer_sizes']} and n_outputs_={n_out}: "
                f"expected {expected}"
            )
        dtypes = {np.asarray(a).dtype for a in arrays}
    else:
        with _private_global_rng(True, []):  # its draws, which loading overwrites, leave torch's alone
            module = _call_factory(shape, n_in, n_out)
        tensors = {name: to_tensor(a, copy=True) for name, a in plain["state_dict"].items()}
        dtypes = {numpy_dtype(t.dtype) for t in tensors.values() if t.is_floating_point()}
    if len(dtypes) != 1 or not dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}:
        raise ValueError(
            f"the saved network holds {sorted(map(str, dtypes))}; a fitted one is float32 or float64"
        )
    dtype = torch_dtype(dtypes.pop())
    if shape["module"] is None:
        return _mlp(plain["coefs"], plain["intercepts"], activation, dtype, torch.device("cpu"))
    held = {name: t.dtype for name, t in module.to(dtype=dtype).state_dict().items()}
    odd = {name: t.dtype for name, t in tensors.items() if name in held and t.dtype != held[name]}
    if odd:
        raise ValueError(f"the saved tensors {odd} are not of the dtypes the module holds, {held}")
    try:
        module.load_state_dict(tensors)
    except RuntimeError as err:  # missing or unexpected names, or shapes that differ
        raise ValueError(f"the saved state does not fit the module its factory builds: {err}") from err
    return module


# --- 9. what fit leaves as it found it: random generators, threads, warnings ------------------------


def _random_state(est: _TorchEstimator, start: _Start) -> np.random.RandomState:
    """MLP's random stream for this call: the same random_state draws MLP's initial weights and shuffles.

    A copy, so that a failed call leaves the original as it was: of a RandomState passed in (MLP draws
    from it in every call, and fit advances it on success), else of the fitted stream when training goes
    on, else a new one; for None, seeded from OS entropy, since check_random_state(None) would draw from
    (and advance) NumPy's global RandomState.
    """
    random_state = est.random_state
    if isinstance(random_state, np.random.RandomState):
        return copy.deepcopy(random_state)
    if start.continues:
        return copy.deepcopy(est._rng)
    if random_state is None:
        return np.random.RandomState(np.random.SeedSequence().generate_state(1))
    return np.random.RandomState(random_state)


_GLOBAL_RNG_LOCK = threading.RLock()  # see _private_global_rng; reentrant for fits inside a module factory


@contextlib.contextmanager
def _private_global_rng(enabled: bool, cuda: list[torch.device]) -> Iterator[None]:
    """Run a custom module's fit on a forked copy of torch's global generator, one fit at a time.

    A custom module's constructor and layers (dropout) draw from torch's process-wide generator. The
    fork hands them a stream seeded from random_state and restores the caller's state on exit; the lock
    keeps fits in parallel threads from drawing from each other's streams. The built-in MLP draws from
    its own RandomState only and needs neither.
    """
    if not enabled:
        yield
        return
    with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=cuda):
        yield


def _seed_global_generators(seed: int, cuda: list[torch.device]) -> None:
    """Seed torch's CPU generator and those of the CUDA devices in ``cuda``, all forked by
    _private_global_rng: torch.manual_seed would seed every GPU's, which the fork does not restore."""
    torch.default_generator.manual_seed(seed)
    for device in cuda:
        with torch.cuda.device(device):
            torch.cuda.manual_seed(seed)


def _global_rng_states(cuda: list[torch.device]) -> list[torch.Tensor]:
    return [torch.get_rng_state(), *map(torch.cuda.get_rng_state, cuda)]


def _set_global_rng_states(states: list[torch.Tensor], cuda: list[torch.device]) -> None:
    torch.set_rng_state(states[0])
    for state, device in zip(states[1:], cuda, strict=False):  # a model trained on the CPU has no CUDA state
        torch.cuda.set_rng_state(state, device)


# Training steps of fewer multiply-adds (rows x parameters) run on one OpenMP thread: see _threads_for.
_PARALLEL_STEP = 2**23


def _threads_for(work: int) -> contextlib.AbstractContextManager[Any]:
    """One intra-op thread for training steps of fewer than _PARALLEL_STEP multiply-adds, in this
    thread only, put back on exit.

    torch runs its operations on a team of OpenMP threads, and every operation waits for the whole
    team. On a machine whose cores are busy (a browser, other jobs, the other fits of a parallel
    search) one of them waits for a core, and small steps spend most of their time waiting: beside two
    busy processes on 2 cores a digits fit at batch 32 takes about 5x MLP's time on two threads, 1.6x on
    one (docs/performance.md).
    Large steps, where threads pay off, keep the caller's setting (bench.py: busy_machine, thread_choice).
    OpenMP's thread count is per thread (omp_set_num_threads), so other threads, concurrent fits and
    the caller after fit see theirs; torch.set_num_threads would also change process-wide pools.
    """
    if work >= _PARALLEL_STEP:
        return contextlib.nullcontext()
    torch.get_num_threads()  # torch sets this thread's OpenMP count on first use: let it, then limit
    limiter: contextlib.AbstractContextManager[Any] = _openmp().limit(limits=1)
    return limiter


@functools.cache
def _openmp() -> Any:
    """The OpenMP runtimes loaded in this process (torch's among them), found once (about 4 ms)."""
    return ThreadpoolController().select(user_api="openmp")


def _warn_not_converged(why: str) -> None:
    _warn(f"training stopped before it converged: {why}; raise max_iter (or tol)", ConvergenceWarning)


def _warn(message: str, category: type[Warning]) -> None:
    """Warn from the first frame outside this module (and scikit-learn's with_callbacks around fit): the
    caller's line, or scikit-learn's when a search or cross-validation calls fit (where
    ``filterwarnings(module="sklearn")`` reaches it)."""
    frame: types.FrameType | None = sys._getframe()  # CPython's; 3.12's skip_file_prefixes does this
    level, ours = 1, (__name__, with_callbacks.__module__)
    while frame is not None and frame.f_globals.get("__name__") in ours:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
