"""The README's review checklist, run: every row's check fails on a tutorial-style wrapper and passes on ours.

Each ``check_*`` function below is one check of the README's "Review checklist" table, written exactly as
the table shows it (a test compares the two as Python syntax trees, so neither can drift). A check takes
``Est`` (the wrapper's class, or a function making one with small settings), a small data set ``X, y``
of the wrapper's kind, and raises when the wrapper has the row's defect.

``PlainTutorial``, ``TutorialClassifier`` and ``HandWrittenTutorial`` are wrappers in the shape
tutorials publish, defects kept on purpose: for each check, the test names the one(s) it must fail on
and the error that shows the row's defect, so a check cannot pass as "failing" because of an unrelated
crash.
"""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import pathlib
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pytest
import torch
from numpy.testing import assert_raises, assert_raises_regex
from sklearn.base import BaseEstimator, is_classifier
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import check_estimator
from torch import nn

from bridge import NDArray
from estimators import TorchClassifier, TorchRegressor

README = pathlib.Path(__file__).with_name("README.md").read_text()

# --- the README's helpers, as written there --------------------------------------------------------------

dev = "cuda" if torch.cuda.is_available() else "cpu"  # the device the device check asks for


def module_inputs(call: Callable[..., object], *args: object) -> list[torch.Tensor]:
    """Run call(*args); for each torch module called inside it, a stand-in for its first input: the
    same rows, dtype and device, no columns (so no memory)."""
    seen: list[torch.Tensor] = []

    def record(module: nn.Module, inputs: tuple[Any, ...], output: object) -> None:
        seen.append(inputs[0].new_empty((len(inputs[0]), 0)))

    hook = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        call(*args)
    finally:
        hook.remove()
    return seen


def writes_its_input(n_features: int, n_outputs: int) -> nn.Module:
    """A network that changes its input in place, as one starting with nn.ReLU(inplace=True) does."""
    return nn.Sequential(nn.ReLU(inplace=True), nn.Linear(n_features, n_outputs))


# --- the tutorial wrappers ---------------------------------------------------------------------------------


class PlainTutorial:
    """The tutorial shape: hyperparameters stored, a float32 Adam loop, predict under no_grad, a
    hand-written score. No base class, so no get_params and no tags."""

    def __init__(
        self,
        hidden: int = 16,
        max_iter: int = 20,
        batch_size: int = 16,
        learning_rate_init: float = 0.01,
        random_state: int | None = None,
        module: Callable[[int, int], nn.Module] | None = None,
    ) -> None:
        self.hidden = hidden
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.random_state = random_state
        self.module = module
        self.model_: nn.Module | None = None

    def _network(self, n_features: int, n_classes: int) -> nn.Module:
        if self.module is not None:
            return self.module(n_features, n_classes)
        return nn.Sequential(
            nn.Linear(n_features, self.hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(self.hidden, n_classes)
        )

    def _batches(self, n: int) -> list[slice]:
        return [slice(start, start + self.batch_size) for start in range(0, n, self.batch_size)]

    def fit(self, X: Any, y: Any) -> Any:
        if self.random_state is not None:
            torch.manual_seed(self.random_state)
        self.classes_, codes = np.unique(y, return_inverse=True)
        X_t = torch.from_numpy(np.asarray(X, dtype=np.float32))
        y_t = torch.from_numpy(codes)
        self.model_ = self._network(X_t.shape[1], len(self.classes_))
        optimizer = torch.optim.Adam(self.model_.parameters(), lr=self.learning_rate_init)
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(self.max_iter):
            for rows in self._batches(len(X_t)):
                optimizer.zero_grad()
                loss = loss_fn(self.model_(X_t[rows]), y_t[rows])
                loss.backward()
                optimizer.step()
        return self

    def _logits(self, X: Any) -> torch.Tensor:
        model: Any = self.model_  # None before fit: the tutorial has no fitted check
        model.eval()
        with torch.no_grad():
            out: torch.Tensor = model(torch.from_numpy(np.asarray(X, dtype=np.float32)))
        return out

    def predict(self, X: Any) -> NDArray:
        result: NDArray = self._logits(X).argmax(dim=1).numpy()
        return result

    def score(self, X: Any, y: Any) -> float:
        return float((self.predict(X) == y).mean())


class TutorialClassifier(BaseEstimator, PlainTutorial):  # type: ignore[misc]  # sklearn is untyped
    """The same, on BaseEstimator (get_params, clone) but without ClassifierMixin."""


class HandWrittenTutorial(PlainTutorial):
    """The same, with hand-written get_params/set_params (batch_size forgotten), a predict_proba, and
    full-batch training whatever batch_size says."""

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "hidden": self.hidden,
            "max_iter": self.max_iter,
            "learning_rate_init": self.learning_rate_init,
            "random_state": self.random_state,
            "module": self.module,
        }

    def set_params(self, **params: Any) -> HandWrittenTutorial:
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def _batches(self, n: int) -> list[slice]:
        return [slice(0, n)]

    def predict_proba(self, X: Any) -> NDArray:
        result: NDArray = torch.softmax(self._logits(X), dim=1).numpy()
        return result


class InitBuilds(TutorialClassifier):
    """A network and optimizer built in __init__, out of reach of set_params and clone."""

    def __init__(self, hidden: int = 16, max_iter: int = 20) -> None:
        super().__init__(hidden=hidden, max_iter=max_iter)
        del self.model_
        self.net = nn.Linear(4, hidden)


class NeverEval(HandWrittenTutorial):
    """predict without eval mode: dropout draws anew in every call."""

    def _logits(self, X: Any) -> torch.Tensor:
        model = cast(nn.Module, self.model_)
        with torch.no_grad():
            out: torch.Tensor = model(torch.from_numpy(np.asarray(X, dtype=np.float32)))
        return out


# --- the checks, one row of the README's table each ----------------------------------------------------

Run = Callable[[Callable[..., Any], NDArray, NDArray], None]
# A tutorial wrapper the check fails on, the error it raises there, and a pattern its message matches;
# None: an AssertionError raised by an ``assert`` statement of the check itself.
Fails = tuple[type, type[BaseException], str | None]


@dataclass(frozen=True)
class Check:
    """One check of README row ``row``; ``not_for_regressors`` says why a regressor is not checked."""

    row: int
    run: Run
    fails_on: tuple[Fails, ...]
    not_for_regressors: str | None


CHECKS: list[Check] = []


def row(number: int, *fails_on: Fails, not_for_regressors: str | None = None) -> Callable[[Run], Run]:
    """Register a check of README row ``number``, with the tutorial wrappers it must fail on."""

    def register(run: Run) -> Run:
        CHECKS.append(Check(number, run, fails_on, not_for_regressors))
        return run

    return register


NO_CLASSES = "a regressor has no classes"
NOT_RAISED = "ValueError not raised by fit"  # what numpy's assert_raises says


@row(1, (TutorialClassifier, AssertionError, None), (InitBuilds, AssertionError, None))
def check_init_only_stores(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert set(vars(Est())) == set(inspect.signature(type(Est())).parameters)


@row(
    2,
    (PlainTutorial, AttributeError, "has no attribute 'get_params'"),
    (HandWrittenTutorial, AssertionError, None),
)
def check_get_params_lists_every_parameter(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert Est().get_params(deep=False).keys() == inspect.signature(type(Est())).parameters.keys()


@row(
    3,
    (TutorialClassifier, AssertionError, None),
    not_for_regressors="the row is about classifiers: a regressor's cv=3 is KFold either way",
)
def check_classifier_tags(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert is_classifier(Est())


@row(4, (TutorialClassifier, AssertionError, NOT_RAISED))
def check_max_iter_0_is_refused(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert_raises_regex(ValueError, "max_iter", Est(max_iter=0).fit, X, y)


# The tutorial's loop fails in range(), with a ValueError that does not name batch_size.
@row(4, (TutorialClassifier, AssertionError, r'"batch_size" does not match "range\(\) arg 3 must not'))
def check_batch_size_0_is_refused(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert_raises_regex(ValueError, "batch_size", Est(batch_size=0).fit, X, y)


@row(5, (TutorialClassifier, RuntimeError, "mat1 and mat2 shapes cannot be multiplied"))
def check_wrong_width_is_refused(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert_raises(ValueError, Est().fit(X, y).predict, X[:, :-1])


@row(5, (TutorialClassifier, AssertionError, NOT_RAISED))
def check_nan_is_refused(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert_raises(ValueError, Est().fit, X + np.nan, y)


@row(6, (TutorialClassifier, AssertionError, NOT_RAISED))
def check_infinite_target_is_refused(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert_raises(ValueError, Est().fit, X, np.append(y[:-1], np.inf))


@row(6, (TutorialClassifier, AssertionError, NOT_RAISED), not_for_regressors=NO_CLASSES)
def check_continuous_target_is_refused(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert_raises(ValueError, Est().fit, X, X[:, 0])


@row(7, (TutorialClassifier, ValueError, "negative strides are not currently supported"))
def check_negative_strides(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    Est().fit(X.astype(np.float32)[::-1], y[::-1])


@row(7, (TutorialClassifier, AssertionError, None))
def check_module_never_writes_x(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    X32 = X.astype(np.float32)
    Est(module=writes_its_input).fit(X32, y).predict(X32)
    assert np.array_equal(X32, X.astype(np.float32))


@row(8, (TutorialClassifier, AssertionError, None))
def check_float64_stays_float64(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert {x.dtype for x in module_inputs(Est().fit, X.astype(np.float64), y)} == {torch.float64}


@row(9, (HandWrittenTutorial, AssertionError, None))
# with a mini-batch solver and no early stopping (which scores its split in one pass)
def check_batch_size_is_honoured(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert max(len(x) for x in module_inputs(Est(batch_size=16).fit, X, y)) <= 16


@row(10, (TutorialClassifier, AssertionError, "fit moved the global generator"))
def check_random_state(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    state = torch.get_rng_state()
    first, second = (Est(random_state=0).fit(X, y).predict(X) for _ in range(2))
    assert np.array_equal(first, second), "the same random_state, another model"
    assert torch.equal(torch.get_rng_state(), state), "fit moved the global generator"


@row(11, (TutorialClassifier, TypeError, "unexpected keyword argument 'device'"))
def check_device(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert {x.device.type for x in module_inputs(Est(device=dev).fit, X, y)} == {dev}


@row(12, (TutorialClassifier, RuntimeError, "does not require grad"))
def check_fit_under_no_grad(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    with torch.no_grad():
        Est().fit(X, y)


@row(15, (TutorialClassifier, AttributeError, "'NoneType' object has no attribute 'eval'"))
def check_predict_before_fit(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert_raises(NotFittedError, Est().predict, X)


@row(16, (TutorialClassifier, AssertionError, None), (NeverEval, AssertionError, None))
def check_predict_changes_nothing(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    est = Est().fit(X, y)
    out = getattr(est, "predict_proba", est.predict)
    before, first = pickle.dumps(est), out(X)
    assert pickle.dumps(est) == before and np.array_equal(out(X), first)


@row(17, (TutorialClassifier, AssertionError, None))
def check_predict_in_chunks(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    est, X_big = Est().fit(X, y), np.repeat(X, 5000, axis=0)
    assert max(len(x) for x in module_inputs(est.predict, X_big)) < len(X_big)


@row(18, (TutorialClassifier, AssertionError, None), not_for_regressors=NO_CLASSES)
def check_predict_returns_labels(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert set(Est().fit(X, y + 10).predict(X)) <= set(y + 10)


@row(
    19,
    (TutorialClassifier, AttributeError, "has no attribute 'predict_proba'"),
    not_for_regressors="a regressor has no probabilities",
)
def check_predict_proba(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    assert np.allclose(Est().fit(X, y).predict_proba(X).sum(axis=1), 1)


@row(20, (TutorialClassifier, AssertionError, None))
def check_score_of_a_column_y(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    est = Est().fit(X, y)
    assert est.score(X, y[:, None]) == est.score(X, y)


@row(21, (TutorialClassifier, AssertionError, "should not set any attribute apart from parameters"))
def check_scikit_learn_checks(Est: Callable[..., Any], X: NDArray, y: NDArray) -> None:
    check_estimator(Est())


NO_CHECK = {13, 14}  # rows whose check column says why there is none


# --- running them --------------------------------------------------------------------------------------

CLASSIFICATION: tuple[NDArray, NDArray] = make_classification(
    n_samples=60, n_features=4, n_informative=3, n_redundant=0, n_classes=3, random_state=0
)
REGRESSION: tuple[NDArray, NDArray] = make_regression(n_samples=60, n_features=4, noise=1.0, random_state=0)
# Ours, with scikit-learn's checks' accuracy reached in few epochs; the network keeps its default size,
# so that a module factory (writes_its_input) may replace it.
SMALL: dict[str, Any] = {"max_iter": 60, "learning_rate_init": 0.01}
OURS: dict[str, tuple[Callable[..., Any], tuple[NDArray, NDArray]]] = {
    "TorchClassifier": (functools.partial(TorchClassifier, **SMALL), CLASSIFICATION),
    "TorchRegressor": (functools.partial(TorchRegressor, **SMALL), REGRESSION),
}


def _name(check: Check) -> str:
    return f"row{check.row}-{check.run.__name__.removeprefix('check_')}"


@pytest.mark.parametrize(
    ("check", "wrapper", "error", "match"),
    [
        pytest.param(check, wrapper, error, match, id=f"{_name(check)}-{wrapper.__name__}")
        for check in CHECKS
        for wrapper, error, match in check.fails_on
    ],
)
def test_each_check_fails_on_a_tutorial_wrapper(
    check: Check, wrapper: type, error: type[BaseException], match: str | None
) -> None:
    """For the row's reason: the error named, with its message, or the check's own assert."""
    X, y = CLASSIFICATION
    # The tutorial wrappers draw from torch's global generator: a forked one, seeded, repeats them.
    with torch.random.fork_rng(devices=[]), pytest.raises(error, match=match) as caught:
        torch.manual_seed(0)
        check.run(wrapper, X, y)
    if match is None:
        innermost = caught.traceback[-1]
        assert innermost.frame.code.raw is check.run.__code__, "not the check's own assert"
        assert innermost.statement.lines[0].lstrip().startswith("assert ")


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # few epochs, on purpose
# check_estimator skips, with this warning, its checks for devices and libraries this machine lacks
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.SkipTestWarning")
@pytest.mark.parametrize(
    ("check", "name"),
    [
        pytest.param(
            check,
            name,
            id=f"{_name(check)}-{name}",
            marks=[pytest.mark.skip(reason=check.not_for_regressors)]
            if name == "TorchRegressor" and check.not_for_regressors
            else [],
        )
        for check in CHECKS
        for name in OURS
    ],
)
def test_each_check_passes_on_ours(check: Check, name: str) -> None:
    Est, (X, y) = OURS[name]
    check.run(Est, X, y)


# --- the README shows the checks as they run here ------------------------------------------------------

REVIEW = pathlib.Path(__file__).with_name("docs").joinpath("review.md").read_text()


def _table() -> dict[int, str]:
    """The checklist's rows: {number: the "check you can run" cell}."""
    section = README.split("## Review checklist", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \|.*\| ([^|]*) \|$", section, re.M)
    return {int(number): cell for number, cell in rows}


def _body(run: Run) -> list[ast.stmt]:
    function = ast.parse(inspect.getsource(run)).body[0]
    assert isinstance(function, ast.FunctionDef)
    return function.body


def test_the_readme_table_shows_every_check_as_it_runs_here() -> None:
    """Each row's check cell holds, as code spans in order, exactly the bodies of its check functions
    (compared as syntax trees: the README writes them on one line); the rows without one say so."""
    table = _table()
    assert sorted(table) == list(range(1, len(table) + 1)) and 15 <= len(table) <= 25
    assert {check.row for check in CHECKS} | NO_CHECK == set(table)
    for number, cell in table.items():
        runs = [check for check in CHECKS if check.row == number]
        spans = re.findall(r"`([^`]+)`", cell)
        if number in NO_CHECK:
            assert cell.startswith("none") and not runs, f"row {number}: {cell}"
            assert not any("assert" in span for span in spans), f"row {number} says none, and shows a check"
            continue
        shown = [ast.dump(ast.Module(ast.parse(span).body, [])) for span in spans]
        ran = [ast.dump(ast.Module(_body(check.run), [])) for check in runs]
        assert shown == ran, f"row {number}: the README shows {spans}"
        # A check for classifiers only says so right before it ("classifier: `...`"); no other does.
        for check, before in zip(runs, re.split(r"`[^`]+`", cell), strict=False):
            marked = before.rstrip().endswith("classifier:")
            assert marked == bool(check.not_for_regressors), f"row {number}: mark classifier-only checks"


def test_the_setup_block_defines_what_the_checks_use() -> None:
    """docs/review.md's setup block (test_demo runs it) defines the helpers as this file does, and binds
    every name a check uses besides Est, X, y and its own variables."""
    block = re.search(r"## Setting up the checks\n.*?```python\n(.*?)```", REVIEW, re.S)
    assert block is not None, "docs/review.md: no python block under 'Setting up the checks'"
    setup = ast.parse(block.group(1))
    here = ast.parse(pathlib.Path(__file__).read_text())
    for name in ("module_inputs", "writes_its_input", "dev"):
        assert _definition(setup, name) == _definition(here, name), f"{name} differs from the README's"
    bound = {
        alias.asname or alias.name.split(".")[0]
        for node in setup.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    } | {"module_inputs", "writes_its_input", "dev"}
    for check in CHECKS:
        body = ast.Module(_body(check.run), [])
        names = [node for node in ast.walk(body) if isinstance(node, ast.Name)]
        own = {node.id for node in names if isinstance(node.ctx, ast.Store)} | {"Est", "X", "y"}
        used = {node.id for node in names if isinstance(node.ctx, ast.Load)} - own - set(dir(builtins))
        assert used <= bound, f"{check.run.__name__} uses {used - bound}, which the setup block does not bind"


def _definition(module: ast.Module, name: str) -> str:
    """The syntax tree of the top-level function or assignment that binds ``name`` in ``module``."""
    for node in module.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return ast.dump(node)
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == name for target in node.targets
        ):
            return ast.dump(node)
    raise AssertionError(f"{name} is not defined")
