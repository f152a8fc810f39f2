"""Regular expressions over layer or graph-node names, as compressors' settings take them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return pattern


Pattern = Annotated[str, AfterValidator(_compiles)]
"""A regular expression, checked when the suite is validated."""


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """Whether any pattern is found (re.search) in `name`."""
    return any(re.search(p, name) for p in patterns)


def matching_nodes(graph: Any, patterns: Iterable[str]) -> list[str]:
    """Names of the ONNX graph's nodes that any pattern matches."""
    patterns = list(patterns)
    return [node.name for node in graph.node if matches_any(node.name, patterns)] if patterns else []
