"""Plugin settings: the base of every plugin's `config:` mapping, its validation, the search-space axes that
`bench tune` may vary, and the JSON-able value types that cross the plugin and record boundary."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from bench.core.errors import ConfigError
from bench.core.suite import format_validation_error

Facts = dict[str, object]
"""Free-form facts a plugin reports, JSON-able (training losses, calibration ids, how a model was built)."""

Example = dict[str, JsonValue]
"""One dataset example as a task loads it: JSON-able fields, with a stable `id`."""

Prediction = dict[str, JsonValue]
"""One evaluated example's row (stored beside the record): at least `id`, `prediction` and the references."""


class PluginConfig(BaseModel):
    """Base of every plugin's settings (a compressor's or a task's `config:` mapping in the suite):
    unknown keys are errors and the values are frozen. A plugin without settings uses it as is."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def validate_config(owner: str, config_class: type[PluginConfig], mapping: Mapping[str, object]) -> PluginConfig:
    """Validate a plugin's `config:` mapping; ConfigError names the field."""
    try:
        return config_class.model_validate(dict(mapping))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, prefix=f"{owner}.", owner=config_class)) from None


JsonScalar = str | int | float | bool | None
"""A setting's value as a suite's YAML writes it."""


class Choice(BaseModel):
    """A searchable setting that takes one of `values`."""

    model_config = ConfigDict(frozen=True)
    values: tuple[JsonScalar, ...]


class IntRange(BaseModel):
    """A searchable integer setting: `low` to `high` inclusive, in steps of `step`."""

    model_config = ConfigDict(frozen=True)
    low: int
    high: int
    step: int = 1


class FloatRange(BaseModel):
    """A searchable real setting between `low` and `high` (on a log scale if `log`; multiples of `step` if
    given)."""

    model_config = ConfigDict(frozen=True)
    low: float
    high: float
    step: float | None = None
    log: bool = False


Dimension = Choice | IntRange | FloatRange
"""One axis of a compressor's search space (`bench tune`)."""


def text_field(row: Mapping[str, JsonValue], key: str) -> str:
    """`row[key]` as text; TypeError names the key when the row holds something else."""
    value = row.get(key)
    if not isinstance(value, str):
        raise TypeError(f"field '{key}' of example {row.get('id')!r} is {type(value).__name__}, not text")
    return value


def texts_field(row: Mapping[str, JsonValue], key: str) -> list[str]:
    """`row[key]` as a list of texts (an absent key is an empty list)."""
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"field '{key}' of example {row.get('id')!r} is not a list of texts")
    return [str(v) for v in value]


def integer_field(row: Mapping[str, JsonValue], key: str) -> int:
    """`row[key]` as an integer; TypeError names the key when the row holds something else."""
    value = row.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"field '{key}' of example {row.get('id')!r} is {type(value).__name__}, not an integer")
    return value


def integers_field(row: Mapping[str, JsonValue], key: str) -> list[int]:
    """`row[key]` as a list of integers."""
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise TypeError(f"field '{key}' of example {row.get('id')!r} is not a list of integers")
    return [int(v) for v in value if isinstance(v, int)]
