"""Laws and edge cases of bridge.py. NumPy is the reference: expectations are stated in NumPy terms."""

from __future__ import annotations

import os
import pathlib
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bridge import NDArray, numpy_dtype, shares_memory, to_numpy, to_tensor, torch_dtype

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
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def bits(a: NDArray) -> bytes:
    """The values of ``a`` as bytes, in logical order and native byte order: equal bits, equal bytes."""
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("=")).tobytes()


def tensor_bits(t: torch.Tensor) -> bytes:
    """The values of ``t`` as bytes, computed by torch and NumPy alone (no bridge)."""
    return bits(t.detach().resolve_conj().resolve_neg().cpu().numpy())


def rule_2_allows_sharing(a: NDArray) -> bool:
    return bool(a.flags.writeable and a.flags.aligned and a.dtype.isnative and all(s >= 0 for s in a.strides))


@st.composite
def values(draw: st.DrawFn, dtypes: list[np.dtype[Any]] = SUPPORTED) -> NDArray:
    """Arrays of any shape (0-d and empty too) with any bit pattern: NaN payloads, -0.0, subnormals."""
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


def _misaligned(a: NDArray) -> NDArray:
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = raw[1:].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


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
    "read-only": _read_only,
    "big-endian": lambda a: a.astype(a.dtype.newbyteorder(">")),
    "misaligned": _misaligned,
    "frombuffer(bytes)": lambda a: np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape),
    "broadcast_to": lambda a: np.broadcast_to(a, (2, *a.shape)),
}


@st.composite
def arrays(draw: st.DrawFn) -> NDArray:
    return LAYOUTS[draw(st.sampled_from(sorted(LAYOUTS)))](draw(values()))


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    """CPU tensors of every NumPy dtype, plain or transposed, sliced, expanded, conjugate, negative
    or requiring grad."""
    t = torch.from_numpy(draw(values()))
    view = draw(st.sampled_from(["plain", "transposed", "sliced", "expanded", "conj", "neg", "grad"]))
    if view == "transposed" and t.ndim >= 2:
        return t.mT
    if view == "sliced" and t.ndim >= 1:
        return t[..., ::2]
    if view == "expanded":
        return t.unsqueeze(0).expand(3, *t.shape)
    if view == "conj" and t.is_complex():
        return t.conj()
    if view == "neg" and t.is_complex():
        return t.conj().imag  # a real tensor with its negative bit set
    if view == "grad" and (t.is_floating_point() or t.is_complex()):
        return t.clone().requires_grad_()
    return t


def fill_one(x: torch.Tensor | NDArray) -> None:
    """Write 1 (True for bool) to every element of ``x``, in place."""
    if isinstance(x, torch.Tensor):
        x.fill_(1)
    else:
        x[...] = 1


# --- to_tensor: laws -------------------------------------------------------------------------


@LAWS
@given(arrays())
def test_roundtrip_is_bit_exact(a: NDArray) -> None:
    back = to_numpy(to_tensor(a))
    assert back.shape == a.shape
    assert back.dtype == a.dtype.newbyteorder("=")
    assert bits(back) == bits(a)


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
@given(arrays())
def test_readonly_input_is_never_aliased_writable(a: NDArray) -> None:
    read_only = a.copy() if a.flags.writeable else a
    read_only.flags.writeable = False
    assert not shares_memory(to_tensor(read_only), read_only)


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


# --- to_numpy: laws --------------------------------------------------------------------------


def rule_7_allows_sharing(t: torch.Tensor) -> bool:
    return not (t.is_conj() or t.is_neg())


def is_expanded(t: torch.Tensor) -> bool:
    return any(stride == 0 and size > 1 for stride, size in zip(t.stride(), t.shape, strict=True))


@LAWS
@given(tensors())
def test_tensor_roundtrip_is_bit_exact(t: torch.Tensor) -> None:
    back = to_tensor(to_numpy(t))
    assert back.dtype == t.dtype and back.shape == t.shape
    assert not back.requires_grad
    assert tensor_bits(back) == tensor_bits(t)


@LAWS
@given(tensors())
def test_to_numpy_shares_exactly_when_rule_7_allows(t: torch.Tensor) -> None:
    before = tensor_bits(t)
    a = to_numpy(t)
    assert bits(a) == before
    shares = rule_7_allows_sharing(t) and t.numel() > 0
    assert shares_memory(a, t) == shares
    viewed = rule_7_allows_sharing(t)  # a view even when empty, so the same flags apply
    assert a.flags.writeable == (not viewed or not (t.requires_grad or is_expanded(t)))
    if a.flags.writeable:
        fill_one(a)
        assert tensor_bits(t) == (bits(np.ones_like(a)) if shares else before)


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


@LAWS
@given(tensors())
def test_to_numpy_copy_true_is_fresh_writable_and_c_contiguous(t: torch.Tensor) -> None:
    a = to_numpy(t, copy=True)
    assert not shares_memory(a, t)
    assert a.flags.writeable and a.flags.c_contiguous
    assert bits(a) == tensor_bits(t)


@LAWS
@given(tensors())
def test_to_numpy_copy_false_raises_exactly_when_sharing_is_impossible(t: torch.Tensor) -> None:
    if rule_7_allows_sharing(t):
        assert shares_memory(to_numpy(t, copy=False), t) == (t.numel() > 0)
    else:
        with pytest.raises(ValueError, match="copy=False"):
            to_numpy(t, copy=False)


# --- shares_memory ---------------------------------------------------------------------------


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


# --- dtypes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", SUPPORTED, ids=str)
def test_dtype_mapping_is_one_to_one(dtype: np.dtype[Any]) -> None:
    assert numpy_dtype(torch_dtype(dtype)) == dtype
    assert torch_dtype(dtype.newbyteorder(">")) == torch_dtype(dtype)
    assert to_tensor(np.zeros(2, dtype)).dtype == torch_dtype(dtype)


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
    with pytest.raises(TypeError, match=re.escape(f"dtype {a.dtype} ")):
        to_tensor(a)
    with pytest.raises(TypeError, match="no torch counterpart"):
        torch_dtype(a.dtype)


@pytest.mark.parametrize(
    ("a", "dtype", "expected"),
    [
        (np.array([1.5, 2.0], np.longdouble), torch.float64, [1.5, 2.0]),
        (np.array([1.5, 2], object), torch.float32, [1.5, 2.0]),
        (np.array(["1.5", "2"]), torch.float64, [1.5, 2.0]),
        (np.array([3, 4], "timedelta64[s]"), torch.int64, [3, 4]),
        (np.array([1.5, 2.0], np.longdouble), torch.bfloat16, [1.5, 2.0]),
    ],
)
def test_explicit_dtype_casts_what_has_no_torch_dtype(
    a: NDArray, dtype: torch.dtype, expected: list[float]
) -> None:
    t = to_tensor(a, dtype=dtype)
    assert t.dtype == dtype and t.tolist() == expected


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


# --- to_tensor: what it accepts and refuses ---------------------------------------------------


@pytest.mark.parametrize("dtype", SUPPORTED, ids=str)
def test_numpy_scalars_become_0d_tensors_of_their_dtype(dtype: np.dtype[Any]) -> None:
    scalar = np.iinfo(dtype).max if dtype.kind in "iu" else 1
    t = to_tensor(dtype.type(scalar))
    assert t.ndim == 0 and t.dtype == torch_dtype(dtype)
    assert to_numpy(t)[()] == dtype.type(scalar)


def test_uint64_max_survives() -> None:
    t = to_tensor(np.uint64(2**64 - 1))
    assert t.dtype == torch.uint64 and int(to_numpy(t)) == 2**64 - 1


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


def test_ragged_sequences_raise_value_error() -> None:
    with pytest.raises(ValueError, match="same length"):
        to_tensor([[1.0, 2.0], [3.0]])


def test_masked_arrays_refuse_masked_elements() -> None:
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    with pytest.raises(ValueError, match="1 masked"):
        to_tensor(masked)
    unmasked = np.ma.masked_array([1.0, 2.0], mask=False)
    assert shares_memory(to_tensor(unmasked), unmasked.data)


def test_scipy_sparse_is_never_densified_silently() -> None:
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match="toarray"):
        to_tensor(sparse.csr_matrix(np.eye(3)))


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


def test_copy_false_on_a_python_list_raises_before_allocating() -> None:
    with pytest.raises(ValueError, match="copy=False.*list"):
        to_tensor([1.0, 2.0], copy=False)


def test_writable_buffers_share_through_numpy() -> None:
    buffer = bytearray(8)
    t = to_tensor(memoryview(buffer), copy=False)
    t.fill_(7)
    assert buffer == bytearray([7] * 8)


# --- tensors into to_tensor --------------------------------------------------------------------


def test_a_tensor_is_returned_as_is_unless_asked_otherwise() -> None:
    t = torch.ones(3, requires_grad=True)
    assert to_tensor(t) is t
    assert to_tensor(t, dtype=torch.float32, device="cpu", copy=False) is t
    copied = to_tensor(t, copy=True)
    assert not shares_memory(copied, t) and copied.grad_fn is not None  # autograd history is kept
    assert to_tensor(t, dtype=torch.float64).dtype == torch.float64
    with pytest.raises(ValueError, match="copy=False"):
        to_tensor(t, dtype=torch.float64, copy=False)


# --- to_numpy: what it accepts and refuses -----------------------------------------------------


def test_casts_from_complex_to_real_are_refused_not_warned() -> None:
    with pytest.raises(TypeError, match="x.real"):
        to_numpy(torch.ones(2, dtype=torch.complex64), dtype=np.float32)
    assert to_numpy(torch.ones(2, dtype=torch.float32), dtype=np.complex64).tolist() == [1, 1]


def test_to_numpy_keeps_0d_and_empty_shapes() -> None:
    assert to_numpy(torch.tensor(2.5)).shape == ()
    assert to_numpy(torch.zeros(0, 3)).shape == (0, 3)


def test_to_numpy_resolves_conjugate_and_negative_bits() -> None:
    z = torch.tensor([1 + 2j, 3 - 4j])
    assert to_numpy(z.conj()).tolist() == [1 - 2j, 3 + 4j]
    assert to_numpy(z.conj().imag).tolist() == [-2.0, 4.0]


def test_to_numpy_of_an_ndarray_is_identity_unless_asked() -> None:
    a = np.arange(4.0)
    assert to_numpy(a) is a
    assert to_numpy(a, dtype=np.float32).dtype == np.float32
    fresh = to_numpy(a, copy=True)
    assert fresh is not a and not shares_memory(fresh, a)
    with pytest.raises(ValueError, match="copy=False"):
        to_numpy(a, dtype=np.float32, copy=False)


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


# --- other devices ---------------------------------------------------------------------------


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
    assert shares_memory(t, t[1:]) and not shares_memory(t, a)


@cuda
def test_to_tensor_of_a_cuda_tensor_moves_only_when_asked() -> None:
    t = torch.ones(2, device="cuda")
    assert to_tensor(t) is t
    assert to_tensor(t, device="cpu").is_cpu
