"""scikit-learn estimators around any ``torch.nn.Module``: TorchClassifier and TorchRegressor.

Copy this file together with bridge.py into one directory, at your project's top level or inside a
package of yours; both work unchanged, typed. It needs torch, numpy and scikit-learn.

They take MLPClassifier's and MLPRegressor's parameters under the same names, so an MLP parameter grid
works unchanged, and add two: ``module``, a callable ``(n_features_in, n_outputs) -> nn.Module`` that
builds the network (the estimator owns the loss and the output activation), and ``device``.
Every numpy/torch crossing goes through bridge.py; fit never touches the caller's data, torch's or
NumPy's global random state, thread count or default dtype; predict is pure and thread-safe.
"""
# Settings a copy needs, since it cannot lean on this repository's pyproject.toml: scikit-learn ships no
# types (its imports are untyped), and the estimators subclass its mixins and use its available_if.
# mypy: disable-error-code="import-untyped"
# mypy: disallow-subclassing-any=False, disallow-untyped-decorators=False

from __future__ import annotations

import copy
import itertools
import warnings
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, is_classifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d, validate_data
from torch import nn

# bridge.py sits beside this file: both at a project's top level, or both inside a package of yours.
if TYPE_CHECKING:
    # mypy reads only this branch. A star import it cannot resolve binds nothing, so whichever of the
    # two exists gives the real types, wherever the files sit.
    import numpy.typing as npt

    from bridge import *  # type: ignore[import-not-found, unused-ignore]  # noqa: F403

    from .bridge import *  # type: ignore[import-not-found, unused-ignore]  # noqa: F403

    NDArray: TypeAlias = npt.NDArray[Any]  # bridge's alias, which its __all__ leaves out
elif __package__:  # inside a package: bridge is this module's sibling
    from .bridge import Device, NDArray, numpy_dtype, to_numpy, to_tensor, torch_dtype
else:  # at the top level (a copy, this checkout, or pip's install): bridge is top-level too
    from bridge import Device, NDArray, numpy_dtype, to_numpy, to_tensor, torch_dtype

__all__ = ["TorchClassifier", "TorchRegressor"]

ModuleFactory: TypeAlias = Callable[[int, int], nn.Module]
Output: TypeAlias = NDArray | torch.Tensor  # NumPy, or a tensor under array API dispatch
_Estimator = TypeVar("_Estimator", bound="_TorchEstimator")
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "identity": nn.Identity,
    "logistic": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
}
_CHUNK = 16384  # rows per inference step: bounds predict's memory whatever n_samples is


class _TorchEstimator(BaseEstimator):
    """What both estimators share: parameters, validation, the module, the training loop."""

    # Set by fit (trailing underscore), declared here for the type checker only.
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
    _optimizer: torch.optim.Optimizer
    _rng_state: torch.Tensor
    _global_rng_states: list[torch.Tensor]

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: int | str = "auto",
        learning_rate_init: float = 1e-3,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        module: ModuleFactory | None = None,
        device: Device = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
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
        self.module = module
        self.device = device

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # CSR is densified one mini-batch at a time
        tags.array_api_support = True  # tensor in, tensor out under array_api_dispatch
        return tags

    def fit(self: _Estimator, X: Any, y: Any, sample_weight: Any = None) -> _Estimator:
        """Train the network on ``X`` (n_samples, n_features) and ``y``; returns ``self``."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _has_partial_fit(self) -> bool:
        return self.solver != "lbfgs"  # as in MLP: L-BFGS needs the full batch

    # --- fit: validate -> seed -> build -> train -> record ---------------------------------------

    def _fit(
        self: _Estimator,
        X: Any,
        y: Any,
        sample_weight: Any,
        *,
        incremental: bool,
        classes: Any = None,
    ) -> _Estimator:
        before = dict(vars(self))
        try:
            return self._fit_or_raise(X, y, sample_weight, incremental=incremental, classes=classes)
        except BaseException:
            # A failed fit leaves every attribute as it was (validate_data resets n_features_in_ early).
            self.__dict__.clear()
            self.__dict__.update(before)
            raise

    def _fit_or_raise(
        self: _Estimator, X: Any, y: Any, sample_weight: Any, *, incremental: bool, classes: Any
    ) -> _Estimator:
        self._check_params()
        keep = (incremental or self.warm_start) and hasattr(self, "module_")
        X_, y_, device = self._validate_X_y(X, y, reset=not keep)
        w = self._check_weights(sample_weight, X_)
        Y, out_activation = self._encode_targets(
            y_, X_.dtype, keep=keep, incremental=incremental, classes=classes
        )
        generator = torch.Generator()
        if keep:
            generator.set_state(self._rng_state)
        else:
            generator.manual_seed(_seed(self.random_state))
        val = None
        if self.early_stopping and not incremental:
            X_, Y, w, val = self._split_validation(X_, Y, y_, w, generator)
        self.n_outputs_ = Y.shape[1] if Y.ndim == 2 else len(self.classes_)
        self.out_activation_ = out_activation
        # A module's own constructor and layers (dropout) draw from torch's global generator. The fork
        # hands them a stream seeded from random_state, continued across partial_fit calls, and
        # restores the caller's global state on exit.
        cuda = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            if keep:
                module = self.module_.to(device)
                # As in MLP: partial_fit continues the optimizer, a warm-started fit starts a new one.
                optimizer = self._optimizer if incremental else self._make_optimizer(module)
                _set_global_rng_states(self._global_rng_states, cuda)
            else:
                torch.manual_seed(int(torch.randint(2**62, (), generator=generator)))
                module = self._build_module(
                    X_.shape[1], self.n_outputs_, torch_dtype(X_.dtype), device, generator
                )
                optimizer = self._make_optimizer(module)
            Y_t = to_tensor(Y, device=device)
            X_t = X_ if hasattr(X_, "tocsr") else to_tensor(X_, device=device)
            record = self._train(module, optimizer, X_t, Y_t, w, generator, val, incremental, keep)
            global_states = [torch.get_rng_state(), *(torch.cuda.get_rng_state(d) for d in cuda)]
        module.eval()  # predict is pure: it relies on eval mode and never toggles it
        self.module_, self._optimizer = module, optimizer
        self._rng_state, self._global_rng_states = generator.get_state(), global_states
        for name, value in record.items():
            setattr(self, name, value)
        return self

    def _check_params(self) -> None:
        in_unit = (lambda v: 0 <= v <= 1, "in [0, 1]")
        positive = (lambda v: v > 0, "> 0")
        at_least_0 = (lambda v: v >= 0, ">= 0")
        checks: dict[str, tuple[type | tuple[type, ...], tuple[Callable[[Any], bool], str]]] = {
            "alpha": (Real, at_least_0),
            "learning_rate_init": (Real, positive),
            "max_iter": (Integral, positive),
            "tol": (Real, at_least_0),
            "momentum": (Real, in_unit),
            "validation_fraction": (Real, (lambda v: 0 < v < 1, "in (0, 1)")),
            "beta_1": (Real, (lambda v: 0 <= v < 1, "in [0, 1)")),
            "beta_2": (Real, (lambda v: 0 <= v < 1, "in [0, 1)")),
            "epsilon": (Real, positive),
            "n_iter_no_change": (Integral, positive),
        }
        for name, (kind, (ok, want)) in checks.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise TypeError(f"{name} must be a number {want}, got {value!r}")
            if not ok(value):
                raise ValueError(f"{name} must be {want}, got {value!r}")
        choices = {"activation": tuple(_ACTIVATIONS), "solver": ("adam", "sgd", "lbfgs")}
        if hasattr(self, "loss"):
            choices["loss"] = ("squared_error", "poisson")
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r} is not one of {allowed}")
        sizes = self._hidden_sizes()
        if not all(isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes):
            raise ValueError(f"hidden_layer_sizes must be positive ints, got {self.hidden_layer_sizes!r}")
        if not (self.batch_size == "auto" or isinstance(self.batch_size, Integral) and self.batch_size > 0):
            raise ValueError(f"batch_size must be 'auto' or an int > 0, got {self.batch_size!r}")
        if self.module is not None and not callable(self.module):
            raise TypeError(
                f"module must be a callable (n_features_in, n_outputs) -> nn.Module, got {self.module!r}"
            )

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes  # an int is one hidden layer, as in MLP
        return [int(sizes)] if isinstance(sizes, (int, np.integer)) else list(sizes)

    def _validate_X_y(self, X: Any, y: Any, *, reset: bool) -> tuple[Any, NDArray, torch.device]:
        device = self._resolve_device(X)
        X, y = _host(X), _host(y)
        dtype = (np.float64, np.float32) if reset else self._dtype()
        X_, y_ = validate_data(
            self,
            X,
            y,
            reset=reset,
            accept_sparse="csr",
            dtype=dtype,
            multi_output=True,
            y_numeric=not is_classifier(self),
        )
        return X_, y_, device

    def _resolve_device(self, X: Any) -> torch.device:
        device = (
            torch.device(self.device)
            if self.device is not None
            else (X.device if isinstance(X, torch.Tensor) else torch.device("cpu"))
        )
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={self.device!r} asks for CUDA, which is not available here; use 'cpu'")
        return device

    def _dtype(self) -> np.dtype[Any]:
        return numpy_dtype(next(self.module_.parameters()).dtype)

    def _check_weights(self, sample_weight: Any, X: Any) -> NDArray | None:
        if sample_weight is None:
            return None
        w: NDArray = check_array(
            _host(sample_weight), ensure_2d=False, dtype=X.dtype, input_name="sample_weight"
        )
        if w.shape != (X.shape[0],):
            raise ValueError(f"sample_weight has shape {w.shape}; expected ({X.shape[0]},), one per sample")
        if (w < 0).any() or not w.any():
            raise ValueError("sample_weight must be >= 0 with at least one non-zero weight")
        return w

    def _split_validation(
        self, X: Any, Y: NDArray, y: NDArray, w: NDArray | None, generator: torch.Generator
    ) -> tuple[Any, NDArray, NDArray | None, tuple[Any, NDArray, NDArray | None]]:
        stratify = y if is_classifier(self) and y.ndim == 1 else None
        seed = int(torch.randint(2**31 - 1, (), generator=generator))
        parts = [X, Y, y] + ([] if w is None else [w])
        split = train_test_split(
            *parts, test_size=self.validation_fraction, random_state=seed, stratify=stratify
        )
        X_tr, X_val, Y_tr, _, _, y_val = split[:6]
        w_tr, w_val = (split[6], split[7]) if w is not None else (None, None)
        return X_tr, Y_tr, w_tr, (X_val, y_val, w_val)

    def _build_module(
        self, n_in: int, n_out: int, dtype: torch.dtype, device: torch.device, g: torch.Generator
    ) -> nn.Module:
        if self.module is not None:
            module = self.module(n_in, n_out)
            if not isinstance(module, nn.Module):
                raise TypeError(f"module({n_in}, {n_out}) returned {type(module).__name__}, not an nn.Module")
            return module.to(device=device, dtype=dtype)
        sizes = [n_in, *self._hidden_sizes(), n_out]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layer = nn.Linear(fan_in, fan_out, device="meta", dtype=dtype).to_empty(device=device)
            # MLP's Glorot-uniform initialisation, drawn from the local generator only.
            bound = ((2.0 if self.activation == "logistic" else 6.0) / (fan_in + fan_out)) ** 0.5
            with torch.no_grad():
                for p in layer.parameters():
                    p.copy_(torch.rand(p.shape, generator=g, dtype=dtype) * (2 * bound) - bound)
            layers += [layer, _ACTIVATIONS[self.activation]()]
        return nn.Sequential(*layers[:-1])  # no activation after the output layer

    def _make_optimizer(self, module: nn.Module) -> torch.optim.Optimizer:
        if self.solver == "lbfgs":
            return torch.optim.LBFGS(
                module.parameters(),
                lr=1,
                max_iter=self.max_iter,
                tolerance_grad=self.tol,
                tolerance_change=0.0,
                line_search_fn="strong_wolfe",
            )
        # Group 0 holds the weight matrices: the L2 penalty reaches them as weight decay (see _train).
        matrices = [p for p in module.parameters() if p.ndim > 1]
        others = [p for p in module.parameters() if p.ndim <= 1]
        groups = [{"params": matrices}, {"params": others}]
        fused = all(p.is_floating_point() for p in module.parameters())  # one kernel per step
        if self.solver == "sgd":
            nesterov = self.nesterovs_momentum and self.momentum > 0
            return torch.optim.SGD(
                groups,
                lr=self.learning_rate_init,
                momentum=self.momentum,
                nesterov=nesterov,
                fused=fused,
            )
        betas = (self.beta_1, self.beta_2)
        return torch.optim.Adam(
            groups, lr=self.learning_rate_init, betas=betas, eps=self.epsilon, fused=fused
        )

    # --- training ------------------------------------------------------------------------------

    def _batch_loss(
        self, module: nn.Module, X: Any, Y: torch.Tensor, w: torch.Tensor | None, rows: Any
    ) -> torch.Tensor:
        """The sum of the (weighted) per-sample losses over the ``rows`` of the data."""
        return self._loss(
            module(_dense(X, rows, Y.device)), _take(Y, rows), None if w is None else _take(w, rows)
        )

    def _penalty(self, module: nn.Module) -> torch.Tensor:
        """MLP's L2 term, 0.5 * alpha * ||W||^2 over weight matrices (not biases)."""
        return (
            0.5
            * self.alpha
            * sum((p.square().sum() for p in module.parameters() if p.ndim > 1), torch.tensor(0.0))
        )

    def _train(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        X: Any,
        Y: torch.Tensor,
        w: NDArray | None,
        g: torch.Generator,
        val: Any,
        incremental: bool,
        keep: bool,
    ) -> dict[str, Any]:
        module.train()
        n = X.shape[0]
        if self.solver == "lbfgs":
            return self._train_lbfgs(module, optimizer, X, Y, w, n)
        batch = min(200 if self.batch_size == "auto" else int(self.batch_size), n)
        curve = list(self.loss_curve_) if keep else []
        t, n_iter = (self.t_, self.n_iter_) if keep else (0, 0)
        scores = (list(self.validation_scores_ or []) if keep else []) if self.early_stopping else None
        best_loss = np.inf if not keep or self.best_loss_ is None else self.best_loss_
        best_score = (
            -np.inf if not keep or self.best_validation_score_ is None else self.best_validation_score_
        )
        # Under warm start the current weights are the best validated so far.
        best_state = copy.deepcopy(module.state_dict()) if keep and scores is not None else None
        no_improvement = 0
        starts = range(0, n, batch)
        w_t = None if w is None else to_tensor(w, device=Y.device)
        matrices = optimizer.param_groups[0]
        params = [p for group in optimizer.param_groups for p in group["params"]]
        for _ in range(1 if incremental else self.max_iter):
            order = torch.randperm(n, generator=g) if self.shuffle else None
            # Each batch's loss is a weighted mean: divided by its weight (MLP's sw_sum), computed here
            # for the whole epoch at once, on the host, so no step waits on the device.
            weights = (
                [min(batch, n - start) for start in starts]
                if w is None
                else np.add.reduceat(w if order is None else w[to_numpy(order)], starts).tolist()
            )
            order = None if order is None else order.to(Y.device)
            losses = []
            for start, weight in zip(starts, weights, strict=True):
                if weight == 0:  # every sample weighs nothing: there is nothing to learn from this batch
                    continue
                rows = slice(start, start + batch) if order is None else order[start : start + batch]
                data_loss = self._batch_loss(module, X, Y, w_t, rows)
                # The L2 term's gradient, alpha * W / weight, is the optimizer's weight decay.
                matrices["weight_decay"] = self.alpha / weight
                for p in params:  # zero_grad(set_to_none=True), without its per-call profiling hooks
                    p.grad = None
                torch.autograd.backward(data_loss / weight)
                optimizer.step()
                losses.append(data_loss.detach())
            # As MLP reports it: every batch adds the L2 term (here with the epoch's final weights).
            with torch.no_grad():
                penalty = float(self._penalty(module)) * len(losses)
            epoch_loss = (float(torch.stack(losses).sum()) + penalty) / sum(weights)
            n_iter, t = n_iter + 1, t + n
            curve.append(epoch_loss)
            if self.verbose:
                print(f"Iteration {n_iter}, loss = {epoch_loss:.8f}")
            if scores is None and not np.isfinite(epoch_loss):
                raise ValueError(
                    f"the training loss became {epoch_loss} at iteration {n_iter}; the data may need "
                    f"scaling (e.g. StandardScaler) or learning_rate_init={self.learning_rate_init} "
                    f"is too large"
                )
            if scores is not None:
                module.eval()
                with np.errstate(all="ignore"):  # diverged predictions score NaN, as in MLP
                    score = self._score_module(module, *val, device=Y.device)
                score = score if np.isfinite(score) else np.nan
                module.train()
                scores.append(score)
                no_improvement = no_improvement + 1 if not score >= best_score + self.tol else 0
                if score > best_score:
                    best_score, best_state = score, copy.deepcopy(module.state_dict())
                if self.verbose:
                    print(f"Validation score: {score:.6f}")
            else:
                no_improvement = no_improvement + 1 if epoch_loss > best_loss - self.tol else 0
                best_loss = min(best_loss, epoch_loss)
            if not incremental and no_improvement > self.n_iter_no_change:
                break
        else:
            if not incremental:
                _warn_not_converged(self.max_iter)
        if best_state is not None:
            module.load_state_dict(best_state)  # early stopping keeps the best validated weights
        elif scores is not None and not np.isfinite(best_score):
            raise ValueError("no validation score was finite; scale the data or lower learning_rate_init")
        return {
            "loss_": curve[-1],
            "loss_curve_": curve,
            "n_iter_": n_iter,
            "t_": t,
            "best_loss_": None if scores is not None else best_loss,
            "validation_scores_": scores,
            "best_validation_score_": best_score if scores is not None else None,
        }

    def _train_lbfgs(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        X: Any,
        Y: torch.Tensor,
        w: NDArray | None,
        n: int,
    ) -> dict[str, Any]:
        weight_all = n if w is None else float(w.sum())
        w_t = None if w is None else to_tensor(w, device=Y.device)
        step = _chunk_rows(X) if hasattr(X, "tocsr") else max(n, 1)  # sparse: densified a chunk at a time

        def closure() -> torch.Tensor:  # the full-batch loss, its gradient accumulated chunk by chunk
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for start in range(0, n, step):
                data_loss = self._batch_loss(module, X, Y, w_t, slice(start, start + step))
                torch.autograd.backward(data_loss / weight_all)
                total += float(data_loss.detach())
            penalty = self._penalty(module)
            if penalty.requires_grad:  # False only for a module without weight matrices
                torch.autograd.backward(penalty / weight_all)
            return torch.tensor((total + float(penalty.detach())) / weight_all)

        loss = float(optimizer.step(closure))  # type: ignore[arg-type]  # LBFGS returns the closure's loss
        n_iter = int(optimizer.state[next(iter(module.parameters()))].get("n_iter", 0))
        if not np.isfinite(loss):
            raise ValueError(f"the training loss became {loss}; scale the data or add alpha")
        if n_iter >= self.max_iter:
            _warn_not_converged(self.max_iter)
        return {
            "loss_": loss,
            "loss_curve_": [loss],
            "n_iter_": n_iter,
            "t_": n * n_iter,
            "best_loss_": loss,
            "validation_scores_": None,
            "best_validation_score_": None,
        }

    # --- inference -------------------------------------------------------------------------------

    def _map_chunks(
        self,
        module: nn.Module,
        X: Any,
        device: torch.device,
        fn: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        """``fn(module(rows))`` over ``X`` in chunks of rows, under inference mode."""
        n, step = X.shape[0], _chunk_rows(X)
        with torch.inference_mode():
            out = fn(module(_dense(X, slice(0, step), device)))
            if n > step:
                # One output buffer, filled in place: a list of small chunk results, concatenated at
                # the end, would fragment the heap and raise peak memory several times over.
                out = torch.cat([out, out.new_empty((n - len(out), *out.shape[1:]))])
                for start in range(step, n, step):
                    out[start : start + step] = fn(module(_dense(X, slice(start, start + step), device)))
            return out

    def _forward(self, X: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        """``fn`` of the module's raw outputs for ``X``, a tensor on the module's device."""
        weight = next(self.module_.parameters())  # inference runs where the module lives, in its dtype
        X_ = validate_data(self, _host(X), reset=False, accept_sparse="csr", dtype=numpy_dtype(weight.dtype))
        return self._map_chunks(self.module_, X_, weight.device, fn)

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()
        if "module_" in state:  # pickles are device-free: a CUDA-trained model loads without a GPU
            state["module_"], state["_optimizer"] = _to_cpu(state["module_"], state["_optimizer"])
        return state

    def _encode_targets(
        self, y: NDArray, dtype: np.dtype[Any], *, keep: bool, incremental: bool, classes: Any
    ) -> tuple[NDArray, str]:
        """Targets as the loss takes them, and the output activation's name."""
        raise NotImplementedError

    def _loss(self, raw: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        """The sum over samples of the per-sample loss (weighted by ``w``) of raw outputs."""
        raise NotImplementedError

    def _score_module(
        self, module: nn.Module, X: Any, y: NDArray, w: NDArray | None, *, device: torch.device
    ) -> float:
        """The validation score early stopping watches: accuracy or R^2."""
        raise NotImplementedError


class TorchClassifier(ClassifierMixin, _TorchEstimator):
    """A classifier training any ``nn.Module`` on log-loss: binary, multiclass or multilabel.

    Parameters and fitted attributes are MLPClassifier's (see the README); ``module`` builds the
    network from ``(n_features_in, n_outputs)`` and returns raw scores (logits).
    """

    classes_: NDArray

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    @available_if(_TorchEstimator._has_partial_fit)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> TorchClassifier:
        """One epoch over ``X``, ``y``; ``classes`` (all labels) is required on the first call."""
        if (
            not hasattr(self, "module_")
            and classes is None
            and type_of_target(_host(y)) != "multilabel-indicator"
        ):
            raise ValueError("the first call to partial_fit needs classes=, every label y may ever hold")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _encode_targets(
        self, y: NDArray, dtype: np.dtype[Any], *, keep: bool, incremental: bool, classes: Any
    ) -> tuple[NDArray, str]:
        check_classification_targets(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        multilabel = y.ndim == 2
        found = np.arange(y.shape[1]) if multilabel else np.unique(y)
        known = self.classes_ if keep else found if classes is None else np.unique(_host(classes))
        unknown = np.setdiff1d(found, known)
        if unknown.size or keep and not incremental and not np.array_equal(found, known):
            raise ValueError(
                f"y has the labels {found}, but the model's classes are {known}; warm_start and "
                f"partial_fit keep the classes of the first fit (pass every label as classes=)"
            )
        if len(known) < 2:
            raise ValueError(f"y has only one class ({known}); a classifier needs at least two classes")
        self.classes_ = known
        if multilabel:
            return y.astype(dtype), "logistic"
        if len(known) == 2:  # one logistic output, as in MLP
            return (y == known[1]).astype(dtype)[:, None], "logistic"
        return np.searchsorted(known, y), "softmax"

    def _loss(self, raw: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        if target.ndim == 1:  # class indices: softmax cross-entropy
            if w is None:
                return F.cross_entropy(raw, target, reduction="sum")
            return F.cross_entropy(raw, target, reduction="none") @ w
        weight = None if w is None else w[:, None]  # logistic outputs: their losses add up, as in MLP
        return F.binary_cross_entropy_with_logits(raw, target, weight=weight, reduction="sum")

    def _probabilities(self, raw: torch.Tensor) -> torch.Tensor:
        if self.out_activation_ == "softmax":
            return raw.softmax(1)
        p = raw.sigmoid()
        return p if self.n_outputs_ > 1 or len(self.classes_) > 2 else torch.cat([1 - p, p], 1)

    def _score_module(
        self, module: nn.Module, X: Any, y: NDArray, w: NDArray | None, *, device: torch.device
    ) -> float:
        proba = to_numpy(self._map_chunks(module, X, device, self._probabilities))
        if not np.isfinite(proba).all():
            return np.nan
        return float(accuracy_score(y, self.classes_[proba.argmax(1)], sample_weight=w))

    def predict_proba(self, X: Any) -> Output:
        """Class probabilities (n_samples, n_classes), columns in the order of ``classes_``."""
        check_is_fitted(self)
        return _to_caller(X, self._forward(X, self._probabilities))

    def predict_log_proba(self, X: Any) -> Output:
        """Log of ``predict_proba``."""
        check_is_fitted(self)
        return _to_caller(X, self._forward(X, lambda raw: self._probabilities(raw).log()))

    def predict(self, X: Any) -> Output:
        """Labels from ``classes_`` (an indicator matrix for multilabel): the argmax of predict_proba.

        Under array API dispatch a tensor ``X`` gets a tensor of labels, unless the labels are strings
        or other objects no tensor can hold: then, as without dispatch, a NumPy array.
        """
        check_is_fitted(self)
        if self.out_activation_ == "logistic" and self.n_outputs_ > 1:
            indicator = self._forward(X, lambda raw: self._probabilities(raw) > 0.5)
            return _to_caller(X, indicator.to(torch_dtype(self.classes_.dtype)))
        index = self._forward(X, lambda raw: self._probabilities(raw).argmax(1))
        if _tensor_out(X) and self.classes_.dtype.kind in "biuf":
            return _to_caller(X, to_tensor(self.classes_, device=index.device)[index])
        labels: NDArray = self.classes_[to_numpy(index)]
        return labels


class TorchRegressor(RegressorMixin, _TorchEstimator):
    """A regressor training any ``nn.Module`` on squared error or Poisson deviance, one or many outputs.

    Parameters and fitted attributes are MLPRegressor's (see the README); ``module`` builds the
    network from ``(n_features_in, n_outputs)`` and returns raw predictions (log-means for Poisson).
    """

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = (100,),
        activation: str = "relu",
        *,
        loss: str = "squared_error",
        solver: str = "adam",
        alpha: float = 1e-4,
        batch_size: int | str = "auto",
        learning_rate_init: float = 1e-3,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        tol: float = 1e-4,
        verbose: bool = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int = 10,
        module: ModuleFactory | None = None,
        device: Device = None,
    ) -> None:
        super().__init__(
            hidden_layer_sizes,
            activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate_init=learning_rate_init,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            module=module,
            device=device,
        )
        self.loss = loss

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @available_if(_TorchEstimator._has_partial_fit)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> TorchRegressor:
        """One epoch over ``X``, ``y``, continuing from the current weights."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _encode_targets(
        self, y: NDArray, dtype: np.dtype[Any], *, keep: bool, incremental: bool, classes: Any
    ) -> tuple[NDArray, str]:
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError(f"loss='poisson' needs y >= 0; the smallest target is {y.min()}")
        Y = y.reshape(len(y), -1).astype(dtype, copy=False)  # (n_samples, n_outputs)
        if keep and Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y has {Y.shape[1]} outputs; the fitted model has {self.n_outputs_}")
        return Y, "exp" if self.loss == "poisson" else "identity"

    def _loss(self, raw: torch.Tensor, target: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
        if self.loss == "poisson":  # MLP's Poisson deviance / 2, raw being the log-mean
            per_sample = (raw.exp() - target * raw + torch.xlogy(target, target) - target).sum(1)
        else:  # half the squared error, averaged over the outputs
            per_sample = (raw - target).square().mean(1) * 0.5
        return per_sample.sum() if w is None else per_sample @ w

    def _mean(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.exp() if self.loss == "poisson" else raw

    def _score_module(
        self, module: nn.Module, X: Any, y: NDArray, w: NDArray | None, *, device: torch.device
    ) -> float:
        pred = to_numpy(self._map_chunks(module, X, device, self._mean))
        if not np.isfinite(pred).all():
            return np.nan
        return float(r2_score(y, pred.reshape(y.shape), sample_weight=w))

    def predict(self, X: Any) -> Output:
        """Predictions (n_samples,) for one output, (n_samples, n_outputs) for several."""
        check_is_fitted(self)
        out = self._forward(X, self._mean)
        return _to_caller(X, out.reshape(-1) if self.n_outputs_ == 1 else out)


def _seed(random_state: int | np.random.RandomState | None) -> int:
    """A seed for the local generator, leaving NumPy's global RandomState untouched."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, np.uint64)[0] >> 1)  # OS entropy
    return int(check_random_state(random_state).randint(2**31 - 1))


def _tensor_out(X: Any) -> bool:
    """Whether outputs follow ``X`` into torch: a tensor under scikit-learn's array API dispatch."""
    return isinstance(X, torch.Tensor) and bool(get_config()["array_api_dispatch"])


def _to_caller(X: Any, out: torch.Tensor) -> Output:
    """A tensor on ``X``'s device when ``X`` is a tensor under array API dispatch, else NumPy."""
    if _tensor_out(X):
        return out.to(X.device, copy=True)  # a copy: an ordinary tensor, not an inference-mode one
    return to_numpy(out)


def _host(x: Any) -> Any:
    """Tensors cross to NumPy through the bridge (a view on the CPU); anything else is left alone."""
    return to_numpy(x) if isinstance(x, torch.Tensor) else x


def _dense(X: Any, rows: Any, device: torch.device) -> torch.Tensor:
    """Rows of ``X`` as a dense tensor on ``device``; a sparse matrix is densified only for them."""
    if isinstance(X, torch.Tensor):
        return _take(X, rows)
    if isinstance(rows, torch.Tensor):
        rows = to_numpy(rows.cpu())
    part = X[rows]
    return to_tensor(part.toarray() if hasattr(part, "toarray") else part, device=device)


def _take(t: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    """Rows of ``t``: a view for a slice, one gather for an index tensor (cheaper than t[rows])."""
    return t[rows] if isinstance(rows, slice) else t.index_select(0, rows)


def _chunk_rows(X: Any) -> int:
    """Rows per chunk: _CHUNK, fewer for a sparse matrix so a densified chunk stays near 16 MiB."""
    return max(1, min(_CHUNK, 2**22 // max(X.shape[1], 1))) if hasattr(X, "tocsr") else _CHUNK


def _to_cpu(module: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[nn.Module, torch.optim.Optimizer]:
    if all(p.is_cpu for p in module.parameters()):
        return module, optimizer
    module, optimizer = copy.deepcopy((module, optimizer))
    module.cpu()  # moves parameters in place, so the optimizer's references stay valid
    for state in optimizer.state.values():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                state[key] = value.cpu()
    return module, optimizer


def _set_global_rng_states(states: list[torch.Tensor], cuda: list[torch.device]) -> None:
    torch.set_rng_state(states[0])
    for state, device in zip(states[1:], cuda, strict=False):  # a model trained on the CPU has no CUDA state
        torch.cuda.set_rng_state(state, device)


def _warn_not_converged(max_iter: int) -> None:
    warnings.warn(
        f"training stopped at max_iter={max_iter} before the loss converged; raise max_iter or tol",
        ConvergenceWarning,
        stacklevel=3,
    )
