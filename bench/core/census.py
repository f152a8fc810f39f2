"""Weight census of a model: parameter and non-zero counts, dtypes. Proof that a compression happened.

Parameters are logical: a 4-bit packed weight of n values counts n parameters of dtype nf4 (or fp4), not the
n/2 bytes that hold them; its quantization state (absmax, code book, int8 row scales) counts no parameters.
What every dtype occupies is counted separately, in bytes, quantization state included."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeAlias

from pydantic import BaseModel

if TYPE_CHECKING:
    from torch import Tensor
    from torch.nn import Module


class Census(BaseModel):
    """Counts over the model's weight tensors (integer buffers such as position ids are left out)."""

    parameters: int
    nonzero: int
    sparsity: float
    dtypes: dict[str, int]
    """Parameters per logical dtype name, e.g. {"float32": 11_000_000, "qint8": 10_600_000, "nf4": 21_000_000}."""
    stored_bytes: dict[str, int] = {}
    """Bytes held per storage dtype, quantization state included (packed 4-bit weights are uint8 here)."""


@dataclass(frozen=True)
class PackedWeight:
    """A weight stored packed (bitsandbytes 4-bit): `elements` logical values of `dtype` held in `stored`."""

    dtype: str
    elements: int
    stored: Tensor
    values: Callable[[], Tensor] | None = None
    """The weight unpacked (for its non-zero count), where the runtime can unpack it here."""


@dataclass(frozen=True)
class QuantizationState:
    """A tensor that describes how other weights are quantized (scales, code books): bytes, not parameters."""

    stored: Tensor


class HostArray(Protocol):
    """A numpy array, as exported graphs hold their weights (only what a census reads of it)."""

    @property
    def size(self) -> int: ...

    @property
    def nbytes(self) -> int: ...


Weight: TypeAlias = "Tensor | HostArray | PackedWeight | QuantizationState"
"""One entry of a model's weight census: a torch tensor, a numpy array (exported graphs), a packed 4-bit weight
or a quantization state."""

PACKED_STATE_OWNERS = ("Linear4bit", "LinearNF4", "LinearFP4", "Linear8bitLt")
"""bitsandbytes layers: every state entry besides their weight and bias is quantization state."""


def is_wrapper_tensor(value: object) -> bool:
    """A tensor subclass that stores other tensors (torchao's quantized weights, for example)."""
    return type(value).__name__ not in ("Tensor", "Parameter") and hasattr(value, "__tensor_flatten__")


def state_dict_tensors(module: Module) -> Iterator[tuple[str, Weight]]:
    """Weight tensors of a torch module, including packed quantized weights, each once."""
    import torch

    seen: set[tuple[int, int]] = set()

    def walk(name: str, value: object) -> Iterator[tuple[str, Weight]]:
        if isinstance(value, torch.Tensor) and is_wrapper_tensor(value):
            inner, _ = value.__tensor_flatten__()  # type: ignore[attr-defined]
            for part in inner:
                yield from walk(f"{name}.{part}", getattr(value, part))
        elif isinstance(value, torch.Tensor):
            key = (value.data_ptr(), value.numel()) if not value.is_quantized else (id(value), 0)
            if key in seen:
                return
            seen.add(key)
            yield name, value
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                yield from walk(f"{name}.{i}", item)

    packed, owners = _bnb_layers(module)
    for name, value in module.state_dict().items():
        if name in packed:
            yield name, packed[name]
        elif any(name.startswith(f"{owner}.") and name not in (f"{owner}.weight", f"{owner}.bias") for owner in owners):
            yield name, QuantizationState(value)
        else:
            yield from walk(name, value)


def _bnb_layers(module: Module) -> tuple[dict[str, PackedWeight], list[str]]:
    """The packed weights of bitsandbytes 4-bit layers (by state key) and the names of all bitsandbytes layers."""
    import math

    packed: dict[str, PackedWeight] = {}
    owners: list[str] = []
    for name, sub in module.named_modules():
        if type(sub).__name__ not in PACKED_STATE_OWNERS:
            continue
        owners.append(name)
        weight = getattr(sub, "weight", None)
        state = getattr(weight, "quant_state", None)
        if weight is None or state is None:  # 8-bit, or 4-bit not yet quantized (still a float weight)
            continue
        packed[f"{name}.weight" if name else "weight"] = PackedWeight(
            dtype=str(getattr(state, "quant_type", "int4")),
            elements=math.prod(state.shape),
            stored=weight.data,
            values=_unpacker(weight, state),
        )
    return packed, owners


def _unpacker(weight: Tensor, state: object) -> Callable[[], Tensor]:
    def unpack() -> Tensor:
        from bitsandbytes.functional import dequantize_4bit

        unpacked: Tensor = dequantize_4bit(weight.data, quant_state=state)
        return unpacked

    return unpack


def _dtype_name(tensor: object) -> str:
    return str(getattr(tensor, "dtype", type(tensor).__name__)).removeprefix("torch.")


def _is_weight(tensor: object) -> bool:
    name = _dtype_name(tensor)
    return name.startswith(("float", "bfloat", "qint", "quint", "int8", "uint8", "float8")) or name in (
        "half",
        "int4",
        "uint4",
    )


def _nonzero(tensor: object) -> int:
    try:
        import torch

        if isinstance(tensor, torch.Tensor):
            if tensor.is_quantized:
                tensor = tensor.dequantize()
            return int(torch.count_nonzero(tensor).item())
    except ImportError:  # numpy-only runtimes
        pass
    import numpy

    return int(numpy.count_nonzero(numpy.asarray(tensor)))


def _elements(tensor: object) -> int:
    numel = getattr(tensor, "numel", None)
    return int(numel() if callable(numel) else getattr(tensor, "size", 0))


def _bytes(tensor: object) -> int:
    element_size = getattr(tensor, "element_size", None)
    if callable(element_size):
        return _elements(tensor) * int(element_size())
    return int(getattr(tensor, "nbytes", 0))


def _packed_nonzero(weight: PackedWeight) -> int:
    """Non-zeros of the unpacked weight, or every element where it cannot be unpacked here (no kernel)."""
    if weight.values is None:
        return weight.elements
    try:
        return _nonzero(weight.values())
    except Exception:  # an unpacking kernel missing on this device: count it dense
        return weight.elements


def take_census(tensors: Iterable[tuple[str, Weight]]) -> Census:
    """Count logical parameters, non-zeros and dtypes over weights, and the bytes every dtype holds."""
    dtypes: Counter[str] = Counter()
    stored: Counter[str] = Counter()
    total = 0
    nonzero = 0
    for _, tensor in tensors:
        if isinstance(tensor, QuantizationState):
            stored[_dtype_name(tensor.stored)] += _bytes(tensor.stored)
            continue
        if isinstance(tensor, PackedWeight):
            dtypes[tensor.dtype] += tensor.elements
            stored[_dtype_name(tensor.stored)] += _bytes(tensor.stored)
            total += tensor.elements
            nonzero += _packed_nonzero(tensor)
            continue
        if not _is_weight(tensor):
            continue
        n = _elements(tensor)
        dtypes[_dtype_name(tensor)] += n
        stored[_dtype_name(tensor)] += _bytes(tensor)
        total += n
        nonzero += _nonzero(tensor)
    return Census(
        parameters=total,
        nonzero=nonzero,
        sparsity=(1.0 - nonzero / total) if total else 0.0,
        dtypes=dict(sorted(dtypes.items())),
        stored_bytes=dict(sorted(stored.items())),
    )
