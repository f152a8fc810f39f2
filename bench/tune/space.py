"""The search space of a suite: each compressor row and the settings its plugins declare searchable."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.core.errors import BenchError, ConfigError
from bench.core.registry import COMPRESSORS
from bench.core.settings import Dimension, JsonScalar
from bench.core.suite import CompressorConfig, CompressorStep, SuiteConfig

LABEL_ROOM = 48
"""Characters of the row's name kept in a trial's label (labels name record files)."""


@dataclass(frozen=True)
class Setting:
    """One searchable setting of a row: which step, which `Config` field, and its values."""

    step: int
    field: str
    dimension: Dimension


@dataclass(frozen=True)
class Family:
    """A suite row the search varies: its settings, and the step (if any) whose layers the sensitivity
    strategy may keep in float through that step's `layer_setting`."""

    row: CompressorConfig
    settings: dict[str, Setting]
    layer_step: int | None
    layer_field: str | None

    @property
    def name(self) -> str:
        """The row's name in the suite."""
        return self.row.display_name

    def candidate(self, values: Mapping[str, JsonScalar], float_layers: Sequence[str] = ()) -> CompressorConfig:
        """The row with some settings replaced and some layers kept in float, as a new labelled row."""
        configs = [dict(step.config) for step in self.row.steps]
        for param, value in values.items():
            setting = self.settings[param]
            configs[setting.step][setting.field] = value
        if float_layers:
            if self.layer_step is None or self.layer_field is None:
                raise ValueError(f"{self.name} has no setting that keeps layers in float")
            kept = configs[self.layer_step].get(self.layer_field, [])
            configs[self.layer_step][self.layer_field] = [*(kept if isinstance(kept, list) else []), *float_layers]
        steps = [CompressorStep(name=s.name, config=c) for s, c in zip(self.row.steps, configs, strict=True)]
        return labelled_row(self.name, steps)

    def unquantized(self) -> CompressorConfig | None:
        """The row without its layer step (a chain's other steps: the most keeping layers in float can give
        back), or None when that step is the whole row."""
        if self.layer_step is None or len(self.row.steps) < 2:
            return None
        steps = [s for i, s in enumerate(self.row.steps) if i != self.layer_step]
        return labelled_row(self.name, steps)

    def problem(self, row: CompressorConfig) -> str | None:
        """Why a candidate's settings are invalid (its plugin's Config refuses them), or None."""
        for i, step in enumerate(row.steps):
            try:
                COMPRESSORS.load(step.name).from_mapping(step.config, where=f"step {i} ({step.name})")
            except ConfigError as exc:
                return str(exc)
        return None


def labelled_row(name: str, steps: Sequence[CompressorStep]) -> CompressorConfig:
    """A candidate row of these steps (one compressor, or a chain), labelled by `trial_label`."""
    label = trial_label(name, steps)
    if len(steps) == 1:
        return CompressorConfig(name=steps[0].name, config=steps[0].config, label=label)
    return CompressorConfig(chain=list(steps), label=label)


def trial_label(name: str, steps: Sequence[CompressorStep]) -> str:
    """A stable label for a candidate: the row's name and a digest of its settings."""
    canonical = json.dumps([s.model_dump() for s in steps], sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:8]
    return f"{name[:LABEL_ROOM]}-t{digest}"


def _param(step_names: Sequence[str], index: int, field: str) -> str:
    if len(step_names) == 1:
        return field
    if step_names.count(step_names[index]) > 1:
        return f"{index}.{step_names[index]}.{field}"
    return f"{step_names[index]}.{field}"


def family(row: CompressorConfig) -> Family:
    """A row's searchable settings, from the search spaces its plugins declare."""
    names = [step.name for step in row.steps]
    settings: dict[str, Setting] = {}
    layer_step = layer_field = None
    for i, step in enumerate(row.steps):
        cls = COMPRESSORS.load(step.name)
        for field, dimension in cls.search_space.items():
            settings[_param(names, i, field)] = Setting(i, field, dimension)
        if cls.layer_setting is not None:
            layer_step, layer_field = i, cls.layer_setting
    return Family(row, settings, layer_step, layer_field)


def families(suite: SuiteConfig, only: Sequence[str] | None = None) -> list[Family]:
    """The suite's rows other than the baseline, restricted to `only` (row labels or compressor names)."""
    rows = [c for c in suite.compressors if not c.is_baseline]
    if only:
        known = {c.display_name for c in rows} | {s.name for c in rows for s in c.steps}
        unknown = sorted(set(only) - known)
        if unknown:
            raise BenchError(
                f"--compressors {unknown[0]}: no such row or compressor in the suite; rows: "
                f"{', '.join(c.display_name for c in rows)}"
            )
        rows = [c for c in rows if c.display_name in only or any(s.name in only for s in c.steps)]
    if not rows:
        raise BenchError("the suite has no compressor row besides the baseline: nothing to tune")
    return [family(row) for row in rows]
