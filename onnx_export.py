"""ONNX export for TorchClassifier and TorchRegressor, through skl2onnx: one file for a whole Pipeline.

Copy this file beside bridge.py and estimators.py if you serve with ONNX; the two run without it. It
needs the ``onnx`` extra (onnx, onnxscript, skl2onnx, onnxruntime to run the result). ``register()``
tells skl2onnx how to convert the two estimators; after it, skl2onnx's own ``to_onnx`` and
``convert_sklearn`` turn a fitted Pipeline of scikit-learn steps that ends in one of them, or the
estimator alone, into a single ONNX graph, with the outputs skl2onnx gives MLPClassifier and
MLPRegressor:

    register()
    onx = skl2onnx.to_onnx(pipeline, X[:1], options={"zipmap": False})  # outputs: label, probabilities

What the converter writes for the estimator: a Cast of its input to the network's dtype; the network's
graph as torch's exporter (``torch.onnx.export(..., dynamo=True)``) writes it; the output activation
(softmax, a sigmoid per output, exp for Poisson, nothing for squared error); for a classifier the
label: the argmax (of the raw outputs under softmax, as predict takes it) looked up in ``classes_``, or
for multilabel the indicator ``p > 0.5``. Probabilities and predictions come out in the wider of the
input's dtype and the network's, as predict's do. Labels follow skl2onnx's rule for MLPClassifier:
int64 for integer, boolean and integral float classes, strings for string classes.

Rules: export never changes the estimator (it exports a copy of ``module_``); a module torch cannot
export is a TypeError naming the estimator and the module and giving torch's reason; skl2onnx's own
error names a step it has no converter for.
"""
# Settings a copy needs, since it cannot lean on this repository's pyproject.toml: scikit-learn and
# skl2onnx ship no types.
# mypy: disable-error-code="import-untyped"

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import torch

try:
    import onnx
    import onnx.compose
    import onnx.inliner
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import (
        DoubleTensorType,
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )
except ImportError as err:  # the extra is optional: say what to install
    raise ImportError(
        f"onnx_export needs onnx, onnxscript and skl2onnx ({err}); install them with "
        "pip install onnx onnxscript skl2onnx onnxruntime (or this project's extra: pip install -e '.[onnx]')"
    ) from err

# estimators.py sits beside this file: both at a project's top level, or both inside a package of yours.
if TYPE_CHECKING:
    # mypy reads only this branch; whichever of the two imports exists gives the real types.
    from estimators import *  # type: ignore[import-not-found, unused-ignore]  # noqa: F403

    from .estimators import *  # type: ignore[import-not-found, unused-ignore]  # noqa: F403
elif __package__:  # inside a package: estimators is this module's sibling
    from .estimators import TorchClassifier, TorchRegressor
else:  # at the top level (a copy, this checkout, or pip's install)
    from estimators import TorchClassifier, TorchRegressor

__all__ = ["register"]

# skl2onnx's objects, untyped: the operator being converted, its scope and the graph container, and
# the classes of its variables' types (FloatTensorType...).
Operator: TypeAlias = Any
Scope: TypeAlias = Any
Container: TypeAlias = Any
TensorType: TypeAlias = Any

# torch's exporter writes ONNX opset 18 or newer; skl2onnx's target_opset must allow that.
_OLDEST_OPSET = 18


def register() -> None:
    """Register the converters of TorchClassifier and TorchRegressor with skl2onnx; calling it again
    does nothing new."""
    update_registered_converter(
        TorchClassifier,
        "TorchSklearnBridgeClassifier",
        _classifier_shapes,
        _convert_classifier,
        # Declaring zipmap lets skl2onnx's classifier parser add ZipMap (its default) or leave it out;
        # its ZipMap reads nocl too, of which only False (keys are the classes themselves) holds here.
        options={"zipmap": [True, False, "columns"], "nocl": [False]},
    )
    update_registered_converter(
        TorchRegressor, "TorchSklearnBridgeRegressor", _regressor_shapes, _convert_regressor
    )


# --- shapes: what each output is, before any node is written -----------------------------------------


def _classifier_shapes(operator: Operator) -> None:
    est = operator.raw_operator
    _check_input(operator)
    n = operator.inputs[0].get_first_dimension()
    if _multilabel(est):  # (n_samples, n_labels) indicator and probabilities
        operator.outputs[0].type = Int64TensorType([n, est.n_outputs_])
        operator.outputs[1].type = _tensor_type(operator)([n, est.n_outputs_])
        return
    _, label_type = _classes(est)
    operator.outputs[0].type = label_type([n])
    operator.outputs[1].type = _tensor_type(operator)([n, len(est.classes_)])


def _regressor_shapes(operator: Operator) -> None:
    _check_input(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _tensor_type(operator)([n, operator.raw_operator.n_outputs_])


def _check_input(operator: Operator) -> None:
    est = operator.raw_operator
    if len(operator.inputs) != 1:
        raise ValueError(
            f"{type(est).__name__} takes one input of shape (n_samples, n_features), got "
            f"{len(operator.inputs)}: give to_onnx one array, or put a step that joins the columns first"
        )
    shape = operator.inputs[0].get_second_dimension()
    if shape is not None and shape != est.n_features_in_:
        raise ValueError(
            f"{type(est).__name__} was fitted on {est.n_features_in_} features, but its ONNX input has "
            f"{shape}; give to_onnx a sample with the columns it was fitted on"
        )


# --- converters: the nodes ---------------------------------------------------------------------------


def _convert_classifier(scope: Scope, operator: Operator, container: Container) -> None:
    est = operator.raw_operator
    label, probabilities = operator.outputs[0].full_name, operator.outputs[1].full_name
    multilabel = _multilabel(est)
    if container.get_options(est, dict(zipmap=True))["zipmap"] is not False:
        _check_zipmap(operator, multilabel)
    raw, dtype = _embed_module(scope, operator, container)  # (n_samples, n_outputs), network's dtype
    proba = _name(scope, "proba")
    if est.out_activation_ == "softmax":
        container.add_node("Softmax", raw, proba, axis=1, name=_name(scope, "Softmax"))
    elif multilabel:
        container.add_node("Sigmoid", raw, proba, name=_name(scope, "Sigmoid"))
    elif len(est.classes_) == 1:  # a single class seen in training: certain, whatever the network says
        shape = _name(scope, "shape")
        container.add_node("Shape", raw, shape, name=_name(scope, "Shape"))
        one = onnx.helper.make_tensor("value", _onnx_type(dtype), [1], [1.0])
        container.add_node("ConstantOfShape", shape, proba, value=one, name=_name(scope, "Ones"))
    else:  # binary: one logistic output p, probabilities [1 - p, p]
        p, q = _name(scope, "p"), _name(scope, "q")
        container.add_node("Sigmoid", raw, p, name=_name(scope, "Sigmoid"))
        container.add_node("Sub", [_constant(scope, container, 1.0, dtype), p], q, name=_name(scope, "Sub"))
        container.add_node("Concat", [q, p], proba, axis=1, name=_name(scope, "Concat"))
    _cast(scope, container, proba, probabilities, dtype, _output_dtype(operator))
    if multilabel:  # predict's indicator, thresholded in the network's dtype like predict's
        above = _name(scope, "above")
        half = _constant(scope, container, 0.5, dtype)
        container.add_node("Greater", [proba, half], above, name=_name(scope, "Greater"))
        container.add_node("Cast", above, label, to=onnx.TensorProto.INT64, name=_name(scope, "Cast"))
        return
    # Under softmax predict takes the argmax of the raw outputs, which rounding cannot tie.
    index = _name(scope, "index")
    scores = raw if est.out_activation_ == "softmax" else proba
    container.add_node("ArgMax", scores, index, axis=1, keepdims=0, name=_name(scope, "ArgMax"))
    classes, _ = _classes(est)
    table = _name(scope, "classes")
    container.initializers.append(onnx.numpy_helper.from_array(classes, table))
    container.add_node("Gather", [table, index], label, axis=0, name=_name(scope, "Gather"))


def _check_zipmap(operator: Operator, multilabel: bool) -> None:
    """skl2onnx's default ZipMap (one dict per row) holds one float32 probability per class."""
    name = type(operator.raw_operator).__name__
    fix = f"convert with options={{{name}: {{'zipmap': False}}}} for a (n_samples, n_classes) tensor"
    if multilabel:
        raise ValueError(
            f"a multilabel {name} gives one 0/1 label per column, which ZipMap cannot hold; {fix}"
        )
    if _output_dtype(operator) != torch.float32:
        raise ValueError(f"{name}'s probabilities are float64 here, and ZipMap holds float32 only; {fix}")


def _convert_regressor(scope: Scope, operator: Operator, container: Container) -> None:
    est = operator.raw_operator
    raw, dtype = _embed_module(scope, operator, container)  # (n_samples, n_outputs), network's dtype
    if est.out_activation_ == "exp":  # Poisson: the network gives log-means
        mean = _name(scope, "mean")
        container.add_node("Exp", raw, mean, name=_name(scope, "Exp"))
        raw = mean
    _cast(scope, container, raw, operator.outputs[0].full_name, dtype, _output_dtype(operator))


def _embed_module(scope: Scope, operator: Operator, container: Container) -> tuple[str, torch.dtype]:
    """Write the graph of the estimator's network into ``container``; return the name of its raw
    outputs (n_samples, n_outputs) and their dtype, the network's."""
    est = operator.raw_operator
    opset = container.target_opset
    if opset is None or opset < _OLDEST_OPSET:
        raise ValueError(
            f"target_opset={opset} is older than {_OLDEST_OPSET}, the oldest torch's exporter writes; "
            f"convert with target_opset={_OLDEST_OPSET} or newer (or leave it out)"
        )
    weight = next(est.module_.parameters())
    model = _export(est, opset, weight)
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise TypeError(
            f"{type(est).__name__}'s module ({type(est.module_).__name__}) exports with "
            f"{len(graph.input)} inputs and {len(graph.output)} outputs; the estimator needs one "
            "tensor in, one tensor out"
        )
    # Every name of the network's graph gets a prefix the scope has handed out, so none collides with
    # a name of the Pipeline's other steps.
    prefix = scope.get_unique_variable_name(f"{type(est.module_).__name__}_")
    graph = onnx.compose.add_prefix_graph(graph, prefix)
    for tensor in graph.initializer:
        container.initializers.append(tensor)
    for node in graph.node:
        container.nodes.append(node)
        container.node_domain_version_pair_sets.add((node.domain, _opset_of(model, node.domain)))
    # In: the step's input cast to the network's dtype. Out: the network's output, renamed.
    source, target = operator.inputs[0].full_name, graph.input[0].name
    if _input_dtype(operator) == weight.dtype:
        container.add_node("Identity", source, target, name=_name(scope, "Identity"))
    else:
        container.add_node("Cast", source, target, to=_onnx_type(weight.dtype), name=_name(scope, "Cast"))
    raw = _name(scope, "raw")
    container.add_node("Identity", graph.output[0].name, raw, name=_name(scope, "Identity"))
    return raw, weight.dtype


def _export(est: Any, opset: int, weight: torch.Tensor) -> onnx.ModelProto:
    """The network's ONNX model at ``opset``, any number of rows, from a copy of ``module_``."""
    module = copy.deepcopy(est.module_)  # the exporter runs the module: est's copy stays untouched
    # Two rows: torch.export treats a dimension of size 1 as fixed, the batch must stay free.
    sample = torch.zeros(2, est.n_features_in_, dtype=weight.dtype, device=weight.device)
    rows = torch.export.Dim("n_samples")
    try:
        program = torch.onnx.export(
            module, (sample,), dynamo=True, dynamic_shapes=({0: rows},), opset_version=opset, verbose=False
        )
    except Exception as err:  # torch raises many kinds; the reason is in the innermost one
        raise TypeError(
            f"{type(est).__name__}'s module ({type(module).__name__}) cannot be exported to ONNX: "
            f"torch.onnx.export(..., dynamo=True) failed: {_reason(err)}. Its forward must be "
            "traceable by torch.export for any number of rows (no Python branching on values, no "
            "NumPy calls); see torch.export's documentation"
        ) from err
    if program is None:  # typed Optional: only the deprecated exporter returns None
        raise TypeError(f"torch.onnx.export returned no program for {type(module).__name__}")
    model = program.model_proto
    return onnx.inliner.inline_local_functions(model) if model.functions else model


# --- small helpers -----------------------------------------------------------------------------------


def _multilabel(est: Any) -> bool:
    return bool(est.out_activation_ == "logistic" and est.n_outputs_ > 1)


def _classes(est: Any) -> tuple[np.ndarray[Any, Any], TensorType]:
    """``classes_`` as ONNX holds labels, skl2onnx's rule for MLPClassifier: int64 for integers,
    booleans and integral floats, strings for strings; and the label's tensor type."""
    classes = np.asarray(est.classes_)
    if classes.dtype.kind in "biu" or (classes.dtype.kind == "f" and np.all(classes == np.round(classes))):
        as_int = classes.astype(np.int64)
        if np.array_equal(as_int, classes):
            return as_int, Int64TensorType
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes.tolist()):
        return classes.astype(object), StringTensorType
    raise TypeError(
        f"{type(est).__name__}'s classes_ ({classes.dtype}: {classes[:3].tolist()}...) cannot be ONNX "
        "labels, which are int64 or strings; fit on integer or string labels"
    )


def _input_dtype(operator: Operator) -> torch.dtype:
    """The dtype predict validates this input to: float32 stays, anything else becomes float64."""
    return torch.float32 if isinstance(operator.inputs[0].type, FloatTensorType) else torch.float64


def _output_dtype(operator: Operator) -> torch.dtype:
    weight = next(operator.raw_operator.module_.parameters())
    return torch.promote_types(_input_dtype(operator), weight.dtype)


def _tensor_type(operator: Operator) -> TensorType:
    return FloatTensorType if _output_dtype(operator) == torch.float32 else DoubleTensorType


def _onnx_type(dtype: torch.dtype) -> int:
    return int(onnx.TensorProto.FLOAT if dtype == torch.float32 else onnx.TensorProto.DOUBLE)


def _cast(
    scope: Scope, container: Container, source: str, target: str, have: torch.dtype, want: torch.dtype
) -> None:
    if have == want:
        container.add_node("Identity", source, target, name=_name(scope, "Identity"))
    else:
        container.add_node("Cast", source, target, to=_onnx_type(want), name=_name(scope, "Cast"))


def _constant(scope: Scope, container: Container, value: float, dtype: torch.dtype) -> str:
    name = _name(scope, "constant")
    container.add_initializer(name, _onnx_type(dtype), [], [value])
    return name


def _name(scope: Scope, seed: str) -> str:
    return str(scope.get_unique_variable_name(seed))


def _opset_of(model: onnx.ModelProto, domain: str) -> int:
    return int(next(o.version for o in model.opset_import if o.domain == domain))


def _reason(err: BaseException) -> str:
    """The innermost cause's first lines: torch wraps the reason in advice about filing issues."""
    while err.__cause__ is not None:
        err = err.__cause__
    lines = [line for line in str(err).splitlines() if line.strip()][:3]
    return f"{type(err).__name__}: {' '.join(lines)}"
