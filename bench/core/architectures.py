"""The model architectures shipped with bench (bench/architectures/NAME.json): real configs, built here with
random weights where no weights can be had (see bench.random_models)."""

from __future__ import annotations

import json
from importlib import resources

from pydantic import JsonValue

from bench.core.errors import ConfigError


def shipped_architectures() -> list[str]:
    """Names of the architecture configs shipped with bench."""
    folder = resources.files("bench") / "architectures"
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


def architecture_config(name: str) -> dict[str, JsonValue]:
    """A shipped architecture's config.json content (without its `_source` note)."""
    path = resources.files("bench") / "architectures" / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"unknown architecture '{name}'; shipped: {', '.join(shipped_architectures())}")
    data: dict[str, JsonValue] = json.loads(path.read_text(encoding="utf-8"))
    data.pop("_source", None)
    return data
