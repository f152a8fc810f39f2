"""The layers a sensitivity search ranks: a model's Linear layers (or their blocks), read from the
safetensors header of its folder without loading it, as patterns every runtime's names match."""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.core.errors import BenchError

Granularity = Literal["block", "layer"]
_BLOCK = re.compile(r"^(?P<block>.*?\b(?:layer|layers|block|h)\.\d+)\.")
_NOT_LINEAR = ("embed", "shared.weight", "position")


@dataclass(frozen=True)
class Unit:
    """A layer or block that can be kept in float."""

    name: str
    """The PyTorch module path, e.g. `bert.encoder.layer.3`."""
    pattern: str
    """A regular expression (re.search) that PyTorch module names, ONNX node names
    (`/bert/encoder/layer.3/...`) and OpenVINO operation names (`__module.bert.encoder.layer.3...`) match."""


def module_pattern(module: str) -> str:
    """A pattern matching `module` and everything under it, whichever separator a runtime uses."""
    return r"(^|[./])" + "[./]".join(re.escape(part) for part in module.split(".")) + r"([./]|$)"


def _header(path: Path) -> dict[str, dict[str, object]]:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header: dict[str, dict[str, object]] = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header


def linear_layers(folder: Path) -> list[str]:
    """Module paths of the model's Linear layers (2-D weights that are not embeddings), in file order."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise BenchError(
            f"--strategy sensitivity reads the layer names from the model's safetensors files, and {folder} "
            "has none: use --strategy optuna"
        )
    names = []
    for path in files:
        for name, info in _header(path).items():
            shape = info.get("shape")
            matrix = isinstance(shape, list) and len(shape) == 2
            if matrix and name.endswith(".weight") and not any(part in name for part in _NOT_LINEAR):
                names.append(name.removesuffix(".weight"))
    return names


def units(layers: list[str], granularity: Granularity) -> list[Unit]:
    """The layers (or the blocks that hold them, plus layers outside any block) as units, in model order."""
    if granularity == "layer":
        return [Unit(name, module_pattern(name)) for name in layers]
    seen: dict[str, Unit] = {}
    for name in layers:
        match = _BLOCK.match(name)
        module = match["block"] if match else name
        seen.setdefault(module, Unit(module, module_pattern(module)))
    return list(seen.values())
