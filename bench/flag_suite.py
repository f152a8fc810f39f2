"""A suite built from command-line flags (`bench run --model M --task T --compressor C ...`): the task's own
defaults, the baseline first, validated exactly as a suite file is, and written out on request so that a first
run becomes the user's first suite file."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import JsonValue

from bench.config import suite_from_mapping
from bench.core.errors import BenchError, ConfigError
from bench.core.registry import COMPRESSORS, TASKS, PluginError
from bench.core.suite import BASELINE, NAME_MAX, SuiteConfig
from bench.validate import check_plugins

FLAGS_FILE = "command-line"
"""How messages name a suite built from flags (relative paths in it are relative to the current folder)."""


@dataclass(frozen=True)
class SuiteFlags:
    """What the command line says of the suite."""

    model: str
    task: str
    compressors: list[str]
    limit: int | None = None
    data_dir: str | None = None


def suite_name(model: str, task: str) -> str:
    """A results-folder name from the model's last path part (or hub id) and the task."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(model.rstrip("/")).name or model).strip("-.") or "model"
    return f"{stem[: NAME_MAX - len(task) - 1]}-{task}"


def suite_mapping(flags: SuiteFlags) -> dict[str, JsonValue]:
    """The suite as a suite file would hold it. BenchError names the flag that is wrong."""
    try:
        task = TASKS.load(flags.task)
    except PluginError as exc:
        raise BenchError(f"--task {flags.task}: {exc}") from None
    defaults = task.suite_defaults
    if defaults is None:
        raise BenchError(f"--task {flags.task}: this task has no defaults for a suite built from flags; write a suite")
    rows: list[JsonValue] = [{"name": BASELINE}]
    rows += [compressor_row(text) for text in dict.fromkeys(flags.compressors) if text != BASELINE]
    task_section: dict[str, JsonValue] = {
        "name": flags.task,
        "dataset": defaults.dataset,
        "split": defaults.split,
        "calibration_split": defaults.calibration_split,
    }
    if flags.limit is not None:
        task_section["limit"] = flags.limit
    if defaults.config:
        task_section["config"] = dict(defaults.config)
    here = Path(flags.model).expanduser()
    model = str(here.resolve()) if here.exists() else flags.model  # a saved suite finds it from anywhere
    mapping: dict[str, JsonValue] = {
        "name": suite_name(flags.model, flags.task),
        "description": f"{flags.model} on {flags.task}, built from the command line",
    }
    if flags.data_dir is not None:
        mapping["data_dir"] = str(Path(flags.data_dir).expanduser().resolve())
    return mapping | {
        "seed": 0,
        "model": {"id": model},
        "task": task_section,
        "compressors": rows,
        "devices": ["cpu"],
        "batch_sizes": [1],
        "sequence_lengths": [defaults.sequence_length],
    }


def compressor_row(text: str) -> dict[str, JsonValue]:
    """A suite row from `--compressor`: a compressor's name or one of its presets, optionally followed by
    `:key=value,key=value` settings (values read as YAML scalars)."""
    label, _, settings = text.partition(":")
    own: dict[str, JsonValue] = {}
    for item in filter(None, settings.split(",")):
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise BenchError(f"--compressor {text}: settings are key=value pairs separated by commas")
        own[key.strip()] = yaml.safe_load(value)
    name, preset = (label, {}) if label in COMPRESSORS.names() else find_preset(label)
    config = {**preset, **own}
    row: dict[str, JsonValue] = {"name": name}
    if name != label or own:
        values = [re.sub(r"[^A-Za-z0-9_.+-]+", "-", str(v)).strip("-") for v in own.values()]
        row["label"] = "-".join([label, *values])[:NAME_MAX]
    if config:
        row["config"] = config
    return row


def find_preset(label: str) -> tuple[str, dict[str, JsonValue]]:
    """The compressor that names `label` among its presets, and the preset's settings. BenchError when none
    does."""
    for name in COMPRESSORS.names():
        try:
            presets = COMPRESSORS.load(name).presets
        except PluginError:
            continue
        if label in presets:
            return name, dict(presets[label])
    try:
        COMPRESSORS.entry(label)  # the registry's line for an unknown name, with its suggestion
    except PluginError as exc:
        raise BenchError(f"--compressor {label}: {exc}") from None
    raise BenchError(f"--compressor {label}: a compressor's own name, which has no settings of a preset")


def suite_from_flags(flags: SuiteFlags) -> tuple[SuiteConfig, dict[str, JsonValue]]:
    """The validated suite, and the mapping it came from (what `--save-suite` writes)."""
    mapping = suite_mapping(flags)
    suite = suite_from_mapping(mapping, f"{FLAGS_FILE}: ")
    try:
        check_plugins(suite)  # every row's settings, as the suite file's are checked
    except ConfigError as exc:
        raise ConfigError(f"{FLAGS_FILE}: {exc}") from None
    return suite, mapping


def flag_command(flags: SuiteFlags) -> str:
    """The `bench run` command line that builds this suite."""
    words = ["bench", "run", "--model", flags.model, "--task", flags.task]
    for name in flags.compressors:
        words += ["--compressor", name]
    if flags.limit is not None:
        words += ["--limit", str(flags.limit)]
    if flags.data_dir is not None:
        words += ["--data-dir", flags.data_dir]
    return shlex.join(words)


def save_suite(mapping: dict[str, JsonValue], path: Path, command: str) -> None:
    """Write the suite as a suite file, headed by the command that built it."""
    if path.suffix not in (".yaml", ".yml"):
        raise BenchError(f"--save-suite {path}: a suite file ends in .yaml or .yml")
    if not path.parent.is_dir():
        raise BenchError(f"--save-suite {path}: no such folder {path.parent}")
    header = f"# Built by `{command}`.\n# Edit it, then run: bench run {path}\n"
    path.write_text(header + yaml.safe_dump(mapping, sort_keys=False, allow_unicode=True), encoding="utf-8")
