"""Laws and edge cases of bridge.py. NumPy is the reference: expectations are stated in NumPy terms.

After the round-trip pair's law and shares_memory, one section per rule of bridge.py's docstring (the
README's rules table), in order; each helper sits above the tests of the rule it serves.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
import tracemalloc
import types
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import bridge
from bridge import Device, NDArray, _device, numpy_dtype, shares_memory, to_numpy, to_tensor, torch_dtype

# CI-sized by default; LAWS_MAX_EXAMPLES=2000 pytest for a deeper search.
LAWS = settings(max_examples=int(os.environ.get("LAWS_MAX_EXAMPLES", "150")), deadline=None)
SUPPORTED = [
    np.dtype(name)
    for name in [
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    ]
]
# Every NumPy scalar type of a supported dtype: np.ulonglong, np.longlong, np.intc... are aliases that
# compare equal to a SUPPORTED dtype but are distinct types, which torch.from_numpy treats differently.
ALIASES = sorted(
    {np.dtype(t).type: np.dtype(t) for t in set(np.sctypeDict.values()) if np.dtype(t) in SUPPORTED}.values(),
    key=lambda d: (d.str, d.type.__name__),
)
# NumPy 1.26's stubs leave np.ma.masked_array untyped, a call mypy --strict refuses; 2.x types it.
masked_array: Callable[..., Any] = np.ma.masked_array


def bits(a: NDArray) -> bytes:
    """The values of ``a`` as bytes, in logical order and native byte order: equal bits, equal bytes."""
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")).tobytes()


def tensor_bits(t: torch.Tensor) -> bytes:
    """The values of ``t`` as bytes, computed by torch and NumPy alone (no bridge)."""
    return bits(t.detach().resolve_conj().resolve_neg().cpu().numpy())


@st.composite
def values(draw: st.DrawFn, dtypes: list[np.dtype[Any]] = ALIASES) -> NDArray:
    """Arrays of any shape (0-d and empty too) with any bit pattern: NaN payloads, -0.0, subnormals,
    in any NumPy alias of a supported dtype."""
    dtype = draw(st.sampled_from(dtypes))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
    if dtype == np.bool_:
        return np.array(draw(hnp.arrays(dtype, shape)))  # for shape (), hypothesis gives a scalar
    size = int(np.prod(shape)) * dtype.itemsize
    from_bytes = st.binary(min_size=size, max_size=size).map(
        lambda raw: np.frombuffer(raw, dtype).reshape(shape).copy()
    )
    return np.array(draw(st.one_of(hnp.arrays(dtype, shape), from_bytes)))


def _strided(a: NDArray) -> NDArray:
    if a.ndim == 0:
        return a
    big = np.zeros((*a.shape[:-1], 2 * a.shape[-1]), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


def _offset(a: NDArray) -> NDArray:
    flat = np.zeros(a.size + 1, a.dtype)
    flat[1:] = a.ravel()
    return flat[1:].reshape(a.shape)


def _misaligned(a: NDArray, by: int = 1) -> NDArray:
    raw = np.zeros(a.nbytes + by, np.uint8)
    out = raw[by:].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def _field(a: NDArray) -> NDArray:
    """``a`` as a field of an aligned structured array: strides need not be multiples of the item size."""
    record = np.zeros(a.shape, np.dtype([("v", a.dtype), ("pad", np.uint8)], align=True))
    record["v"] = a
    field: NDArray = record["v"]
    return field


def _read_only(a: NDArray) -> NDArray:
    out = a.copy()
    out.flags.writeable = False
    return out


LAYOUTS: dict[str, Callable[[NDArray], NDArray]] = {
    "C": lambda a: a,
    "Fortran": lambda a: np.array(a, order="F"),
    "transposed": lambda a: a.T,
    "strided": _strided,
    "offset": _offset,
    "negative strides": lambda a: np.flip(np.flip(a).copy()) if a.ndim else a,  # flip of 0-d: a scalar
    "inner axis reversed": lambda a: a[..., ::-1].copy()[..., ::-1] if a.ndim else a,
    "structured field": _field,
    "read-only": _read_only,
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "misaligned": _misaligned,
    "frombuffer(bytes)": lambda a: np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape),
    "broadcast_to": lambda a: np.broadcast_to(a, (2, *a.shape)),
}


@st.composite
def arrays(draw: st.DrawFn) -> NDArray:
    """Arrays of :func:`values` in one or two LAYOUTS applied in turn (a field of a transposed array...)."""
    a = draw(values())
    for name in draw(st.lists(st.sampled_from(sorted(LAYOUTS)), min_size=1, max_size=2)):
        a = LAYOUTS[name](a)
    return a


TENSOR_VIEWS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "transposed": lambda t: t.mT if t.ndim >= 2 else t,
    "inner sliced": lambda t: t[..., ::2] if t.ndim else t,
    "outer sliced": lambda t: t[1:] if t.ndim else t,
    "inner expanded": lambda t: t.unsqueeze(-1).expand(*t.shape, 3),  # like torch.ones(3, 1).expand(3, 4)
    "outer expanded": lambda t: t.unsqueeze(0).expand(3, *t.shape),
    "conj": lambda t: t.conj() if t.is_complex() else t,
    "neg": lambda t: t.conj().imag if t.is_complex() else t,  # a real tensor with its negative bit set
}


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    """CPU tensors of every NumPy dtype, maybe requiring grad, under up to three TENSOR_VIEWS in turn:
    conjugate or negative views of transposed, sliced or expanded ones, and so on."""
    t = torch.from_numpy(draw(values(SUPPORTED)))
    if (t.is_floating_point() or t.is_complex()) and draw(st.booleans()):
        t = t.clone().requires_grad_()
    for name in draw(st.lists(st.sampled_from(sorted(TENSOR_VIEWS)), max_size=3)):
        t = TENSOR_VIEWS[name](t)
    return t


def fill_one(x: torch.Tensor | NDArray) -> None:
    """Write 1 (True for bool) to every element of ``x``, in place."""
    if isinstance(x, torch.Tensor):
        x.fill_(1)
    else:
        x[...] = 1


# --- the round-trip pair's law, and shares_memory -------------------------------------------------


@LAWS
@given(arrays())
def test_roundtrip_is_bit_exact(a: NDArray) -> None:
    back = to_numpy(to_tensor(a))
    assert back.shape == a.shape
    assert back.dtype == a.dtype.newbyteorder("=")
    assert bits(back) == bits(a)


@LAWS
@given(
    st.integers(0, 11),
    st.integers(0, 12),
    st.integers(1, 3),
    st.integers(0, 11),
    st.integers(0, 12),
    st.integers(1, 3),
)
def test_shares_memory_agrees_with_numpy_on_slices(
    start_a: int, stop_a: int, step_a: int, start_b: int, stop_b: int, step_b: int
) -> None:
    base = np.zeros(12, np.float32)
    a, b = base[start_a:stop_a:step_a], base[start_b:stop_b:step_b]
    expected = bool(np.shares_memory(a, b))
    ta, tb = (
        torch.from_numpy(base)[start_a:stop_a:step_a],
        torch.from_numpy(base)[start_b:stop_b:step_b],
    )
    assert shares_memory(ta, tb) == shares_memory(ta, b) == shares_memory(a, tb) == expected


def test_shares_memory_is_exact_for_interleaved_views() -> None:
    t = torch.arange(10.0)
    assert not shares_memory(t[::2], t[1::2])
    assert shares_memory(t[::2], t[2::4])
    assert not shares_memory(torch.zeros(0), torch.zeros(0))
    assert shares_memory(t.conj(), t)  # a lazy conjugate is the same memory
    half = torch.zeros(6, dtype=torch.bfloat16)  # a dtype NumPy lacks
    assert shares_memory(half[::2], half[2:]) and not shares_memory(half[::2], half[1::2])


def test_shares_memory_rejects_other_types() -> None:
    with pytest.raises(TypeError, match="list"):
        shares_memory([1.0], np.zeros(1))  # type: ignore[arg-type]  # the wrong type is the test


def test_shares_memory_refuses_unstrided_tensors_and_meta_tensors_share_nothing() -> None:
    dense = torch.eye(2)
    with pytest.raises(TypeError, match="strided"):
        shares_memory(dense.to_sparse(), dense)
    with pytest.raises(TypeError, match="strided"):
        shares_memory(dense, torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged))
    meta = torch.zeros(4, device="meta")
    assert not shares_memory(meta, meta) and not shares_memory(meta, np.zeros(4))
    assert shares_memory(dense, dense[1:]) and not shares_memory(dense, dense.clone())


# --- rule 1: whatever NumPy accepts becomes a tensor; a tensor is returned as is ------------------


@pytest.mark.parametrize(
    ("x", "dtype"),
    [
        (3, torch.int64),
        (2.5, torch.float64),
        (True, torch.bool),
        (1j, torch.complex128),
        ([1, 2], torch.int64),
        ([[1.0], [2.0]], torch.float64),
        ((1, 2.5), torch.float64),
        ([], torch.float64),
    ],
)
def test_python_values_follow_numpy_type_inference(x: Any, dtype: torch.dtype) -> None:
    t = to_tensor(x)
    assert isinstance(t, torch.Tensor) and t.dtype == dtype and not t.requires_grad
    assert t.tolist() == np.asarray(x).tolist()


@pytest.mark.parametrize("dtype", SUPPORTED, ids=str)
def test_numpy_scalars_become_0d_tensors_of_their_dtype(dtype: np.dtype[Any]) -> None:
    scalar = np.iinfo(dtype).max if dtype.kind in "iu" else 1
    t = to_tensor(dtype.type(scalar))
    assert t.ndim == 0 and t.dtype == torch_dtype(dtype)
    assert to_numpy(t)[()] == dtype.type(scalar)


def test_ragged_sequences_raise_value_error() -> None:
    with pytest.raises(ValueError, match="list .*inhomogeneous.*same length"):  # NumPy's cause, quoted
        to_tensor([[1.0, 2.0], [3.0]])


def test_a_tensor_is_returned_as_is_unless_asked_otherwise() -> None:
    t = torch.ones(3, requires_grad=True)
    assert to_tensor(t) is t
    assert to_tensor(t, dtype=torch.float32, device="cpu", copy=False) is t
    copied = to_tensor(t, copy=True)
    assert not shares_memory(copied, t) and copied.grad_fn is not None  # autograd history is kept
    assert to_tensor(t, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match=r"copy=False.* to torch\.float64 on cpu"):
        to_tensor(t, dtype=torch.float64, copy=False)


# --- rule 2: to_tensor shares only with a writable, aligned, plain ndarray, uncast ----------------


def rule_2_allows_sharing(a: NDArray) -> bool:
    return bool(
        a.flags.writeable
        and a.flags.aligned
        and a.dtype.isnative
        and all(s >= 0 and s % a.itemsize == 0 for s in a.strides)
    )


@LAWS
@given(arrays(), st.sampled_from([None, "cpu", torch.device("cpu")]))
def test_to_tensor_shares_exactly_when_rule_2_allows(a: NDArray, device: str | None) -> None:
    before = bits(a)
    t = to_tensor(a, device=device)
    assert not t.requires_grad
    assert bits(a) == before, "to_tensor mutated its input"
    shares = rule_2_allows_sharing(a) and a.size > 0
    assert shares_memory(t, a) == shares
    fill_one(t)  # never a read-only alias (rule 3), so writing through it is always allowed
    assert bits(a) == (bits(np.ones_like(a)) if shares else before)


@LAWS
@given(arrays())
def test_copy_true_never_shares(a: NDArray) -> None:
    t = to_tensor(a, copy=True)
    assert not shares_memory(t, a)
    before = bits(a)
    fill_one(t)
    assert bits(a) == before


@LAWS
@given(arrays())
def test_copy_false_raises_exactly_when_sharing_is_impossible(a: NDArray) -> None:
    if rule_2_allows_sharing(a):
        t = to_tensor(a, copy=False)
        assert shares_memory(t, a) == (a.size > 0)
    else:
        with pytest.raises(ValueError, match="copy=False"):
            to_tensor(a, copy=False)


@LAWS
@given(values(), st.sampled_from([torch.float64, torch.complex128, torch.bfloat16]))
def test_a_cast_never_shares_and_matches_the_reference(a: NDArray, dtype: torch.dtype) -> None:
    if a.dtype.kind == "c" and not dtype.is_complex:
        with pytest.raises(TypeError, match="imaginary"):
            to_tensor(a, dtype=dtype)
        return
    t = to_tensor(a, dtype=dtype)
    cast = torch_dtype(a.dtype) != dtype
    assert t.dtype == dtype and shares_memory(t, a) == (not cast and a.size > 0)
    if dtype != torch.bfloat16:  # casts keep values; NaN payloads may change, as in any cast
        with np.errstate(invalid="ignore"):  # NumPy flags casting a signalling NaN
            expected = a.astype(numpy_dtype(dtype))
        assert np.array_equal(to_numpy(t), expected, equal_nan=True)
    if cast:
        with pytest.raises(ValueError, match="copy=False"):
            to_tensor(a, dtype=dtype, copy=False)


@pytest.mark.parametrize("copy", [None, True])
def test_fields_of_aligned_structured_arrays_are_copied(copy: bool | None) -> None:
    record = np.zeros(4, np.dtype([("c", "c8"), ("x", "f4")], align=True))
    record["c"] = [1j, 2, 3, 4]
    t = to_tensor(record["c"], copy=copy)
    assert t.tolist() == [1j, 2, 3, 4] and not shares_memory(t, record)
    with pytest.raises(ValueError, match="item size"):
        to_tensor(record["c"], copy=False)


def test_odd_strides_of_size_1_axes_are_copied_too() -> None:
    a = np.lib.stride_tricks.as_strided(np.zeros(10), (1, 3), (5, 8))  # NumPy calls it C-contiguous
    assert a.flags.c_contiguous and to_tensor(a).tolist() == [[0.0, 0.0, 0.0]]


def test_writable_arrays_whose_elements_alias_are_copied() -> None:
    """torch refuses in-place writes to such tensors: rule 2 copies them, as rule 7 makes them read-only."""
    a = np.lib.stride_tricks.as_strided(np.arange(3.0), (3, 2), (8, 0))
    t = to_tensor(a)
    assert t.tolist() == a.tolist() and not shares_memory(t, a)
    t.fill_(1)
    with pytest.raises(ValueError, match="one element"):
        to_tensor(a, copy=False)


def test_writable_buffers_share_through_numpy() -> None:
    buffer = bytearray(8)
    view: Any = memoryview(buffer)  # a buffer: NumPy 1.26's ArrayLike does not say so
    t = to_tensor(view, copy=False)
    t.fill_(7)
    assert buffer == bytearray([7] * 8)


class CopyingArray:
    """An ``__array__`` that takes copy= but ignores it, as pandas 2's DataFrame of mixed dtypes does."""

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray:
        return np.ones(2)


def test_copy_false_never_returns_memory_a_producer_copied() -> None:
    with pytest.raises(ValueError, match="CopyingArray.*copy=None"):
        to_tensor(CopyingArray(), copy=False)
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="copy=False"):
        to_tensor(pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2]}), copy=False)
    assert to_tensor(pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2]})).tolist() == [[1.0, 1.0], [2.0, 2.0]]


class RecordingArray:
    """An ``__array__`` that shares ``a``, or refuses as NumPy 2 asks when ``a`` is None; it keeps the
    copy= arguments it was called with."""

    def __init__(self, a: NDArray | None) -> None:
        self.a = a
        self.copies: list[bool | None] = []

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray:
        self.copies.append(copy)
        if self.a is None:
            raise ValueError("this producer would have to copy")
        return self.a


@pytest.mark.skipif(np.lib.NumpyVersion(np.__version__) < "2.0.0", reason="NumPy 1.26 passes no copy=")
def test_copy_false_asks_the_producer_not_to_copy() -> None:
    a = np.arange(3.0)
    sharing = RecordingArray(a)
    assert shares_memory(to_tensor(sharing, copy=False), a)
    assert sharing.copies == [False, False]  # the conversion, and its check
    refusing = RecordingArray(None)
    with pytest.raises(ValueError, match="RecordingArray .*would have to copy"):  # its reason, quoted
        to_tensor(refusing, copy=False)
    assert refusing.copies == [False]


def test_the_numpy_1_shim_converts_as_numpy_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """_asarray's branch for NumPy 1.26 (no copy=) runs on any NumPy: it must convert, and copy=False
    must still share or raise."""
    monkeypatch.setattr(bridge, "_NUMPY_1", True)
    assert to_tensor([1, 2]).tolist() == [1, 2]
    buffer = bytearray(8)
    view: Any = memoryview(buffer)
    to_tensor(view, copy=False).fill_(7)
    assert buffer == bytearray([7] * 8)
    with pytest.raises(ValueError, match="CopyingArray.*new memory each time"):
        to_tensor(CopyingArray(), copy=False)


# --- rule 3: memory the caller cannot write is never handed out writable --------------------------


@LAWS
@given(arrays())
def test_readonly_input_is_never_aliased_writable(a: NDArray) -> None:
    read_only = a.copy() if a.flags.writeable else a
    read_only.flags.writeable = False
    assert not shares_memory(to_tensor(read_only), read_only)


def test_memmaps_share_when_writable_and_copy_when_read_only(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "data.bin"
    writable = np.memmap(path, np.float32, mode="w+", shape=(4,))
    assert shares_memory(to_tensor(writable), writable)
    read_only = np.memmap(path, np.float32, mode="r", shape=(4,))
    t = to_tensor(read_only)
    assert not shares_memory(t, read_only)
    t.fill_(1)  # writing through an alias of a read-only mapping would crash the process


def test_bytes_backed_arrays_are_copied() -> None:
    immutable = b"\x00" * 16
    t = to_tensor(np.frombuffer(immutable, np.float32))
    t.fill_(1)
    assert immutable == b"\x00" * 16


def test_broadcast_arrays_results_are_copied_without_a_warning() -> None:
    """NumPy warns on writes to (or reads of the writeable flag of) np.broadcast_arrays results, which
    will become read-only, and whose zero strides make one element many: rule 3 copies them."""
    for a in np.broadcast_arrays(np.zeros((2, 1)), np.arange(3.0)):
        t = to_tensor(a)
        assert t.tolist() == a.tolist() and not shares_memory(t, a)
        with pytest.raises(ValueError, match="copy=False"):
            to_tensor(a, copy=False)


def test_pandas_frames_and_series_convert_without_a_writable_alias() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    t = to_tensor(frame)
    assert t.tolist() == [[1.0, 3.0], [2.0, 4.0]]
    fill_one(t)
    assert frame.to_numpy().tolist() == [[1.0, 3.0], [2.0, 4.0]]
    series = pd.Series([1, 2, 3])
    assert to_tensor(series).tolist() == [1, 2, 3]
    with pytest.raises(TypeError, match="object"):
        to_tensor(pd.DataFrame({"a": [1.0], "b": ["x"]}))


# --- rule 4: dtypes map one to one; casts follow NumPy or raise, on every path --------------------


@pytest.mark.parametrize("dtype", SUPPORTED, ids=str)
def test_dtype_mapping_is_one_to_one(dtype: np.dtype[Any]) -> None:
    assert numpy_dtype(torch_dtype(dtype)) == dtype
    assert torch_dtype(dtype.newbyteorder(">")) == torch_dtype(dtype)
    assert to_tensor(np.zeros(2, dtype)).dtype == torch_dtype(dtype)


@pytest.mark.parametrize("dtype", ALIASES, ids=lambda d: d.type.__name__)
def test_every_numpy_alias_of_a_supported_dtype_converts(dtype: np.dtype[Any]) -> None:
    a = np.ones(3, dtype)
    t = to_tensor(a)
    assert t.dtype == torch_dtype(dtype) and shares_memory(t, a)
    assert to_tensor(dtype.type(1)).dtype == torch_dtype(dtype)
    assert to_tensor(a, copy=True).tolist() == a.tolist()


def test_python_ints_numpy_makes_ulonglong_convert() -> None:
    assert np.asarray(2**63).dtype.type is np.ulonglong
    assert int(to_numpy(to_tensor(2**63))) == 2**63


def test_uint64_max_round_trips_exactly() -> None:
    t = to_tensor(np.uint64(2**64 - 1))
    assert t.dtype == torch.uint64 and int(to_numpy(t)) == 2**64 - 1


UNSUPPORTED_ARRAYS = {
    "longdouble": np.zeros(2, np.longdouble),
    "object": np.array([1.0, None]),
    "str": np.array(["1.5", "2"]),
    "bytes": np.array([b"1", b"2"]),
    "datetime64": np.array(["2026-01-01"], "datetime64[D]"),
    "timedelta64": np.array([3], "timedelta64[s]"),
    "structured": np.zeros(2, [("x", np.float32), ("y", np.int8)]),
    "void": np.zeros(2, "V4"),
}


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_ARRAYS))
def test_unsupported_numpy_dtypes_raise_type_error_naming_the_dtype(name: str) -> None:
    a = UNSUPPORTED_ARRAYS[name]
    with pytest.raises(TypeError, match=re.escape(f"ndarray of NumPy dtype {a.dtype} ")):
        to_tensor(a)
    with pytest.raises(TypeError, match=re.escape(f"dtype {a.dtype} has no torch counterpart")):
        torch_dtype(a.dtype)


@pytest.mark.parametrize(
    ("a", "dtype", "expected"),
    [
        (np.array([1.5, 2.0], np.longdouble), torch.float64, [1.5, 2.0]),
        (np.array([1.5, 2], object), torch.float32, [1.5, 2.0]),
        (np.array(["1.5", "2"]), torch.float64, [1.5, 2.0]),
        (np.array([3, 2**53 + 1], "timedelta64[s]"), torch.int64, [3, 2**53 + 1]),  # not through float64
        (np.array([1.5, 2.0], np.longdouble), torch.bfloat16, [1.5, 2.0]),
        (np.array([1 + 2j, 3], np.clongdouble), torch.complex32, [1 + 2j, 3]),  # nor through a real dtype
    ],
)
@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental:UserWarning")  # torch's own
def test_explicit_dtype_casts_what_has_no_torch_dtype(
    a: NDArray, dtype: torch.dtype, expected: list[float]
) -> None:
    t = to_tensor(a, dtype=dtype)
    assert t.dtype == dtype and t.tolist() == expected


def reference_cast(x: NDArray, target: np.dtype[Any]) -> NDArray | type[Exception]:
    """NumPy's cast, or the error the bridge promises where NumPy would warn or lose values silently
    (rule 4: NaN, infinities and values outside the range of an integer target)."""
    if x.dtype.kind == "c" and target.kind in "fiub":
        return TypeError
    if x.dtype.kind == "f" and target.kind in "iu":
        info = np.iinfo(target)  # Python compares floats and ints exactly; the cast truncates
        if not all(math.isfinite(v) and info.min <= math.trunc(v) <= info.max for v in x.ravel().tolist()):
            return ValueError
    if x.dtype.kind in "iu" and target.kind in "iu":  # integers wrap silently in NumPy and torch
        info = np.iinfo(target)
        if not all(info.min <= v <= info.max for v in x.ravel().tolist()):
            return ValueError
    with np.errstate(invalid="ignore", over="ignore"):  # NaN payloads and float overflow, as in any cast
        return x.astype(target)


def check_cast(convert: Callable[[], NDArray | torch.Tensor], expected: NDArray | type[Exception]) -> None:
    if isinstance(expected, type):
        with pytest.raises(expected):
            convert()
        return
    out = convert()
    values = out.numpy() if isinstance(out, torch.Tensor) else out
    assert values.dtype == expected.dtype and np.array_equal(values, expected, equal_nan=True)


@LAWS
@given(arrays(), st.sampled_from(SUPPORTED))
def test_to_tensor_casts_follow_numpy(a: NDArray, target: np.dtype[Any]) -> None:
    check_cast(lambda: to_tensor(a, dtype=torch_dtype(target)), reference_cast(a, target))


@LAWS
@given(tensors(), st.sampled_from(SUPPORTED))
def test_tensor_casts_follow_numpy(t: torch.Tensor, target: np.dtype[Any]) -> None:
    expected = reference_cast(t.detach().resolve_conj().resolve_neg().numpy(), target)
    check_cast(
        lambda: to_tensor(t, dtype=torch_dtype(target)).detach().resolve_conj().resolve_neg(), expected
    )


CAST_TARGETS = SUPPORTED + [d.newbyteorder(">") for d in SUPPORTED if d.itemsize > 1]


@LAWS
@given(tensors(), st.sampled_from(CAST_TARGETS))
def test_to_numpy_casts_follow_numpy_into_fresh_c_contiguous_memory(t: torch.Tensor, target: Any) -> None:
    expected = reference_cast(t.detach().resolve_conj().resolve_neg().numpy(), target)
    check_cast(lambda: to_numpy(t, dtype=target), expected)
    if not isinstance(expected, type) and target != numpy_dtype(t.dtype):
        a = to_numpy(t, dtype=target)
        assert a.dtype.str == target.str, "the byte order asked for"
        assert a.flags.c_contiguous and a.flags.writeable and not shares_memory(a, t)


@LAWS
@given(arrays(), st.sampled_from(CAST_TARGETS), st.sampled_from([None, True]))
def test_to_numpy_of_an_ndarray_casts_or_copies_like_numpy(
    a: NDArray, target: Any, copy: bool | None
) -> None:
    expected = reference_cast(a, target)
    check_cast(lambda: to_numpy(a, dtype=target, copy=copy), expected)
    if isinstance(expected, type):
        return
    out = to_numpy(a, dtype=target, copy=copy)
    if target == a.dtype and copy is None:
        assert out is a
    else:
        assert out.dtype.str == target.str and out.flags.c_contiguous and out.flags.writeable
        assert not shares_memory(out, a)
    assert to_numpy(a) is a


@pytest.mark.parametrize(
    "convert",
    [
        lambda: to_tensor(np.ones(2, np.complex64), dtype=torch.float32),
        lambda: to_tensor(torch.ones(2, dtype=torch.complex64), dtype=torch.float32),
        lambda: to_numpy(np.ones(2, np.complex64), dtype=np.float32),
        lambda: to_numpy(torch.ones(2, dtype=torch.complex64), dtype=np.float32),
    ],
    ids=["ndarray to tensor", "tensor to tensor", "ndarray to ndarray", "tensor to ndarray"],
)
def test_complex_to_real_is_refused_on_every_path(convert: Callable[[], object]) -> None:
    with pytest.raises(TypeError, match="x.real"):
        convert()


def test_casts_from_complex_to_real_are_refused_not_warned() -> None:
    with pytest.raises(TypeError, match="x.real"):
        to_numpy(torch.ones(2, dtype=torch.complex64), dtype=np.float32)
    assert to_numpy(torch.ones(2, dtype=torch.float32), dtype=np.complex64).tolist() == [1, 1]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 128.0, -129.0])
def test_float_to_int_casts_that_lose_values_are_value_errors_on_every_path(bad: float) -> None:
    a = np.array([1.0, bad])
    converts: list[Callable[[], object]] = [
        lambda: to_tensor(a, dtype=torch.int8),
        lambda: to_tensor(torch.from_numpy(a), dtype=torch.int8),
        lambda: to_numpy(a, dtype=np.int8),
        lambda: to_numpy(torch.from_numpy(a), dtype=np.int8),
    ]
    for convert in converts:
        with pytest.raises(ValueError, match="NaN, infinite or outside") as raised:
            convert()
        assert str(raised.value).endswith("e.g. with np.clip or np.nan_to_num")
    minus_infs: list[NDArray | torch.Tensor] = [
        np.array([-np.inf], np.float16),
        torch.tensor([-np.inf]).half(),
    ]
    for minus_inf in minus_infs:
        with pytest.raises(ValueError, match="NaN, infinite"):  # int32's minimum is -inf in float16
            to_numpy(minus_inf, dtype=np.int32)
    assert to_numpy(np.array([-128.9, 127.9]), dtype=np.int8).tolist() == [-128, 127]  # truncation is fine
    assert to_tensor(torch.tensor([-(2.0**63)]), dtype=torch.int64).tolist() == [-(2**63)]


@pytest.mark.parametrize(
    ("values", "source", "target"),
    [
        ([1, -1], np.int64, np.uint8),
        ([1, 256], np.int64, np.uint8),
        ([1, -129], np.int16, np.int8),
        ([1, 2**63], np.uint64, np.int64),
        ([1, 2**32 - 1], np.uint32, np.int32),
        ([1, 2**15], np.uint16, np.int16),
        ([1, 2**16 - 1], np.uint16, np.int8),
    ],
)
def test_int_to_int_casts_that_lose_values_are_value_errors_on_every_path(
    values: list[int], source: type[np.integer[Any]], target: type[np.integer[Any]]
) -> None:
    a = np.array(values, source)
    converts: list[Callable[[], object]] = [
        lambda: to_tensor(a, dtype=torch_dtype(target)),
        lambda: to_tensor(torch.from_numpy(a), dtype=torch_dtype(target)),
        lambda: to_numpy(a, dtype=target),
        lambda: to_numpy(torch.from_numpy(a), dtype=target),
    ]
    bounds = re.escape(f"outside [{np.iinfo(target).min}, {np.iinfo(target).max}]")
    for convert in converts:
        with pytest.raises(ValueError, match=bounds) as raised:
            convert()
        assert "NaN" not in str(raised.value) and str(raised.value).endswith("e.g. with np.clip")
    fits = a[:1]
    assert to_tensor(torch.from_numpy(fits), dtype=torch_dtype(target)).tolist() == [1]
    assert to_numpy(fits, dtype=target).tolist() == [1]


@pytest.mark.parametrize(
    ("edges", "source", "target"),
    [([-128, 127], torch.int64, torch.int8), ([0, 2**63 - 1], torch.uint64, torch.int64)],
    ids=["int64 to int8", "uint64 to int64"],
)
def test_int_to_int_casts_keep_the_target_range_edges(
    edges: list[int], source: torch.dtype, target: torch.dtype
) -> None:
    a = np.array(edges, numpy_dtype(source))
    for x in (a, torch.from_numpy(a)):
        assert to_tensor(x, dtype=target).tolist() == edges
        assert to_numpy(x, dtype=numpy_dtype(target)).tolist() == edges


def test_python_ints_are_range_checked_too() -> None:
    with pytest.raises(ValueError, match="outside \\[0, 255\\]"):
        to_tensor(-1, dtype=torch.uint8)
    assert to_tensor(255, dtype=torch.uint8).item() == 255
    assert to_tensor([0, 1], dtype=torch.bool).tolist() == [False, True]


@pytest.mark.parametrize(
    ("values", "dtype"),
    [([np.inf], torch.int64), ([1e30], torch.int8), ([np.nan], torch.int64)],
    ids=["inf", "1e30", "nan"],
)
def test_object_values_a_cast_cannot_hold_are_value_errors(values: list[float], dtype: torch.dtype) -> None:
    with pytest.raises(ValueError, match=f"object values to {numpy_dtype(dtype)}"):
        to_tensor(np.array(values, object), dtype=dtype)


@pytest.mark.parametrize("dtype", [getattr(torch, "int4"), getattr(torch, "uint3"), torch.bits8], ids=str)
def test_dtypes_torch_cannot_cast_are_type_errors_without_advice_that_fails(dtype: torch.dtype) -> None:
    t = torch.empty(2, dtype=dtype)
    with pytest.raises(TypeError, match=f"{dtype} .*cannot cast") as raised:
        to_numpy(t)
    assert "np.float32" not in str(raised.value)
    with pytest.raises(TypeError, match=f"{dtype} .*cannot cast"):
        to_numpy(t, dtype=np.float32)
    with pytest.raises(TypeError, match=f"{dtype} .*cannot cast"):
        to_tensor(t, dtype=torch.float32)
    with pytest.raises(TypeError, match=f"{dtype} .*cannot cast"):
        to_tensor(np.ones(2), dtype=dtype)


def _sparse_and_nested(values: list[float]) -> dict[str, torch.Tensor]:
    dense = torch.tensor([values, [0.0] * len(values)])
    return {
        "coo": dense.to_sparse(),
        "csr": dense.to_sparse_csr(),
        "nested": torch.nested.nested_tensor(
            [torch.tensor(values), torch.tensor([0.5])], layout=torch.jagged
        ),
    }


@pytest.mark.parametrize("kind", ["coo", "csr", "nested"])
@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")  # torch's, once
def test_casts_of_sparse_and_nested_tensors_check_their_stored_values(kind: str) -> None:
    t = _sparse_and_nested([1.5, -2.0])[kind]
    cast = to_tensor(t, dtype=torch.int64)  # as Tensor.to does (rule 1)
    assert cast.dtype == torch.int64 and cast.layout == t.layout and cast.is_nested == t.is_nested
    with pytest.raises(ValueError, match="NaN, infinite or outside"):
        to_tensor(_sparse_and_nested([1.5, math.nan])[kind], dtype=torch.int64)
    with pytest.raises(ValueError, match="copy=False"):
        to_tensor(t, dtype=torch.int64, copy=False)


def test_copy_false_refuses_a_cast_before_allocating_it() -> None:
    huge = torch.zeros(1).expand(2**40)  # one float, seen 2**40 times: a cast would need 8 TiB
    with pytest.raises(ValueError, match="copy=False"):
        to_tensor(huge, dtype=torch.float64, copy=False)


def test_copy_false_refuses_a_checked_cast_before_reading_any_value() -> None:
    """Rule 4's value check reads every element; copy=False refuses the cast first, on every path."""
    huge = torch.zeros(1).expand(2**40)  # checking its values would need a 1 TiB mask
    writable = np.lib.stride_tricks.as_strided(np.zeros(1), (2**40,), (0,))
    converts: list[Callable[[], object]] = [
        lambda: to_tensor(writable, dtype=torch.int64, copy=False),
        lambda: to_tensor(huge, dtype=torch.int64, copy=False),
        lambda: to_numpy(huge, dtype=np.int64, copy=False),
    ]
    for convert in converts:
        with pytest.raises(ValueError, match="copy=False"):
            convert()
    a = np.zeros(2**20)  # 8 MiB: the check would allocate a 1 MiB mask, and more
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="copy=False"):
            to_tensor(a, dtype=torch.int32, copy=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**16


def test_casting_a_signalling_nan_does_not_warn() -> None:
    snan = np.array([0x7FF0000000000001], np.uint64).view(np.float64)  # NumPy flags its cast as invalid
    assert np.isnan(to_numpy(snan, dtype=np.float32)).all()


# --- rule 5: masks, scipy.sparse and copy=False on what cannot share are refused ------------------


def test_masked_arrays_refuse_masked_elements() -> None:
    masked = masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(ValueError, match="1 masked"):
        to_tensor(masked)
    unmasked = masked_array([1.0, 2.0], mask=False)
    assert shares_memory(to_tensor(unmasked), unmasked.data)


def test_scipy_sparse_is_never_densified_silently() -> None:
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="csr_matrix .*toarray"):
        to_tensor(sparse.csr_matrix(np.eye(3)))


class LegacyArray:
    """An ``__array__`` written before NumPy 2: it takes no copy= argument."""

    def __array__(self, dtype: Any = None) -> NDArray:
        return np.ones(2)


class ModernArray:
    """An ``__array__`` of NumPy 2: it takes copy=."""

    def __init__(self, a: NDArray) -> None:
        self.a = a

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> NDArray:
        return self.a


class KeywordsArray:
    """An ``__array__`` that takes copy= among its ``**kwargs``."""

    def __init__(self, a: NDArray) -> None:
        self.a = a

    def __array__(self, dtype: Any = None, **kwargs: Any) -> NDArray:
        return self.a


def test_only_an_array_protocol_taking_copy_can_promise_sharing() -> None:
    with pytest.raises(ValueError, match="LegacyArray .*copy="):
        to_tensor(LegacyArray(), copy=False)
    assert to_tensor(LegacyArray()).tolist() == [1.0, 1.0]
    a = np.arange(3.0)
    assert shares_memory(to_tensor(ModernArray(a), copy=False), a)
    assert shares_memory(to_tensor(KeywordsArray(a), copy=False), a)


def test_copy_false_on_a_python_list_or_a_numpy_scalar_raises_before_allocating() -> None:
    with pytest.raises(ValueError, match="copy=False.*list"):
        to_tensor([1.0, 2.0], copy=False)
    with pytest.raises(ValueError, match="no memory to share in a float64"):  # not a legacy __array__
        to_tensor(np.float64(1.0), copy=False)


def test_copy_false_refuses_a_sequence_before_numpy_reads_its_items() -> None:
    with pytest.raises(ValueError, match="copy=False.*list"):  # not NumPy's DeprecationWarning
        to_tensor([torch.ones(2)], copy=False)


@pytest.mark.parametrize(
    "item",
    [torch.ones(2, requires_grad=True), torch.ones(2, dtype=torch.complex64).conj()],
    ids=["requires grad", "conjugate bit"],
)
def test_a_list_holding_a_tensor_numpy_cannot_read_is_a_value_error(item: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="list.*torch.stack"):
        to_tensor([item])


# --- rule 6: to_numpy's result is detached, on the CPU, its bits resolved -------------------------


@LAWS
@given(tensors())
def test_tensor_roundtrip_is_bit_exact(t: torch.Tensor) -> None:
    back = to_tensor(to_numpy(t))
    assert back.dtype == t.dtype and back.shape == t.shape
    assert not back.requires_grad
    assert tensor_bits(back) == tensor_bits(t)


def test_to_numpy_resolves_conjugate_and_negative_bits() -> None:
    z = torch.tensor([1 + 2j, 3 - 4j])
    assert to_numpy(z.conj()).tolist() == [1 - 2j, 3 + 4j]
    assert to_numpy(z.conj().imag).tolist() == [-2.0, 4.0]


def test_to_numpy_keeps_0d_and_empty_shapes() -> None:
    assert to_numpy(torch.tensor(2.5)).shape == ()
    assert to_numpy(torch.zeros(0, 3)).shape == (0, 3)


# --- rule 7: to_numpy shares, read-only where autograd or aliasing needs it -----------------------


def has_aliased_elements(x: torch.Tensor | NDArray) -> bool:
    """Brute force: whether two indices of ``x`` reach one element (strides in elements or bytes)."""
    strides = x.stride() if isinstance(x, torch.Tensor) else x.strides
    index = np.indices(tuple(x.shape)).reshape(len(x.shape), -1) if len(x.shape) else np.zeros((0, 1), int)
    offsets = np.asarray(strides, np.int64) @ index
    return len(np.unique(offsets)) < offsets.size


def rule_7_allows_sharing(t: torch.Tensor) -> bool:
    return not (t.is_conj() or t.is_neg())


@LAWS
@given(tensors())
def test_to_numpy_shares_exactly_when_rule_7_allows(t: torch.Tensor) -> None:
    before = tensor_bits(t)
    a = to_numpy(t)
    assert bits(a) == before
    shares = rule_7_allows_sharing(t) and t.numel() > 0
    assert shares_memory(a, t) == shares
    viewed = rule_7_allows_sharing(t)  # a view even when empty, so the same flags apply
    assert a.flags.writeable == (not viewed or not (t.requires_grad or has_aliased_elements(t)))
    if a.flags.writeable:
        fill_one(a)
        assert tensor_bits(t) == (bits(np.ones_like(a)) if shares else before)


@LAWS
@given(tensors())
def test_to_numpy_copy_false_raises_exactly_when_sharing_is_impossible(t: torch.Tensor) -> None:
    if rule_7_allows_sharing(t):
        assert shares_memory(to_numpy(t, copy=False), t) == (t.numel() > 0)
    else:
        with pytest.raises(ValueError, match="copy=False"):
            to_numpy(t, copy=False)


@LAWS
@given(tensors())
def test_requires_grad_never_yields_a_writable_alias(t: torch.Tensor) -> None:
    if not (t.is_floating_point() or t.is_complex()):
        return
    leaf = t.detach().clone().requires_grad_()
    a = to_numpy(leaf)
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[...] = 0


def test_overlapping_views_are_read_only_whatever_their_strides() -> None:
    base = torch.arange(6.0)
    for view in [
        base.as_strided((3, 2), (1, 1)),
        base.as_strided((2, 2), (1, 1)),
        base.as_strided((2, 3), (2, 1)),  # the outer step lands inside the inner axis's span
        torch.ones(3, 1).expand(3, 4),
    ]:
        a = to_numpy(view)
        assert has_aliased_elements(view) and not a.flags.writeable and shares_memory(a, view)
    for apart in [  # every element once
        base.as_strided((2, 3), (3, 1)),
        base.as_strided((1, 3), (0, 2)),  # a size-1 axis reaches nothing, whatever its stride
    ]:
        assert to_numpy(apart).flags.writeable


@LAWS
@given(tensors())
def test_to_numpy_copy_true_is_fresh_writable_and_c_contiguous(t: torch.Tensor) -> None:
    a = to_numpy(t, copy=True)
    assert not shares_memory(a, t)
    assert a.flags.writeable and a.flags.c_contiguous
    assert bits(a) == tensor_bits(t)


def test_copies_of_permuted_views_are_c_contiguous() -> None:
    z = torch.arange(12.0).reshape(3, 4).to(torch.complex64).mT.conj()
    assert to_numpy(z, copy=True).flags.c_contiguous
    assert to_numpy(
        torch.arange(6.0, dtype=torch.float64).reshape(2, 3).mT, dtype=np.float32
    ).flags.c_contiguous


def test_to_numpy_honours_the_byte_order_asked_for() -> None:
    t = torch.arange(3.0)
    a = to_numpy(t, dtype=">f4")
    assert a.dtype.str == ">f4" and a.tolist() == [0.0, 1.0, 2.0] and a.flags.c_contiguous
    with pytest.raises(ValueError, match="byte order"):
        to_numpy(t, dtype=">f4", copy=False)
    assert shares_memory(to_numpy(t, dtype="=f4"), t)


def test_detached_aliases_of_a_parameter_are_outside_rule_7() -> None:
    """``w.detach()`` and ``w.data`` do not require grad: nothing in them says whose memory they are, so
    their view is writable and writes reach ``w`` unseen by autograd, as the README warns."""
    w = torch.nn.Parameter(torch.ones(2))
    assert not to_numpy(w).flags.writeable
    for alias in (w.detach(), w.data):
        a = to_numpy(alias)
        assert a.flags.writeable and shares_memory(a, w)
        a[0] = 5
        assert w[0].item() == 5
        w.data.fill_(1)


def test_writes_through_a_tensor_saved_for_backward_are_outside_rule_7() -> None:
    """Rule 7 protects what requires grad; a tensor autograd only saved is writable, as the README says."""
    w, x = torch.ones(2, requires_grad=True), torch.ones(2)
    loss = (w * x).sum()
    assert not to_numpy(w).flags.writeable
    to_numpy(x)[:] = 5  # not detected: autograd sees no version change
    torch.autograd.backward(loss)
    assert w.grad is not None and w.grad.tolist() == [5.0, 5.0]


# --- rule 8: to_numpy refuses what NumPy cannot hold; an ndarray is returned as is ----------------

NO_NUMPY_DTYPE = [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.complex32]


@pytest.mark.parametrize("dtype", NO_NUMPY_DTYPE, ids=str)
@pytest.mark.filterwarnings("ignore:ComplexHalf support is experimental:UserWarning")  # torch's own
def test_dtypes_numpy_lacks_need_an_explicit_exact_upcast(dtype: torch.dtype) -> None:
    t = torch.tensor([0.5, -2.0, 448.0]).to(dtype)
    wide = np.complex64 if dtype.is_complex else np.float32
    with pytest.raises(TypeError, match=f"dtype=np.{np.dtype(wide)}"):
        to_numpy(t)
    with pytest.raises(TypeError, match="no NumPy counterpart"):
        numpy_dtype(dtype)
    a = to_numpy(t, dtype=wide)
    assert a.dtype == wide and a.flags.writeable
    assert a.tolist() == t.to(torch_dtype(wide)).tolist()


@pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta:UserWarning")  # torch's own
def test_to_numpy_refuses_non_strided_tensors() -> None:
    with pytest.raises(TypeError, match="to_dense"):
        to_numpy(torch.eye(2).to_sparse())
    with pytest.raises(TypeError, match="to_dense"):
        to_numpy(torch.eye(2).to_sparse_csr())
    with pytest.raises(TypeError, match="meta"):
        to_numpy(torch.zeros(2, device="meta"))
    with pytest.raises(TypeError, match="nested"):
        to_numpy(torch.nested.nested_tensor([torch.ones(2), torch.ones(3)], layout=torch.jagged))
    with warnings.catch_warnings():  # creating quantized tensors is deprecated upstream; not our warning
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.qint8)
    with pytest.raises(TypeError, match="dequantize"):
        to_numpy(quantized)


def test_to_numpy_refuses_other_types() -> None:
    with pytest.raises(TypeError, match="list"):
        to_numpy([1.0])  # type: ignore[arg-type]  # the wrong type is the test


def test_to_numpy_of_an_ndarray_is_identity_unless_asked() -> None:
    a = np.arange(4.0)
    assert to_numpy(a) is a
    assert to_numpy(a, dtype=np.float32).dtype == np.float32
    fresh = to_numpy(a, copy=True)
    assert fresh is not a and not shares_memory(fresh, a)
    with pytest.raises(ValueError, match="copy=False"):
        to_numpy(a, dtype=np.float32, copy=False)


def test_to_numpy_copies_and_casts_of_masked_arrays_refuse_masked_elements() -> None:
    """As to_tensor does (rule 5): a copy is a plain ndarray, and dropping the mask would lose data."""
    masked = masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    assert to_numpy(masked) is masked  # returned as is, mask and all
    converts: list[Callable[[], object]] = [
        lambda: to_numpy(masked, copy=True),
        lambda: to_numpy(masked, dtype=np.float32),
    ]
    for convert in converts:
        with pytest.raises(ValueError, match="1 masked"):
            convert()
    unmasked = masked_array([1.0, 2.0], mask=False)
    copied = to_numpy(unmasked, copy=True)
    assert type(copied) is np.ndarray and copied.tolist() == [1.0, 2.0]


# --- rule 9: a move between devices is a copy (CUDA tests skip without a GPU) ---------------------


def test_the_meta_device_routes_moves_and_refusals_without_a_gpu() -> None:
    a = np.arange(6.0).reshape(2, 3)
    m = to_tensor(a, device="meta")
    assert m.is_meta and m.shape == (2, 3) and m.dtype == torch.float64
    assert to_tensor(a[:, ::-1], device="meta", dtype=torch.float32).dtype == torch.float32
    assert to_tensor(torch.ones(2), device="meta").is_meta
    assert to_tensor(Exporter(a), device="meta").is_meta
    with pytest.raises(ValueError, match="meta"):
        to_tensor(a, device="meta", copy=False)
    with pytest.raises(ValueError, match="meta"):
        to_tensor(torch.ones(2), device="meta", copy=False)
    assert to_tensor(m) is m and to_tensor(m, device="meta", copy=False) is m
    assert to_tensor(m, dtype=torch.int64).dtype == torch.int64  # no values to check on meta
    assert not shares_memory(m, a) and not shares_memory(m, m)


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@cuda
def test_cuda_tensors_are_copied_to_the_host() -> None:
    t = torch.arange(6.0, device="cuda").reshape(2, 3).mT
    a = to_numpy(t)
    assert a.tolist() == t.cpu().tolist() and a.flags.writeable and a.flags.c_contiguous
    assert not shares_memory(a, t)
    with pytest.raises(ValueError, match="cuda"):
        to_numpy(t, copy=False)
    grad = torch.ones(2, device="cuda", requires_grad=True)
    assert to_numpy(grad).tolist() == [1.0, 1.0]


@cuda
def test_to_tensor_moves_to_cuda_by_copying() -> None:
    a = np.arange(6.0).reshape(2, 3)
    t = to_tensor(a, device="cuda")
    assert t.is_cuda and to_numpy(t).tolist() == a.tolist()
    assert to_tensor(a[:, ::-1], device="cuda", dtype=torch.float32).tolist() == a[:, ::-1].tolist()
    with pytest.raises(ValueError, match="cuda"):
        to_tensor(a, device="cuda", copy=False)
    with pytest.raises(ValueError, match="copy=False"):  # refused before allocating 4 TiB on the GPU
        to_tensor(torch.zeros(1).expand(2**40), device="cuda", copy=False)
    assert shares_memory(t, t[1:]) and not shares_memory(t, a)


@cuda
def test_to_tensor_of_a_cuda_tensor_moves_only_when_asked() -> None:
    t = torch.ones(2, device="cuda")
    assert to_tensor(t) is t
    assert to_tensor(t, device="cpu").is_cpu


@cuda
@LAWS
@given(arrays())
def test_cuda_roundtrip_is_bit_exact_and_never_shares(a: NDArray) -> None:
    before = bits(a)
    t = to_tensor(a, device="cuda")
    assert t.is_cuda and not shares_memory(t, a)
    back = to_numpy(t)
    assert back.dtype == a.dtype.newbyteorder("=") and bits(back) == before == bits(a)
    assert back.flags.writeable and not shares_memory(back, t)


@cuda
@LAWS
@given(tensors())
def test_a_tensor_moved_to_cuda_and_back_keeps_its_bits(t: torch.Tensor) -> None:
    on_cuda = to_tensor(t, device="cuda")
    assert on_cuda.is_cuda and on_cuda.requires_grad == t.requires_grad  # rule 1: as Tensor.to does
    assert tensor_bits(to_tensor(on_cuda, device="cpu")) == tensor_bits(t)
    with pytest.raises(ValueError, match="cuda"):
        to_tensor(t, device="cuda", copy=False)


@cuda
def test_cuda_dlpack_producers_share_or_copy_by_rule_10() -> None:
    t = torch.arange(6.0, device="cuda")

    class Producer:  # any __dlpack__ object: what CuPy or JAX arrays offer
        def __dlpack__(self, **kwargs: Any) -> Any:
            return t.__dlpack__(**kwargs)

        def __dlpack_device__(self) -> Any:
            return t.__dlpack_device__()

    shared = to_tensor(Producer(), copy=False)
    assert shared.is_cuda and shares_memory(shared, t)
    shared[0] = 42.0
    assert float(t[0]) == 42.0
    moved = to_tensor(Producer(), device="cpu")
    assert moved.is_cpu and moved.tolist() == t.tolist()


# --- rule 10: a DLPack export is shared when writable, aligned, unflipped; else copied ------------

# NumPy exports DLPack 1.0 (max_version=, copy=, the read-only flag) from 2.1 on. Before, its export is
# that of a producer older than DLPack 1.0, which rule 10 copies and cannot ask to copy.
numpy_exports_dlpack_1 = pytest.mark.skipif(
    np.lib.NumpyVersion(np.__version__) < "2.1.0",
    reason="needs NumPy>=2.1: older NumPy exports DLPack 0.x, which rule 10 copies "
    "(test_producers_older_than_dlpack_1_are_copied covers that)",
)


def rule_10_allows_sharing(a: NDArray, *, count_size_1_axes: bool = True) -> bool:
    """Rule 2 as NumPy exports DLPack: strides count in whole items, so a size-1 axis may have any. Its
    sign, too, depends on the NumPy version: ``count_size_1_axes=False`` ignores it."""
    odd = any(s % a.itemsize for s, n in zip(a.strides, a.shape, strict=True) if n > 1 or a.size == 0)
    negative = any(s < 0 for s, n in zip(a.strides, a.shape, strict=True) if count_size_1_axes or n != 1)
    return bool(a.flags.writeable and a.flags.aligned and a.dtype.isnative) and not (negative or odd)


class Exporter:
    """A DLPack producer that is not NumPy: it exports the memory of an ndarray (or of a tensor), and
    keeps the arguments it was asked with, first ask first."""

    def __init__(self, a: NDArray | torch.Tensor) -> None:
        self.a = a
        self.asked: list[dict[str, Any]] = []

    def __dlpack__(self, **kwargs: Any) -> Any:
        self.asked.append(kwargs)
        return self.a.__dlpack__(**kwargs)

    def __dlpack_device__(self) -> tuple[int, int]:
        device: tuple[int, int] = self.a.__dlpack_device__()
        return device


@LAWS
@given(arrays())
@numpy_exports_dlpack_1
def test_dlpack_input_shares_exactly_when_rule_10_allows(a: NDArray) -> None:
    if not a.dtype.isnative:  # DLPack has no byte order: the producer cannot export it
        with pytest.raises(ValueError, match="Exporter .*byte order"):  # the producer's reason, quoted
            to_tensor(Exporter(a))
        return
    before = bits(a)
    t = to_tensor(Exporter(a))
    assert tensor_bits(t) == before and not t.requires_grad
    shares = rule_10_allows_sharing(a) and a.size > 0
    if rule_10_allows_sharing(a, count_size_1_axes=False) != rule_10_allows_sharing(a):
        # A negative stride of a size-1 axis reaches no other element: NumPy 2.4 exports it, which rule
        # 10 copies; NumPy 2.1 to 2.3 export a non-negative one, which it shares. Either is right.
        shares = shares_memory(t, a)
    assert shares_memory(t, a) == shares
    if shares or rule_10_allows_sharing(a):
        assert shares_memory(to_tensor(Exporter(a), copy=False), a) == shares
    else:
        with pytest.raises(ValueError, match="copy=False"):
            to_tensor(Exporter(a), copy=False)
    assert not shares_memory(to_tensor(Exporter(a), copy=True), a)
    fill_one(t)  # never a read-only alias (rule 3)
    assert bits(a) == (bits(np.ones_like(a)) if shares else before)


def test_producers_are_asked_for_the_dlpack_version_whose_structs_bridge_reads() -> None:
    exporter = Exporter(np.ones(2))
    to_tensor(exporter)
    assert exporter.asked[0]["max_version"] == (1, 0)


class OldExporter(Exporter):
    """A producer older than DLPack 1.0: it cannot say whether its memory is read-only."""

    def __dlpack__(self) -> Any:  # type: ignore[override]  # the old protocol takes no arguments
        return self.a.__dlpack__()


def test_producers_older_than_dlpack_1_are_copied() -> None:
    a = np.arange(3.0)
    t = to_tensor(OldExporter(a))
    assert t.tolist() == [0.0, 1.0, 2.0] and not shares_memory(t, a)
    with pytest.raises(ValueError, match="DLPack 1.0"):
        to_tensor(OldExporter(a), copy=False)
    with pytest.raises(ValueError, match="negative strides"):  # torch would abort the process here
        to_tensor(OldExporter(a[::-1]))


class CopylessExporter(Exporter):
    """A producer that cannot copy: asked to, it raises BufferError, as DLPack lets it."""

    def __dlpack__(self, **kwargs: Any) -> Any:
        if kwargs.get("copy"):
            raise BufferError("this producer cannot copy")
        return super().__dlpack__(**kwargs)


@numpy_exports_dlpack_1
def test_read_only_exports_are_copied_even_by_a_producer_that_cannot_copy() -> None:
    a = _read_only(np.arange(3.0))
    t = to_tensor(CopylessExporter(a))
    assert t.tolist() == [0.0, 1.0, 2.0] and not shares_memory(t, a)


@numpy_exports_dlpack_1
@pytest.mark.parametrize("dtype", SUPPORTED, ids=str)
def test_dlpack_memory_is_shared_exactly_when_numpy_calls_it_aligned(dtype: np.dtype[Any]) -> None:
    """Off by one byte, or by half an item: a complex number is aligned as its parts are."""
    for by in {1, dtype.itemsize // 2}:
        a = _misaligned(np.ones(3, dtype), by)
        if a.flags.aligned:
            assert shares_memory(to_tensor(Exporter(a), copy=False), a)
            continue
        assert to_tensor(Exporter(a)).tolist() == a.tolist()  # the producer copies: torch may crash here
        with pytest.raises(ValueError, match="not aligned"):
            to_tensor(Exporter(a), copy=False)
        with pytest.raises(ValueError, match="not aligned"):
            to_tensor(OldExporter(a))  # an old producer cannot be asked for a copy


def test_an_export_of_no_memory_is_aligned() -> None:
    t = to_tensor(Exporter(torch.zeros(0)), copy=False)  # torch exports it with a NULL data pointer
    assert t.shape == (0,)


def test_array_api_strict_arrays_share_on_each_of_its_devices() -> None:
    xp = pytest.importorskip("array_api_strict")
    for device in xp.__array_namespace_info__().devices():
        x = xp.asarray([1.0, 2.0, 3.0], device=device)
        if np.lib.NumpyVersion(np.__version__) < "2.1.0":  # it refuses max_version= over such NumPy:
            assert to_tensor(x).tolist() == [1.0, 2.0, 3.0]  # an old export, copied (rule 10)
            with pytest.raises(ValueError, match="DLPack 1.0"):
                to_tensor(x, copy=False)
            continue
        t = to_tensor(x, copy=False)
        t.fill_(7)
        assert bool(xp.all(x == 7))
        flipped = to_tensor(xp.flip(x))  # negative strides: the producer copies
        assert flipped.tolist() == [7.0, 7.0, 7.0] and not shares_memory(flipped, t)
        assert to_tensor(x, dtype=torch.float32).dtype == torch.float32


class ReadOnlyOldArray(OldExporter):
    """An array API array over NumPy before 2.1 (array-api-strict): DLPack 0.x cannot flag read-only
    memory, so the producer refuses to export it; its library can copy it."""

    def __dlpack__(self) -> Any:  # type: ignore[override]  # the old protocol takes no arguments
        raise BufferError("cannot export a read-only array through DLPack 0.x")

    def __array_namespace__(self) -> Any:
        return types.SimpleNamespace(asarray=lambda x, copy: OldExporter(np.array(x.a, copy=copy)))


def test_an_array_api_array_dlpack_cannot_export_is_copied_by_its_library() -> None:
    a = _read_only(np.arange(3.0))
    t = to_tensor(ReadOnlyOldArray(a))
    assert t.tolist() == [0.0, 1.0, 2.0] and not shares_memory(t, a)
    with pytest.raises(ValueError, match="copy=False"):
        to_tensor(ReadOnlyOldArray(a), copy=False)
    with pytest.raises(ValueError, match="cannot import this OldExporter through DLPack"):
        to_tensor(OldExporter(np.arange(3.0)[::-1]))  # no library to ask for a copy


# --- rule 11: device names: the host's are the CPU; one not here is a ValueError ------------------


@pytest.mark.parametrize(
    "device", ["cpu", "cpu:0", torch.device("cpu", 0)], ids=["cpu", "cpu:0", "device(cpu, 0)"]
)
def test_every_name_of_the_host_is_the_cpu(device: Device) -> None:
    a, t = np.ones(2), torch.ones(2)
    assert shares_memory(to_tensor(a, device=device, copy=False), a)
    assert to_tensor(t, device=device, copy=False) is t


no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@no_cuda
@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda", 0)], ids=str)
def test_an_unavailable_device_is_a_value_error_naming_it(device: str | torch.device) -> None:
    for x in (np.ones(2), torch.ones(2)):
        with pytest.raises(ValueError, match="cuda.* not available.*cpu"):
            to_tensor(x, device=device)
    with pytest.raises(ValueError, match="cuda.* not available"):
        _device(device)


@no_cuda
def test_the_available_devices_are_listed(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="available: cpu$"):
        _device("cuda")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)  # as if one were there
    monkeypatch.setattr(torch.accelerator, "current_accelerator", lambda: torch.device("mtia"))
    monkeypatch.setattr(torch.accelerator, "device_count", lambda: 2)
    with pytest.raises(ValueError, match="available: cpu, mtia:0, mtia:1$"):
        _device("cuda")


@pytest.mark.parametrize("device", ["gpu", "cuda:x"])
def test_a_device_torch_does_not_know_is_a_value_error(device: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(device))):
        _device(device)


@pytest.mark.skipif(getattr(torch, "xpu", None) is None or torch.xpu.is_available(), reason="needs no XPU")
def test_other_accelerators_torch_knows_are_checked_the_same_way() -> None:
    with pytest.raises(ValueError, match="xpu.* not available"):
        to_tensor(np.ones(2), device="xpu")


def test_a_device_index_past_the_last_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert _device("cuda:1") == torch.device("cuda", 1)
    for past in ("cuda:2", "cuda:7"):
        with pytest.raises(ValueError, match=rf"{past} .*2 cuda devices \(cuda:0 to cuda:1\)"):
            _device(past)
    assert _device("meta") == torch.device("meta") and _device("cpu:3") == torch.device("cpu")
