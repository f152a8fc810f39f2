"""Weight census of a model: parameter and non-zero counts, dtypes. Proof that a compression happened."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel


class Census(BaseModel):
    """Counts over the model's weight tensors (integer buffers such as position ids are left out)."""

    parameters: int
    nonzero: int
    sparsity: float
    dtypes: dict[str, int]
    """Element count per dtype name, e.g. {"float32": 11_000_000, "qint8": 10_600_000}."""


def is_wrapper_tensor(value: Any) -> bool:
    """A tensor subclass that stores other tensors (torchao's quantized weights, for example)."""
    return type(value).__name__ not in ("Tensor", "Parameter") and hasattr(value, "__tensor_flatten__")


def state_dict_tensors(module: Any) -> Iterator[tuple[str, Any]]:
    """Weight tensors of a torch module, including packed quantized weights, each once."""
    import torch

    seen: set[tuple[int, int]] = set()

    def walk(name: str, value: Any) -> Iterator[tuple[str, Any]]:
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

    for name, value in module.state_dict().items():
        yield from walk(name, value)


def _dtype_name(tensor: Any) -> str:
    return str(getattr(tensor, "dtype", type(tensor).__name__)).removeprefix("torch.")


def _is_weight(tensor: Any) -> bool:
    name = _dtype_name(tensor)
    return name.startswith(("float", "bfloat", "qint", "quint", "int8", "uint8", "float8")) or name in (
        "half",
        "int4",
        "uint4",
    )


def _nonzero(tensor: Any) -> int:
    try:
        import torch

        if isinstance(tensor, torch.Tensor):
            if tensor.is_quantized:
                tensor = tensor.dequantize()
            return int(torch.count_nonzero(tensor).item())
    except ImportError:  # numpy-only runtimes
        pass
    import numpy as np

    return int(np.count_nonzero(tensor))


def take_census(tensors: Iterable[tuple[str, Any]]) -> Census:
    """Count elements, non-zeros and dtypes over weight tensors."""
    dtypes: Counter[str] = Counter()
    total = 0
    nonzero = 0
    for _, tensor in tensors:
        if not _is_weight(tensor):
            continue
        n = int(tensor.numel() if hasattr(tensor, "numel") and callable(tensor.numel) else tensor.size)
        dtypes[_dtype_name(tensor)] += n
        total += n
        nonzero += _nonzero(tensor)
    return Census(
        parameters=total,
        nonzero=nonzero,
        sparsity=(1.0 - nonzero / total) if total else 0.0,
        dtypes=dict(sorted(dtypes.items())),
    )
