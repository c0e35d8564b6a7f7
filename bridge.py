"""Typed numpy <-> torch conversion with a written, tested memory-sharing contract.

Copy this file into your project; it needs only numpy and torch.

``to_tensor`` and ``to_numpy`` are a round-trip pair: ``to_numpy(to_tensor(a))`` is ``a`` bit for bit.
Their ``copy`` flag means what it means in the Python array API's ``asarray``: ``None`` shares memory
when the rules below allow it and copies otherwise, ``False`` shares or raises ``ValueError`` before
allocating anything, ``True`` always returns fresh memory.

to_tensor (numbers as in the README's rules table):
  1. Whatever NumPy accepts becomes a tensor with ``requires_grad=False``. A tensor is returned as is
     unless a cast, move or copy is asked for; then it keeps its autograd history, as ``Tensor.to`` does.
  2. The result shares memory only with an ndarray that is writable, aligned, in native byte order and
     free of negative strides, converted to the CPU without a cast.
  3. Hence memory the caller cannot write is never handed out as a writable tensor: it is copied.
  4. bool, int8..int64, uint8..uint64, float16/32/64 and complex64/128 map one to one; any other dtype
     is a TypeError unless ``dtype=`` asks for a cast.
  5. A masked array with masked elements is a ValueError; scipy.sparse input is a TypeError.
to_numpy:
  6. The result is detached, on the CPU, with conjugate and negative bits resolved.
  7. It shares memory with a strided CPU tensor of a NumPy dtype, free of conjugate and negative bits,
     when no cast is asked for; that view is read-only if the tensor requires grad or is expanded.
  8. bfloat16, float8 and complex32 need ``dtype=``; sparse, quantized, meta and nested tensors are a
     TypeError.
  9. A tensor on another device is copied to the host.
"""

from __future__ import annotations

import sys
import types
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["Device", "numpy_dtype", "shares_memory", "to_numpy", "to_tensor", "torch_dtype"]

Device: TypeAlias = torch.device | str | int | None
NDArray: TypeAlias = npt.NDArray[Any]

_NUMPY_BY_TORCH: dict[torch.dtype, np.dtype[Any]] = {
    torch.bool: np.dtype(np.bool_),
    torch.int8: np.dtype(np.int8),
    torch.int16: np.dtype(np.int16),
    torch.int32: np.dtype(np.int32),
    torch.int64: np.dtype(np.int64),
    torch.uint8: np.dtype(np.uint8),
    torch.uint16: np.dtype(np.uint16),
    torch.uint32: np.dtype(np.uint32),
    torch.uint64: np.dtype(np.uint64),
    torch.float16: np.dtype(np.float16),
    torch.float32: np.dtype(np.float32),
    torch.float64: np.dtype(np.float64),
    torch.complex64: np.dtype(np.complex64),
    torch.complex128: np.dtype(np.complex128),
}
# Either byte order of a NumPy dtype finds its torch dtype; the copy path swaps the bytes.
_TORCH_BY_NUMPY: dict[np.dtype[Any], torch.dtype] = {
    swapped: t for t, d in _NUMPY_BY_TORCH.items() for swapped in (d.newbyteorder("<"), d.newbyteorder(">"))
}
_CPU = torch.device("cpu")


def torch_dtype(dtype: npt.DTypeLike) -> torch.dtype:
    """The torch dtype holding exactly the values of NumPy ``dtype`` (either byte order)."""
    found = _TORCH_BY_NUMPY.get(np.dtype(dtype))
    if found is None:
        raise TypeError(
            f"NumPy dtype {np.dtype(dtype)} has no torch counterpart; cast first, e.g. a.astype(np.float64)"
        )
    return found


def numpy_dtype(dtype: torch.dtype) -> np.dtype[Any]:
    """The NumPy dtype holding exactly the values of torch ``dtype``."""
    found = _NUMPY_BY_TORCH.get(dtype)
    if found is None:
        wider = "complex64" if dtype.is_complex else "float32"
        raise TypeError(
            f"torch dtype {dtype} has no NumPy counterpart; "
            f"pass dtype=np.{wider} to to_numpy, or call t.to(torch.{wider}) first"
        )
    return found


def to_tensor(
    x: npt.ArrayLike | torch.Tensor,
    *,
    dtype: torch.dtype | None = None,
    device: Device = None,
    copy: bool | None = None,
) -> torch.Tensor:
    """Convert ``x`` to a tensor, sharing its memory only under rule 2 of the module docstring.

    Raises
    ------
    TypeError
        For a dtype torch lacks (without ``dtype=``) and for scipy.sparse input.
    ValueError
        For ragged sequences, masked elements, and ``copy=False`` when memory cannot be shared.
    """
    if isinstance(x, torch.Tensor):
        return _tensor_to_tensor(x, dtype, device, copy)
    a = _as_ndarray(x, copy)
    natural = _TORCH_BY_NUMPY.get(a.dtype)
    if natural is None and dtype is None:
        raise TypeError(
            f"cannot convert a {type(x).__name__} of NumPy dtype {a.dtype} to a tensor; pass dtype= to cast, "
            f"e.g. to_tensor(x, dtype=torch.float64), or cast first with a.astype(...)"
        )
    if dtype is not None:
        _check_keeps_imaginary(a.dtype.kind == "c", dtype)
    problem = _layout_problem(a)
    if problem is None and device is None and dtype in (None, natural) and copy is not True:
        return torch.from_numpy(a)  # the one sharing case (rule 2), kept free of needless work
    target = _CPU if device is None else torch.device(device)
    if copy is False:
        if dtype is not None and dtype != natural:
            problem = f"a cast from {a.dtype} to {dtype} was asked for"
        elif target != _CPU:
            problem = f"the target device is {target}"
        if problem is not None:
            raise ValueError(f"to_tensor(copy=False) cannot share this memory: {problem}; pass copy=None")
    fresh = False
    if natural is None and dtype is not None:  # a cast from a dtype torch lacks: NumPy casts
        wide = np.complex128 if dtype.is_complex else np.float64
        a, fresh = a.astype(_NUMPY_BY_TORCH.get(dtype, wide)), True
    elif problem is not None:
        # A fresh copy in logical order: aligned, native byte order, non-negative strides, writable.
        a, fresh = np.array(a, dtype=a.dtype.newbyteorder("="), order="K"), True
    return torch.from_numpy(a).to(device=target, dtype=dtype, copy=copy is True and not fresh)


def to_numpy(
    t: torch.Tensor | NDArray, *, dtype: npt.DTypeLike | None = None, copy: bool | None = None
) -> NDArray:
    """Convert ``t`` to an ndarray, sharing its memory only under rule 7 of the module docstring.

    Copies are writable and C-contiguous. An ndarray is returned as is unless a cast or copy is asked for.

    Raises
    ------
    TypeError
        For a dtype NumPy lacks (without ``dtype=``) and for sparse, quantized, meta or nested tensors.
    ValueError
        For ``copy=False`` when memory cannot be shared.
    """
    if isinstance(t, np.ndarray):
        return _ndarray_to_numpy(t, dtype, copy)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"to_numpy takes a Tensor or an ndarray, not {type(t).__name__}; use np.asarray")
    _check_has_numpy_layout(t)
    target = t.dtype if dtype is None else torch_dtype(dtype)
    _check_keeps_imaginary(t.is_complex(), target)
    if target not in _NUMPY_BY_TORCH:
        numpy_dtype(target)  # raises the TypeError that says how to upcast bfloat16 and friends
    problem = _export_problem(t, target)
    if problem is not None and copy is False:
        raise ValueError(f"to_numpy(copy=False) cannot share this memory: {problem}; pass copy=None")
    if problem is None and copy is not True:
        view: NDArray = (t.detach() if t.requires_grad else t).numpy()
        if t.requires_grad or _is_expanded(t):
            # A NumPy write must neither bypass autograd nor land on one element many times.
            view.flags.writeable = False
        return view
    # copy=True when nothing else copies; resolve_conj/resolve_neg return t itself when no bit is set.
    fresh = (
        t.detach()
        .resolve_conj()
        .resolve_neg()
        .to(device=_CPU, dtype=target, memory_format=torch.contiguous_format, copy=problem is None)
    )
    out: NDArray = fresh.numpy()
    return out


def shares_memory(a: torch.Tensor | NDArray, b: torch.Tensor | NDArray) -> bool:
    """Whether some byte of ``a`` is also a byte of ``b``: exact, on any device, reading no element.

    Empty arrays share nothing. Like ``np.shares_memory``, pathological stride patterns can be slow.
    """
    device_a, bytes_a = _byte_view(a)
    device_b, bytes_b = _byte_view(b)
    return device_a == device_b and bool(np.shares_memory(bytes_a, bytes_b))


def _as_ndarray(x: object, copy: bool | None) -> NDArray:
    """``x`` as an ndarray, through NumPy's own conversion, refusing what the rules refuse."""
    if isinstance(x, np.ma.MaskedArray):
        if np.ma.is_masked(x):
            raise ValueError(
                f"cannot convert a masked array with {np.count_nonzero(x.mask)} masked elements; "
                f"fill them first, e.g. x.filled(0)"
            )
        data: NDArray = x.data
        return data
    if isinstance(x, np.ndarray):
        return x
    sparse = sys.modules.get("scipy.sparse")  # if scipy is not imported, x cannot be sparse
    if sparse is not None and sparse.issparse(x):
        raise TypeError(
            f"will not densify a scipy.sparse {type(x).__name__} implicitly; "
            f"call x.toarray() first if it fits in memory"
        )
    try:
        return np.asarray(x, copy=False if copy is False else None)
    except ValueError as err:
        cause = str(err).splitlines()[0]
        if copy is False:
            raise ValueError(
                f"to_tensor(copy=False) found no memory to share in a {type(x).__name__} ({cause}); "
                f"pass copy=None"
            ) from err
        raise ValueError(
            f"cannot make an array of this {type(x).__name__} ({cause}); "
            f"nested sequences need the same length at each level"
        ) from err


def _check_keeps_imaginary(complex_source: bool, target: torch.dtype) -> None:
    # torch and NumPy both warn and drop the imaginary part; we refuse instead, since nothing warns.
    if complex_source and not target.is_complex:
        raise TypeError(f"a cast from complex to {target} would drop the imaginary part; take x.real first")


def _layout_problem(a: NDArray) -> str | None:
    """Why ``torch.from_numpy(a)`` would be unsafe or impossible, or None when it is fine."""
    flags = a.flags
    if not flags.writeable:
        return "the array is read-only"
    if not flags.aligned:
        return "the array is not aligned"
    if not a.dtype.isnative:
        return f"the array's byte order is not native ({a.dtype.str})"
    if a.ndim and min(a.strides) < 0:
        return f"the array has negative strides {a.strides}"
    return None


def _tensor_to_tensor(
    t: torch.Tensor, dtype: torch.dtype | None, device: Device, copy: bool | None
) -> torch.Tensor:
    moved = t.to(device=device, dtype=dtype, copy=copy is True)
    if copy is False and moved is not t:
        raise ValueError(
            f"to_tensor(copy=False) cannot move or cast a {t.dtype} tensor on {t.device} "
            f"to {dtype or t.dtype} on {device or t.device} without a copy; pass copy=None"
        )
    return moved


def _ndarray_to_numpy(a: NDArray, dtype: npt.DTypeLike | None, copy: bool | None) -> NDArray:
    cast = dtype is not None and np.dtype(dtype) != a.dtype
    if not cast and copy is not True:
        return a
    if copy is False:
        raise ValueError(f"to_numpy(copy=False) cannot cast {a.dtype} to {np.dtype(dtype)}; pass copy=None")
    return np.array(a, dtype=dtype, order="C")


def _check_has_numpy_layout(t: torch.Tensor) -> None:
    if t.is_nested:
        raise TypeError("cannot convert a nested tensor to one ndarray; convert each of t.unbind()")
    if t.layout != torch.strided:
        raise TypeError(f"cannot convert a tensor with layout {t.layout}; call t.to_dense() first")
    if t.is_quantized:
        raise TypeError(f"cannot convert a quantized {t.dtype} tensor; call t.dequantize() first")
    if t.is_meta:
        raise TypeError("a meta tensor has no data to convert; materialise it on a real device first")


def _export_problem(t: torch.Tensor, target: torch.dtype) -> str | None:
    """Why ``t`` converted to ``target`` cannot be a NumPy view of ``t``, or None when it can."""
    if not t.is_cpu:
        return f"the tensor is on {t.device}"
    if target != t.dtype:
        return f"a cast from {t.dtype} to {target} was asked for"
    if t.is_conj() or t.is_neg():
        return "the tensor has its conjugate or negative bit set; NumPy has no such lazy views"
    return None


def _is_expanded(t: torch.Tensor) -> bool:
    """Whether some element of ``t`` is reachable at two indices (a 0 stride on a dimension > 1)."""
    strides = t.stride()
    return 0 in strides and any(st == 0 and n > 1 for st, n in zip(strides, t.shape, strict=True))


def _byte_view(x: torch.Tensor | NDArray) -> tuple[torch.device, NDArray]:
    """The bytes of ``x`` as a uint8 array over the same addresses, for ``np.shares_memory``."""
    if isinstance(x, np.ndarray):
        return _CPU, x
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"shares_memory takes Tensors and ndarrays, not {type(x).__name__}")
    if x.is_nested or x.layout != torch.strided:
        raise TypeError(f"shares_memory needs strided tensors, not layout {x.layout}")
    size = x.element_size()
    # NumPy only does address arithmetic on this description; it never dereferences the pointer,
    # so describing device memory, or a dtype NumPy lacks, is safe.
    interface = {
        "version": 3,
        "typestr": "|u1",
        "data": (x.data_ptr(), True),
        "shape": (0,) if x.is_meta else (*x.shape, size),
        "strides": (1,) if x.is_meta else (*(s * size for s in x.stride()), 1),
    }
    view: NDArray = np.asarray(types.SimpleNamespace(__array_interface__=interface))
    return x.device, view
