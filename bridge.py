"""Typed numpy <-> torch conversion with a written, tested memory-sharing contract.

Copy this file into your project; it needs only numpy and torch.

``to_tensor`` and ``to_numpy`` are a round-trip pair: ``to_numpy(to_tensor(a))`` is ``a`` bit for bit.
Their ``copy`` flag means what it means in the Python array API's ``asarray``: ``None`` shares memory
when the rules below allow it and copies otherwise, ``False`` shares or raises ``ValueError`` before
allocating anything, ``True`` always returns fresh memory.

to_tensor (numbers as in the README's rules table):
  1. Whatever NumPy accepts becomes a tensor with ``requires_grad=False``. A tensor is returned as is
     unless a cast, move or copy is asked for; then it keeps its autograd history, as ``Tensor.to`` does.
  2. The result shares memory only with an ndarray that is writable, aligned, in native byte order, with
     non-negative strides that are multiples of its item size and no element reached by two indices,
     converted to the CPU without a cast. ``copy=False`` with an object NumPy converts (a DataFrame, an
     ``__array__``) shares or raises even when the object ignores the request not to copy.
  3. Hence memory the caller cannot write is never handed out as a writable tensor: it is copied (a
     result of ``np.broadcast_arrays`` too, which NumPy is making read-only).
  4. bool, int8..int64, uint8..uint64, float16/32/64 and complex64/128 (under any NumPy alias) map one
     to one; any other dtype is a TypeError unless ``dtype=`` asks for a cast. On every path a cast from
     complex to real, or from or to a dtype torch cannot cast (int4, bits8...), is a TypeError; one to an
     integer dtype of NaN, inf or values outside its range (from float or integer) a ValueError, checked
     after ``copy=False`` has refused the cast. Nothing warns.
  5. A masked array with masked elements is a ValueError; scipy.sparse input is a TypeError.
to_numpy:
  6. The result is detached, on the CPU, with conjugate and negative bits resolved.
  7. It shares memory with a strided CPU tensor of a NumPy dtype, free of conjugate and negative bits,
     when no cast or foreign byte order is asked for; that view is read-only if the tensor requires grad
     or two indices may reach one element. Copies are fresh, writable and C-contiguous. Not covered:
     memory autograd uses but that does not say so (``w.detach()``, ``w.data``, a tensor saved for
     backward) gives a writable view, as ``Tensor.numpy`` does.
  8. bfloat16, float8 and complex32 need ``dtype=``; sparse, quantized, meta and nested tensors are a
     TypeError. An ndarray is returned as is; a copy or cast of a masked array with masked elements is
     a ValueError, as in rule 5.
  9. A tensor on another device is copied to the host.
to_tensor of other libraries:
 10. An array exporting DLPack becomes a tensor on its device, sharing memory only when the export is
     writable (DLPack 1.0's read-only flag), aligned and free of negative strides.
devices:
 11. Every name of the host ("cpu", "cpu:0", torch.device("cpu", 0)) is the CPU. A device torch does not
     know, an accelerator it cannot use here, or an index past its last device is a ValueError naming
     the device and what is available; "meta" needs no hardware.

Works with NumPy 1.26 and later; the shims for old NumPy say which versions need them.
"""

from __future__ import annotations

import ctypes
import inspect
import math
import sys
import types
from collections.abc import Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

__all__ = ["DLPackArray", "Device", "numpy_dtype", "shares_memory", "to_numpy", "to_tensor", "torch_dtype"]

Device: TypeAlias = torch.device | str | int | None
NDArray: TypeAlias = npt.NDArray[Any]


class DLPackArray(Protocol):
    """An array of any library that exports DLPack (array_api_strict, CuPy, JAX...): it has
    ``__dlpack__`` and this method."""

    def __dlpack_device__(self) -> Any: ...


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
# Dtypes NumPy lacks that torch casts exactly to float32 or complex64, as numpy_dtype advises. The others
# it lacks (int4, uint3, bits8, float4_e2m1fn_x2, quantized...) torch cannot cast at all.
_UPCASTABLE = {torch.bfloat16, torch.complex32} | {
    d for d in vars(torch).values() if isinstance(d, torch.dtype) and str(d).startswith("torch.float8_")
}
# torch (2.13) compares no uint16/32/64 values; their bits read as signed integers it does (_ints_fit).
_SIGNED_TWIN = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}
_CPU = torch.device("cpu")
_NUMPY_PROTOCOLS = ("__array__", "__array_interface__", "__array_struct__")  # besides the buffer protocol
# NumPy's flag bits (ndarraytypes.h). A result of np.broadcast_arrays is writable but warns on a write,
# and on a read of flags.writeable: NumPy is making it read-only, so rule 3 treats it as read-only now.
_WRITEABLE, _WARN_ON_WRITE = 0x0400, 1 << 31
# NumPy 1.26 (the floor) has no np.asarray(..., copy=), added in 2.0: _asarray. Delete at a 2.0 floor.
_NUMPY_1 = np.lib.NumpyVersion(np.__version__) < "2.0.0"
# Our own prototypes, so that ctypes.pythonapi's shared ones keep their settings.
_CAPSULE_NAME = ctypes.PYFUNCTYPE(ctypes.c_char_p, ctypes.py_object)(("PyCapsule_GetName", ctypes.pythonapi))
_CAPSULE_POINTER = ctypes.PYFUNCTYPE(ctypes.c_size_t, ctypes.py_object, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


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
    if found is None and dtype not in _UPCASTABLE:
        raise TypeError(
            f"torch dtype {dtype} has no NumPy counterpart, and torch cannot cast it to one; "
            f"unpack it with the library that made it"
        )
    if found is None:
        wider = "complex64" if dtype.is_complex else "float32"
        raise TypeError(
            f"torch dtype {dtype} has no NumPy counterpart; "
            f"pass dtype=np.{wider} to to_numpy, or call t.to(torch.{wider}) first"
        )
    return found


def to_tensor(
    x: npt.ArrayLike | torch.Tensor | DLPackArray,
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
        For ragged sequences, masked elements, values a cast to ``dtype`` would lose, a device this
        process cannot use, and ``copy=False`` when memory cannot be shared.
    """
    target = None if device is None else _device(device)
    if isinstance(x, torch.Tensor):
        return _tensor_to_tensor(x, None, dtype, target, copy)
    if hasattr(x, "__dlpack__") and not isinstance(x, np.ndarray):
        return _tensor_to_tensor(*_from_dlpack(x, copy), dtype, target, copy)
    a = _as_ndarray(x, copy)
    natural = _TORCH_BY_NUMPY.get(a.dtype)
    if natural is None and dtype is None:
        raise TypeError(
            f"cannot convert a {type(x).__name__} of NumPy dtype {a.dtype} to a tensor; pass dtype= to cast, "
            f"e.g. to_tensor(x, dtype=torch.float64), or cast first with a.astype(...)"
        )
    if dtype is not None:
        _check_cast_types(a.dtype, dtype)
    problem = _layout_problem(a)
    if copy is False and problem is None:
        if dtype not in (None, natural):
            problem = f"a cast from {a.dtype} to {dtype} was asked for"
        elif target not in (None, _CPU):
            problem = f"the target device is {target}"
    if copy is False and problem is not None:
        raise ValueError(f"to_tensor(copy=False) cannot share this memory: {problem}; pass copy=None")
    if dtype is not None:
        _check_cast_values(a, dtype)  # reads every value: only once copy=False has refused the cast
    if natural is None and dtype is not None:  # a cast from a dtype torch lacks: NumPy casts
        a = _fresh(a, _NUMPY_BY_TORCH.get(dtype, np.complex128 if dtype.is_complex else np.float64))
    elif natural is not None and (problem is not None or a.dtype.type is not numpy_dtype(natural).type):
        a = a.view(numpy_dtype(natural)) if problem is None else _fresh(a, numpy_dtype(natural))  # torch
        # refuses aliases such as np.ulonglong: the canonical dtype
    shared = torch.from_numpy(a)  # the one sharing case (rule 2) unless a copy was made above or below
    if problem is None and target in (None, _CPU) and dtype in (None, natural) and copy is not True:
        return shared  # kept free of needless work: this is the hot path
    return shared.to(device=target, dtype=dtype, copy=copy is True and problem is None)


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
        For ``copy=False`` when memory cannot be shared, values a cast to ``dtype`` would lose, and a
        copy or cast of a masked array with masked elements.
    """
    if isinstance(t, np.ndarray):
        return _ndarray_to_numpy(t, dtype, copy)
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"to_numpy takes a Tensor or an ndarray, not {type(t).__name__}; use np.asarray")
    _check_has_numpy_layout(t)
    wanted = None if dtype is None else np.dtype(dtype)
    target = t.dtype if wanted is None else torch_dtype(wanted)
    if target not in _NUMPY_BY_TORCH:
        numpy_dtype(target)  # raises the TypeError that says how to upcast bfloat16 and friends
    if target != t.dtype:
        _check_cast_types(t.dtype, target)
    problem = _export_problem(t, target, wanted)
    if problem is not None and copy is False:
        raise ValueError(f"to_numpy(copy=False) cannot share this memory: {problem}; pass copy=None")
    if target != t.dtype:
        _check_cast_values(t, target)  # reads every value: only once copy=False has refused the cast
    if problem is None and copy is not True:
        view: NDArray = t.detach().numpy()
        if t.requires_grad or (not t.is_contiguous() and _may_overlap(t.shape, t.stride())):
            # A NumPy write must neither bypass autograd nor land on one element many times.
            view.flags.writeable = False
        return view
    # copy_ casts and moves to the host into fresh C-order memory (Tensor.to can keep a permuted layout);
    # the bits are resolved first since copy_ fails on a negative view into bool. Both return t when unset.
    out: NDArray = torch.empty(t.shape, dtype=target).copy_(t.detach().resolve_conj().resolve_neg()).numpy()
    if wanted is not None and not wanted.isnative:
        out = out.byteswap(inplace=True).view(wanted)  # the byte order asked for, still one copy
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
        return _unmasked(x)
    if isinstance(x, np.ndarray):
        return x
    sparse = sys.modules.get("scipy.sparse")  # if scipy is not imported, x cannot be sparse
    if sparse is not None and sparse.issparse(x):
        raise TypeError(
            f"will not densify a scipy.sparse {type(x).__name__} implicitly; "
            f"call x.toarray() first if it fits in memory"
        )
    if copy is False:
        _check_may_share(x)
    try:
        a = _asarray(x, copy)
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
    except RuntimeError as err:  # an item's __array__ failed: a tensor requiring grad, a conjugate view
        raise ValueError(
            f"cannot make an array of this {type(x).__name__}: an item refused ({err}); "
            f"for a sequence of tensors, call torch.stack on them instead"
        ) from err
    # A producer may take copy=False and copy anyway (pandas 2's DataFrame of mixed dtypes; any object
    # under NumPy 1.26): fresh memory is new on each conversion, shared memory is the same each time.
    if copy is False and a.size and not np.may_share_memory(a, _asarray(x, copy)):
        raise ValueError(
            f"to_tensor(copy=False) found no memory to share in a {type(x).__name__}: it converts to new "
            f"memory each time; pass copy=None"
        )
    return a


def _unmasked(x: np.ma.MaskedArray[Any, Any]) -> NDArray:
    """The data of a masked array that has no masked element (rules 5 and 8)."""
    masked = np.count_nonzero(x.mask)  # 0 for np.ma.nomask too
    if masked:
        raise ValueError(
            f"cannot convert a masked array with {masked} masked elements; fill them first, e.g. x.filled(0)"
        )
    data: NDArray = x.data
    return data


def _asarray(x: object, copy: bool | None) -> NDArray:
    """``np.asarray(x, copy=copy)`` for copy False or None. NumPy 1.26 has no such copy=: there it copies
    when it must, and _as_ndarray's check after it refuses the copy (allocated, so copy=False allocates
    before it raises on NumPy 1.26 only)."""
    if _NUMPY_1:
        return np.asarray(x)
    keywords: dict[str, Any] = {"copy": copy}  # a keyword NumPy 1.26's stubs lack, so mypy passes there too
    return np.asarray(x, **keywords)


def _check_may_share(x: object) -> None:
    """Refuse, under copy=False, what NumPy can only copy, before NumPy reads it (and warns about an item's
    legacy ``__array__``, or allocates): NumPy shares only through its array protocols and buffers."""
    if not any(hasattr(x, name) for name in _NUMPY_PROTOCOLS) and not _has_buffer(x):
        raise ValueError(
            f"to_tensor(copy=False) found no memory to share in a {type(x).__name__}: NumPy builds a new "
            f"array from it; pass copy=None"
        )
    if _legacy_array(x):
        raise ValueError(
            f"to_tensor(copy=False) cannot tell whether a {type(x).__name__} shares memory: its __array__ "
            f"takes no copy= argument; pass copy=None, or add copy= to __array__"
        )


def _has_buffer(x: object) -> bool:
    try:
        memoryview(x)  # type: ignore[arg-type]  # the question is whether x is a buffer
    except TypeError:
        return False
    return True


def _legacy_array(x: object) -> bool:
    """Whether ``x`` has an ``__array__`` older than NumPy 2, which NumPy warns about under copy=False."""
    method = getattr(type(x), "__array__", None)
    try:
        parameters = inspect.signature(method).parameters.values() if method is not None else None
    except (TypeError, ValueError):  # a C implementation: NumPy's own types take copy=
        return False
    return parameters is not None and all(p.name != "copy" and p.kind != p.VAR_KEYWORD for p in parameters)


def _check_cast_types(source: torch.dtype | np.dtype[Any], target: torch.dtype | np.dtype[Any]) -> None:
    """Refuse, from the dtypes alone, the casts torch cannot do and those that drop an imaginary part."""
    for dtype in (source, target):
        if isinstance(dtype, torch.dtype) and dtype not in _NUMPY_BY_TORCH and dtype not in _UPCASTABLE:
            raise TypeError(
                f"{dtype} is a dtype torch cannot cast to or from; convert it with the library that made it"
            )
    if _kind(source) == "c" and _kind(target) in "fib":
        raise TypeError(f"a cast from complex to {target} would drop the imaginary part; take x.real first")


def _check_cast_values(x: torch.Tensor | NDArray, target: torch.dtype | np.dtype[Any]) -> None:
    """Refuse the casts to integers NumPy and torch do silently or with a warning: no value is lost
    unseen. Reads every value (a sparse tensor's stored ones, a nested tensor's components)."""
    source = _kind(x.dtype)
    if _kind(target) != "i" or source not in "fi" or getattr(x, "is_meta", False):
        return
    info = _iinfo(target)
    for values in _stored_values(x):
        if not (_floats_fit(values, info) if source == "f" else _ints_fit(values, info)):
            nan = "NaN, infinite or " if source == "f" else ""
            raise ValueError(
                f"cannot cast {x.dtype} values that are {nan}outside [{info.min}, {info.max}] to {target}; "
                f"replace them first, e.g. with np.clip{' or np.nan_to_num' if nan else ''}"
            )


def _floats_fit(x: torch.Tensor | NDArray, info: torch.iinfo | np.iinfo[Any]) -> bool:
    """Whether every float of ``x`` truncates to an integer in [info.min, info.max]."""
    # The cast truncates: x must lie in (min - 1, max + 1). max + 1 is a power of two, exact in every
    # float type; min - 1 may round to min, so min itself is let in by name, unless it rounded to -inf.
    # NaN fails every test.
    with np.errstate(over="ignore"):  # a bound beyond float16's range is inf: still the right test
        at_min = (x == info.min) & (x > -math.inf)
        inside = ((x > float(info.min) - 1) | at_min) & (x < float(info.max) + 1)
    return bool(inside.all())


def _ints_fit(x: torch.Tensor | NDArray, info: torch.iinfo | np.iinfo[Any]) -> bool:
    """Whether every integer of ``x`` lies in [info.min, info.max], comparing only with bounds that x's
    own dtype holds (NumPy 1.26 would compare uint64 with int64 bounds as float64, inexactly)."""
    own = _iinfo(x.dtype)
    low, high = max(info.min, own.min), min(info.max, own.max)
    if (low, high) == (own.min, own.max):
        return True  # the target holds every value of the source
    if isinstance(x, np.ndarray):
        return bool(((x >= x.dtype.type(low)) & (x <= x.dtype.type(high))).all())
    if x.dtype in _SIGNED_TWIN:  # then low is 0 and high < 2**(bits - 1): the value fits iff its bits,
        x = x.view(_SIGNED_TWIN[x.dtype])  # read as a signed integer, do (a larger one reads negative)
    return bool(((x >= low) & (x <= high)).all())


def _iinfo(dtype: torch.dtype | np.dtype[Any]) -> torch.iinfo | np.iinfo[Any]:
    return torch.iinfo(dtype) if isinstance(dtype, torch.dtype) else np.iinfo(dtype)


def _stored_values(x: torch.Tensor | NDArray) -> list[torch.Tensor] | list[NDArray]:
    """The strided arrays holding the values a cast of ``x`` converts, as ``Tensor.to`` sees them."""
    if isinstance(x, np.ndarray):
        return [x]
    if x.is_nested:
        return list(x.unbind())
    if x.layout == torch.sparse_coo:
        return [x._values()]  # the stored values, duplicates and all: the cast converts each
    if x.layout != torch.strided:
        return [x.values()]  # CSR, CSC, BSR, BSC
    return [x]


def _kind(dtype: torch.dtype | np.dtype[Any]) -> str:
    """'c', 'f', 'i' (signed or unsigned), 'b' or 'o' (anything else), for either library's dtypes."""
    if isinstance(dtype, torch.dtype):
        return (
            "c"
            if dtype.is_complex
            else "f"
            if dtype.is_floating_point
            else "b"
            if dtype == torch.bool
            else "i"
        )
    return {"c": "c", "f": "f", "i": "i", "u": "i", "b": "b"}.get(dtype.kind, "o")


def _fresh(a: NDArray, dtype: npt.DTypeLike) -> NDArray:
    """A new writable, C-contiguous array of ``a`` as ``dtype``; a float overflow is inf, as in torch."""
    out = np.empty(a.shape, dtype)  # exactly ``dtype``: np.array would keep an alias such as np.ulonglong
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # what warns was refused by _check_cast_values
            np.copyto(out, a, casting="unsafe")
    except (OverflowError, ValueError) as err:  # Python objects or strings the cast cannot hold
        raise ValueError(
            f"cannot cast {a.dtype} values to {out.dtype}: {err}; convert or replace them first"
        ) from err
    return out


def _device(device: torch.device | str | int) -> torch.device:
    """``device`` as a torch.device this process can use; every name of the host ("cpu:0" too) is the one
    CPU device, and "meta" needs no hardware. estimators.py checks its ``device=`` with it too.

    Raises
    ------
    ValueError
        For a device torch does not know, an accelerator it cannot use here (a CPU-only build asked
        for "cuda"), or an index past the last device of its type.
    """
    try:
        found = torch.device(device)
    except RuntimeError as err:  # an unknown name, or an index where no accelerator exists
        raise ValueError(f"no device {device!r} here ({err}); available: {_available_devices()}") from err
    if found.type == "cpu":
        return _CPU
    backend = getattr(torch, found.type, None)  # torch.cuda, torch.xpu, torch.mps...; meta has none
    if backend is None or not hasattr(backend, "is_available"):
        return found
    if not backend.is_available():  # torch itself would fail later with an AssertionError or worse
        raise ValueError(
            f"device {found} is not available: this torch build or machine has no usable {found.type}; "
            f"available: {_available_devices()}"
        )
    count = backend.device_count()
    if found.index is not None and found.index >= count:
        raise ValueError(
            f"device {found} does not exist: torch sees {count} {found.type} devices "
            f"({found.type}:0 to {found.type}:{count - 1})"
        )
    return found


def _available_devices() -> str:
    """The devices to suggest, "cpu" first, as one string."""
    names = ["cpu"]
    accelerator = torch.accelerator.current_accelerator() if torch.accelerator.is_available() else None
    if accelerator is not None:
        names += [f"{accelerator.type}:{i}" for i in range(torch.accelerator.device_count())]
    return ", ".join(names)


def _layout_problem(a: NDArray) -> str | None:
    """Why ``torch.from_numpy(a)`` would be unsafe or impossible, or None when it is fine."""
    flags = a.flags
    if not flags.num & _WRITEABLE or flags.num & _WARN_ON_WRITE:  # read as bits: flags.writeable warns
        return "the array is read-only"
    if not flags.aligned:
        return "the array is not aligned"
    if not a.dtype.isnative:
        return f"the array's byte order is not native ({a.dtype.str})"
    if a.ndim and min(a.strides) < 0:
        return f"the array has negative strides {a.strides}"
    if any(s % a.itemsize for s in a.strides):  # a field of a structured array; a size-1 axis may too
        return f"the array's strides {a.strides} are not multiples of its item size {a.itemsize}"
    if not (flags.c_contiguous or flags.f_contiguous) and _may_overlap(a.shape, a.strides):
        # torch refuses in-place writes to such a tensor; rule 7 makes such a view read-only
        return f"two indices may reach one element (strides {a.strides})"
    return None


def _tensor_to_tensor(
    t: torch.Tensor,
    problem: str | None,
    dtype: torch.dtype | None,
    device: torch.device | None,
    copy: bool | None,
) -> torch.Tensor:
    """``t`` cast, moved or copied as asked; ``problem`` says why its memory must not be shared (never
    under copy=False, which _from_dlpack refuses first)."""
    cast = None if dtype == t.dtype else dtype
    if cast is not None:
        _check_cast_types(t.dtype, cast)
    # A cast, or a move to another kind of device, is refused before it allocates or reads anything.
    if copy is False and (cast is not None or (device or t.device).type != t.device.type):
        raise _cannot_move(t, dtype, device)
    if cast is not None:
        _check_cast_values(t, cast)
    moved = t.to(device=device, dtype=dtype, copy=copy is True or problem is not None)
    if copy is False and moved is not t:  # a move between devices of one kind, such as cuda:0 -> cuda:1
        raise _cannot_move(t, dtype, device)
    return moved


def _cannot_move(t: torch.Tensor, dtype: torch.dtype | None, device: torch.device | None) -> ValueError:
    return ValueError(
        f"to_tensor(copy=False) cannot move or cast a {t.dtype} tensor on {t.device} "
        f"to {dtype or t.dtype} on {device or t.device} without a copy; pass copy=None"
    )


def _from_dlpack(x: Any, copy: bool | None) -> tuple[torch.Tensor, str | None]:
    """A tensor over the memory ``x`` exports through DLPack, and why it must not be shared (or None)."""
    problem: str | None
    for ask in (None, True):  # share; else the producer copies into a layout torch can import
        try:
            capsule = _export(x, ask)
            problem, importable = _dlpack_problem(capsule)
        except BufferError as err:  # a layout the producer cannot export as it is
            problem, importable = str(err), False
        if problem is not None and copy is False:
            raise ValueError(f"to_tensor(copy=False) cannot share this memory: {problem}; pass copy=None")
        if importable:
            return torch.utils.dlpack.from_dlpack(capsule), problem
    if hasattr(x, "__array_namespace__"):  # (copy=False has raised above)
        # A producer older than DLPack 1.0 may refuse read-only memory, which it cannot flag (array-api-
        # strict over NumPy before 2.1): a copy its own library makes is writable, ours, and exports.
        capsule = _export(x.__array_namespace__().asarray(x, copy=True), None)
        problem, importable = _dlpack_problem(capsule)
        if importable:
            return torch.utils.dlpack.from_dlpack(capsule), None
    raise ValueError(
        f"cannot import this {type(x).__name__} through DLPack: {problem}; copy it to NumPy first"
    )


def _export(x: Any, copy: bool | None) -> Any:
    try:
        return x.__dlpack__(max_version=(1, 0), copy=copy)
    except (TypeError, NotImplementedError):  # a producer older than DLPack 1.0 takes neither argument;
        return x.__dlpack__()  # array-api-strict says NotImplementedError over NumPy before 2.1


class _DLTensor(ctypes.Structure):
    _fields_ = [  # the DLPack standard's C struct
        ("data", ctypes.c_void_p),
        ("device", ctypes.c_int32 * 2),
        ("ndim", ctypes.c_int32),
        ("dtype", ctypes.c_uint8 * 4),  # code, bits, lanes (2 bytes)
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),  # NULL for C-contiguous
        ("byte_offset", ctypes.c_uint64),
    ]


class _DLManagedVersioned(ctypes.Structure):
    _fields_ = [
        ("version", ctypes.c_uint32 * 2),
        ("manager", ctypes.c_void_p * 2),
        ("flags", ctypes.c_uint64),
    ]


def _dlpack_problem(capsule: Any) -> tuple[str | None, bool]:
    """Why the memory in a DLPack ``capsule`` must not be shared (or None), and whether torch can import it.

    Reads the DLPack structs: torch ignores the read-only flag (a writable alias of read-only memory,
    against rule 3), aborts the process on negative strides and may crash reading misaligned memory.
    """
    name = _CAPSULE_NAME(capsule)
    versioned = name == b"dltensor_versioned"
    managed = _CAPSULE_POINTER(capsule, name)
    dl = _DLTensor.from_address(managed + ctypes.sizeof(_DLManagedVersioned) if versioned else managed)
    if dl.strides and any(dl.strides[i] < 0 for i in range(dl.ndim)):
        return "it has negative strides, which torch cannot import", False
    code, bits = dl.dtype[0], dl.dtype[1]
    if ((dl.data or 0) + dl.byte_offset) % max(1, bits // (16 if code == 5 else 8)):  # 5: complex
        return "the memory is not aligned (torch crashes reading it)", False
    if not versioned:
        return "its producer predates DLPack 1.0, so it cannot say whether the memory is read-only", True
    if _DLManagedVersioned.from_address(managed).flags & 1:  # DLPACK_FLAG_BITMASK_READ_ONLY
        return "it is exported read-only", True
    return None, True


def _ndarray_to_numpy(a: NDArray, dtype: npt.DTypeLike | None, copy: bool | None) -> NDArray:
    wanted = a.dtype if dtype is None else np.dtype(dtype)
    if wanted == a.dtype and copy is not True:
        return a
    if copy is False:
        raise ValueError(f"to_numpy(copy=False) cannot cast {a.dtype} to {wanted}; pass copy=None")
    _check_cast_types(a.dtype, wanted)
    if isinstance(a, np.ma.MaskedArray):  # a copy is a plain ndarray: the mask would be lost
        a = _unmasked(a)
    _check_cast_values(a, wanted)
    return _fresh(a, wanted)


def _check_has_numpy_layout(t: torch.Tensor) -> None:
    if t.is_nested:
        raise TypeError("cannot convert a nested tensor to one ndarray; convert each of t.unbind()")
    if t.layout != torch.strided:
        raise TypeError(f"cannot convert a tensor with layout {t.layout}; call t.to_dense() first")
    if t.is_quantized:
        raise TypeError(f"cannot convert a quantized {t.dtype} tensor; call t.dequantize() first")
    if t.is_meta:
        raise TypeError("a meta tensor has no data to convert; materialise it on a real device first")


def _export_problem(t: torch.Tensor, target: torch.dtype, wanted: np.dtype[Any] | None) -> str | None:
    """Why ``t`` converted to ``target`` cannot be a NumPy view of ``t``, or None when it can."""
    if not t.is_cpu:
        return f"the tensor is on {t.device}"
    if target != t.dtype:
        return f"a cast from {t.dtype} to {target} was asked for"
    if t.is_conj() or t.is_neg():
        return "the tensor has its conjugate or negative bit set; NumPy has no such lazy views"
    if wanted is not None and not wanted.isnative:
        return f"the byte order of {wanted.str} was asked for"
    return None


def _may_overlap(shape: Sequence[int], strides: Sequence[int]) -> bool:
    """Whether two indices may reach one element: an expansion, or an ``as_strided`` view. Strides count
    in any unit no larger than an element (a tensor's elements, an ndarray's bytes).

    Conservative: False proves each element has one index; some rare non-overlapping layouts say True.
    Callers first ask the contiguity flag their library keeps: the common case.
    """
    span = 1  # units reachable through the dimensions of smaller stride
    for stride, n in sorted((abs(s), n) for s, n in zip(strides, shape, strict=True) if n > 1):
        if stride < span:
            return True
        span += stride * (n - 1)
    return False


def _byte_view(x: torch.Tensor | NDArray) -> tuple[torch.device, NDArray]:
    """The bytes of ``x`` as a uint8 array over the same addresses, for ``np.shares_memory``."""
    if isinstance(x, np.ndarray):
        return _CPU, x
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"shares_memory takes Tensors and ndarrays, not {type(x).__name__}")
    if x.is_nested or x.layout != torch.strided:
        raise TypeError(f"shares_memory needs strided tensors, not layout {x.layout}")
    if x.is_meta or x.numel() == 0:
        # No byte to share. NumPy before 2.4 also refuses the NULL data pointer torch gives these.
        return x.device, np.empty(0, np.uint8)
    size = x.element_size()
    # NumPy only does address arithmetic on this description; it never dereferences the pointer,
    # so describing device memory, or a dtype NumPy lacks, is safe.
    interface = {
        "version": 3,
        "typestr": "|u1",
        "data": (x.data_ptr(), True),
        "shape": (*x.shape, size),
        "strides": (*(s * size for s in x.stride()), 1),
    }
    view: NDArray = np.asarray(types.SimpleNamespace(__array_interface__=interface))
    return x.device, view
