"""ONNX export (onnx_export.py): onnxruntime agrees with predict and predict_proba, for every kind of target.

Each case fits a small model on 200 rows, converts it with skl2onnx's own ``to_onnx`` once
``onnx_export.register()`` has run, and runs the ONNX file with onnxruntime on 1,000 held-out rows:
every label equals predict's, and probabilities or predictions are within 1e-5 relative in float32 and
1e-10 in float64 (TF-IDF aside: skl2onnx computes it in float32 whatever the dtype). The module skips
where the ``onnx`` extra is not installed (``pip install -e '.[onnx]'``).

``python test_onnx_export.py`` prints the measured differences of every case (docs/deployment.md).
"""

from __future__ import annotations

import pathlib
import pickle
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import PolynomialFeatures, SplineTransformer, StandardScaler
from torch import nn

from estimators import TorchClassifier, TorchRegressor

_WHY = "the onnx extra is not installed: pip install -e '.[onnx]'"
ort = pytest.importorskip("onnxruntime", reason=_WHY)
skl2onnx = pytest.importorskip("skl2onnx", reason=_WHY)
pytest.importorskip("onnxscript", reason=_WHY)  # torch's exporter writes its graphs with it

import onnx_export  # noqa: E402  (after the skips: it needs the extra)

pytestmark = [
    # Deliberately short fits (max_iter=30): ConvergenceWarning is expected and says nothing here.
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
    # torch's exporter deep-copies its own pytree specs through a constructor torch has deprecated;
    # nothing a caller does avoids it (torch 2.13).
    pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)` is deprecated:FutureWarning"),
]

DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
# Relative to each output's scale (its largest magnitude), so that values near 0 (a regression's, a
# probability of 1e-50) are not held to a precision their inputs never had.
TOLERANCE = {np.float32: 1e-5, np.float64: 1e-10}
N_TRAIN, N_TEST = 200, 1000
RNG = np.random.default_rng(0)
X_ALL = RNG.normal(size=(N_TRAIN + N_TEST, 5))
_SIGN = (X_ALL[:, :3] > 0).astype(int)  # (n, 3): three 0/1 columns that the features decide


def _small(**params: Any) -> dict[str, Any]:
    size = {} if "module" in params else {"hidden_layer_sizes": (8,)}  # a module sizes itself
    return {**size, "max_iter": 30, "random_state": 0, **params}


def _onnx_outputs(model: Any, X_sample: Any, X: Any, options: Any = None) -> dict[str, Any]:
    """The outputs of ``model`` converted by skl2onnx's to_onnx and run by onnxruntime on ``X``."""
    onx = skl2onnx.to_onnx(model, X_sample, options=options)
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: X}), strict=True))


def _assert_close(got: Any, want: Any, tolerance: float) -> None:
    scale = float(np.abs(want).max())
    np.testing.assert_allclose(got, want, rtol=tolerance, atol=tolerance * scale)


def _differences(got: Any, want: Any) -> tuple[float, float]:
    """Largest absolute and relative difference (relative to the reference, where it is not 0)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    absolute = np.abs(got - want)
    relative = absolute / np.where(want == 0, 1.0, np.abs(want))
    return float(absolute.max()), float(relative.max())


def _check_classifier(pipe: Any, X: Any, X_sample: Any, tolerance: float) -> tuple[float, float]:
    """onnxruntime's labels are predict's, all of them; its probabilities predict_proba's, within
    ``tolerance`` relative, in predict_proba's dtype."""
    out = _onnx_outputs(pipe, X_sample, X, options={TorchClassifier: {"zipmap": False}})
    assert list(out) == ["label", "probabilities"]
    want_labels, want_proba = pipe.predict(X), pipe.predict_proba(X)
    assert out["label"].shape == want_labels.shape
    assert (out["label"] == want_labels).all()  # int64 labels compare by value with float or bool ones
    assert out["probabilities"].dtype == want_proba.dtype
    _assert_close(out["probabilities"], want_proba, tolerance)
    return _differences(out["probabilities"], want_proba)


def _check_regressor(model: Any, X: Any, X_sample: Any, tolerance: float) -> tuple[float, float]:
    out = _onnx_outputs(model, X_sample, X)
    assert list(out) == ["variable"]
    want = model.predict(X)
    got = out["variable"]  # (n_samples, n_outputs) even for one output, as skl2onnx writes MLPRegressor's
    assert got.dtype == want.dtype and got.shape == (len(X), model.n_outputs_)
    _assert_close(got.reshape(want.shape), want, tolerance)
    return _differences(got.reshape(want.shape), want)


# --- the cases: (name, build) -> a fitted model, X_test, X_sample, tolerance -------------------------

Case = tuple[Any, Any, Any, float]


def _scaled(dtype: Any, y: Any, **params: Any) -> Case:
    X = X_ALL.astype(dtype)
    pipe = make_pipeline(StandardScaler(), TorchClassifier(**_small(**params)))
    return pipe.fit(X[:N_TRAIN], y[:N_TRAIN]), X[N_TRAIN:], X[:1], TOLERANCE[dtype]


_PAIR = _SIGN[:, 0] + _SIGN[:, 1]  # 0, 1 or 2
# Each of MLP's four hidden activations appears in one case; the default is relu.
CLASSIFIERS: dict[str, Callable[[Any], Case]] = {
    "binary, identity": lambda dtype: _scaled(dtype, _SIGN[:, 0], activation="identity"),
    "multiclass, tanh": lambda dtype: _scaled(dtype, np.array([10, 20, 30])[_PAIR], activation="tanh"),
    "strings, logistic": lambda dtype: _scaled(
        dtype, np.array(["ant", "bee", "cat"])[_PAIR], activation="logistic"
    ),
    "floats": lambda dtype: _scaled(dtype, _PAIR.astype(np.float64) * 2),
    "booleans": lambda dtype: _scaled(dtype, _SIGN[:, 0].astype(bool)),
    "multilabel": lambda dtype: _scaled(dtype, _SIGN),
    "one class": lambda dtype: _scaled(dtype, np.full(len(X_ALL), 7)),
    # L-BFGS trains in float64 whatever X is: float32 X then gets float64 probabilities, as predict's.
    "lbfgs": lambda dtype: _scaled(dtype, _PAIR, solver="lbfgs", max_iter=20),
}
# float64 where its graph differs from float32's (constants, casts, the upstream converters), not
# where only the labels do: each export costs torch's exporter about a second.
_LABELS_ONLY = {"strings, logistic", "floats", "booleans"}
CLASSIFIER_CASES = [
    pytest.param(case, dtype, id=f"{case}-{np.dtype(dtype).name}")
    for case in CLASSIFIERS
    for dtype in (np.float32, np.float64)
    if dtype == np.float32 or case not in _LABELS_ONLY
]


class _Residual(nn.Module):
    """A module of one's own: a residual block with layer norm, SiLU and dropout (off in eval)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.inp, self.block = (
            nn.Linear(n_in, 16),
            nn.Sequential(nn.LayerNorm(16), nn.SiLU(), nn.Linear(16, 16)),
        )
        self.drop, self.out = nn.Dropout(0.1), nn.Linear(16, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h: torch.Tensor = self.inp(x)
        out: torch.Tensor = self.out(self.drop(h + self.block(h)))
        return out


def _custom(dtype: Any) -> Case:
    return _scaled(dtype, _PAIR, module=_Residual)


def _polynomial(dtype: Any) -> Case:
    X = X_ALL[:, :2].astype(dtype)  # the circles of the guide: two features, squared
    y = (np.hypot(X[:, 0], X[:, 1]) > 1).astype(int)
    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            # No constant column: skl2onnx writes it as float32 into a float64 graph, which onnxruntime
            # refuses (MLPClassifier's export fails alike); the network's first layer has a bias anyway.
            ("poly", PolynomialFeatures(degree=2, include_bias=False)),
            ("net", TorchClassifier(**_small(learning_rate_init=0.01))),
        ]
    )
    return pipe.fit(X[:N_TRAIN], y[:N_TRAIN]), X[N_TRAIN:], X[:1], TOLERANCE[dtype]


def _pca(dtype: Any) -> Case:
    X = X_ALL.astype(dtype)
    pipe = make_pipeline(StandardScaler(), PCA(n_components=3), TorchClassifier(**_small()))
    return pipe.fit(X[:N_TRAIN], _SIGN[:N_TRAIN, 0]), X[N_TRAIN:], X[:1], TOLERANCE[dtype]


WORDS = np.array(str.split("the cat sat on a mat dog barked at post cats purr and sleep dogs bark fetch"))
TEXTS = np.array([" ".join(RNG.choice(WORDS, 6)) for _ in range(N_TRAIN + N_TEST)])
TOPIC = np.array(["cat", "dog"])[(np.char.count(TEXTS, "dog") > np.char.count(TEXTS, "cat")).astype(int)]


def _text(dtype: Any) -> Case:
    pipe = make_pipeline(TfidfVectorizer(dtype=dtype), TorchClassifier(**_small(hidden_layer_sizes=(16,))))
    pipe.fit(TEXTS[:N_TRAIN], TOPIC[:N_TRAIN])
    # skl2onnx's TF-IDF runs in float32 whatever the dtype: float64 agrees to float32's precision.
    tolerance = 1e-5 if dtype == np.float32 else 1e-6
    return pipe, TEXTS[N_TRAIN:].reshape(-1, 1), TEXTS[:1].reshape(-1, 1), tolerance


WORKFLOWS: dict[str, Callable[[Any], Case]] = {
    "custom module": _custom,
    "polynomial": _polynomial,
    "pca": _pca,
    "tf-idf": _text,
}
# skl2onnx's text converters normalise words in the en_US locale by default, which onnxruntime cannot
# start without; "C" is on every machine (and lowercases only ASCII letters).
TEXT_OPTIONS = {TfidfVectorizer: {"locale": "C"}}


def _regressor(dtype: Any, n_outputs: int, **params: Any) -> Case:
    X = X_ALL.astype(dtype)
    Y = X_ALL[:, :n_outputs] + X_ALL[:, -1:]  # (n_samples, n_outputs)
    y = Y[:, 0] if n_outputs == 1 else Y
    if params.get("loss") == "poisson":
        y = np.exp(y / 2)  # counts' means: positive
    model = TorchRegressor(**_small(**params)).fit(X[:N_TRAIN], y[:N_TRAIN])  # the estimator alone
    return model, X[N_TRAIN:], X[:1], TOLERANCE[dtype]


REGRESSORS: dict[str, Callable[[Any], Case]] = {
    "one output": lambda dtype: _regressor(dtype, 1),
    "3 outputs": lambda dtype: _regressor(dtype, 3),
    "poisson": lambda dtype: _regressor(dtype, 1, loss="poisson"),
}


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    onnx_export.register()


# --- the laws ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "dtype"), CLASSIFIER_CASES)
def test_onnxruntime_agrees_with_predict_and_predict_proba(case: str, dtype: Any) -> None:
    _check_classifier(*CLASSIFIERS[case](dtype))


@DTYPES
@pytest.mark.parametrize("case", list(WORKFLOWS))
def test_the_guides_workflows_export_to_one_file_that_agrees(case: str, dtype: Any) -> None:
    pipe, X, X_sample, tolerance = WORKFLOWS[case](dtype)
    options = {TorchClassifier: {"zipmap": False}, **TEXT_OPTIONS}
    out = _onnx_outputs(pipe, X_sample, X, options=options)
    assert (out["label"] == pipe.predict(X.ravel() if case == "tf-idf" else X)).all()
    want = pipe.predict_proba(X.ravel() if case == "tf-idf" else X)
    _assert_close(out["probabilities"], want, tolerance)


@DTYPES
@pytest.mark.parametrize("case", list(REGRESSORS))
def test_onnxruntime_agrees_with_the_regressors_predict(case: str, dtype: Any) -> None:
    _check_regressor(*REGRESSORS[case](dtype))


def test_outputs_are_those_skl2onnx_gives_mlp() -> None:
    from sklearn.neural_network import MLPClassifier

    X, y = X_ALL[:N_TRAIN].astype(np.float32), np.array(["no", "yes"])[_SIGN[:N_TRAIN, 0]]
    ours = TorchClassifier(**_small()).fit(X, y)
    mlp = MLPClassifier(hidden_layer_sizes=(8,), max_iter=30, random_state=0).fit(X, y)
    for options in (None, {"zipmap": False}, {"zipmap": "columns"}):
        got = skl2onnx.to_onnx(ours, X[:1], options=options)
        want = skl2onnx.to_onnx(mlp, X[:1], options=options)
        assert [(o.name, o.type) for o in got.graph.output] == [(o.name, o.type) for o in want.graph.output]


def test_export_changes_neither_the_estimator_nor_the_sample() -> None:
    pipe, X, X_sample, _ = CLASSIFIERS["multiclass, tanh"](np.float32)
    before, sample = pickle.dumps(pipe), X_sample.copy()
    parameters = [p.detach().clone() for p in pipe[-1].module_.parameters()]
    _onnx_outputs(pipe, X_sample, X[:5], options={TorchClassifier: {"zipmap": False}})
    assert pickle.dumps(pipe) == before and not pipe[-1].module_.training
    assert all(torch.equal(p, q) for p, q in zip(pipe[-1].module_.parameters(), parameters, strict=True))
    np.testing.assert_array_equal(X_sample, sample)


def test_one_row_and_many_rows_run_through_the_same_file() -> None:
    onnx_export.register()  # a second time: the same converters, nothing new
    pipe, X, X_sample, tolerance = CLASSIFIERS["binary, identity"](np.float32)
    onx = skl2onnx.to_onnx(pipe, X_sample, options={TorchClassifier: {"zipmap": False}})
    session = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    for rows in (X[:1], X[:2], X):
        labels, proba = session.run(None, {"X": rows})
        assert (labels == pipe.predict(rows)).all()
        _assert_close(proba, pipe.predict_proba(rows), tolerance)


class _Branchy(nn.Module):
    """Fits fine, but its forward branches in Python on a value: torch.export cannot trace it."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x)
        return out if x.sum() > 0 else -out


def test_a_module_the_exporter_cannot_trace_is_a_type_error_with_torchs_reason() -> None:
    X = X_ALL[:N_TRAIN].astype(np.float32)
    pipe = make_pipeline(StandardScaler(), TorchClassifier(**_small(module=_Branchy)))
    pipe.fit(X, _SIGN[:N_TRAIN, 0])
    with pytest.raises(TypeError, match=r"TorchClassifier's module \(_Branchy\) cannot be exported") as info:
        skl2onnx.to_onnx(pipe, X[:1], options={TorchClassifier: {"zipmap": False}})
    root = info.value.__cause__
    while root is not None and root.__cause__ is not None:
        root = root.__cause__
    assert root is not None and type(root).__name__ in str(info.value)  # torch's reason, named
    assert "data-dependent" in str(info.value)


def test_a_step_skl2onnx_cannot_convert_is_named_in_its_error() -> None:
    # skl2onnx's own error, raised before our converter runs: it names the step by its class.
    X = X_ALL[:N_TRAIN].astype(np.float32)
    pipe = make_pipeline(SplineTransformer(), TorchClassifier(**_small())).fit(X, _SIGN[:N_TRAIN, 0])
    with pytest.raises(RuntimeError, match=re.escape("SplineTransformer")):
        skl2onnx.to_onnx(pipe, X[:1])


def test_zipmap_where_it_cannot_hold_the_output_is_a_value_error_saying_how() -> None:
    for y, dtype in ((_SIGN, np.float32), (_SIGN[:, 0], np.float64)):  # multilabel; float64 probabilities
        X = X_ALL[:N_TRAIN].astype(dtype)
        clf = TorchClassifier(**_small()).fit(X, y[:N_TRAIN])
        with pytest.raises(ValueError, match=r"'zipmap': False"):
            skl2onnx.to_onnx(clf, X[:1])


def test_a_sample_of_the_wrong_width_is_a_value_error() -> None:
    X = X_ALL[:N_TRAIN].astype(np.float32)
    clf = TorchRegressor(**_small()).fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"fitted on 5 features, but its ONNX input has 3"):
        skl2onnx.to_onnx(clf, X[:1, :3])


def test_an_opset_older_than_torchs_exporter_writes_is_a_value_error() -> None:
    X = X_ALL[:N_TRAIN].astype(np.float32)
    clf = TorchRegressor(**_small()).fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"target_opset=17 is older than 18"):
        skl2onnx.to_onnx(clf, X[:1], target_opset=17)


DEPLOYMENT = pathlib.Path(__file__).with_name("docs").joinpath("deployment.md").read_text()
DOC_BLOCKS = re.findall(r"^```py\n(.*?)^```", DEPLOYMENT, re.S | re.M)


@pytest.mark.parametrize(
    "block", DOC_BLOCKS, ids=[f"deployment.md:py{i}" for i, _ in enumerate(DOC_BLOCKS, 1)]
)
def test_the_examples_of_docs_deployment_run(block: str) -> None:
    """The ``py`` blocks of docs/deployment.md, as written (test_demo.py runs only ``python`` blocks,
    without the extra)."""
    exec(compile(block, "docs/deployment.md", "exec"), {"__name__": "docs"})


def test_docs_deployment_has_its_examples() -> None:
    assert len(DOC_BLOCKS) == 2


def _table() -> None:
    """Print each case's largest absolute and relative differences from predict_proba / predict."""
    onnx_export.register()
    warnings.simplefilter("ignore")
    print(f"{'case':<18} {'dtype':<8} {'labels':>7} {'max abs':>9} {'max rel':>9}")
    for name, build in {**CLASSIFIERS, **WORKFLOWS, **REGRESSORS}.items():
        for dtype in (np.float32, np.float64):
            model, X, X_sample, _ = build(dtype)
            regressor = name in REGRESSORS
            options = None if regressor else {TorchClassifier: {"zipmap": False}, **TEXT_OPTIONS}
            out = _onnx_outputs(model, X_sample, X, options=options)
            X_ = X.ravel() if name == "tf-idf" else X
            if regressor:
                want = model.predict(X_)
                got, agree = out["variable"].reshape(want.shape), "-"
            else:
                got, want = out["probabilities"], model.predict_proba(X_)
                agree = f"{np.mean(out['label'] == model.predict(X_)):.0%}"
            absolute, relative = _differences(got, want)
            print(f"{name:<18} {np.dtype(dtype).name:<8} {agree:>7} {absolute:9.1e} {relative:9.1e}")


if __name__ == "__main__":
    _table()
