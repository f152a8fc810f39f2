"""Check a loaded suite against what is installed and on disk, without loading any model."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import psutil

from bench.chain import Step, chain_problem
from bench.core.errors import ConfigError, DataNotFoundError, SuiteWarning
from bench.core.launcher import ResolvedSuite
from bench.core.registry import COMPRESSORS, TASKS, PluginError
from bench.core.sources import Source
from bench.core.suite import SuiteConfig
from bench.core.task import Task
from bench.datadir import resolve_data_dir, resolve_dataset, resolve_model, resolve_path


def check_plugins(suite: SuiteConfig) -> tuple[Task, list[list[Step]]]:
    """Every compressor and the task are installed, their settings validate and each chain can run in its
    order. Returns the task and each row's steps."""
    try:
        task_cls = TASKS.load(suite.task.name)
    except PluginError as exc:
        raise ConfigError(f"task.name: {exc}") from None
    task = task_cls.from_mapping(suite.task.config)
    rows: list[list[Step]] = []
    for i, comp in enumerate(suite.compressors):
        steps: list[Step] = []
        for j, step in enumerate(comp.steps):
            where = f"compressors[{i}].chain[{j}]" if comp.chain is not None else f"compressors[{i}]"
            try:
                comp_cls = COMPRESSORS.load(step.name)
            except PluginError as exc:
                raise ConfigError(f"{where}.name: {exc}") from None
            steps.append(Step(step.name, comp_cls.from_mapping(step.config, where=f"{where}.config")))
        problem = chain_problem(steps)
        if problem is not None:
            raise ConfigError(f"compressors[{i}].chain: {problem}")
        rows.append(steps)
    return task, rows


def plugin_versions(suite: SuiteConfig) -> dict[str, str]:
    """Each plugin the suite uses -> its distribution and version (part of every run's identity)."""
    names = {(TASKS, suite.task.name)} | {(COMPRESSORS, s.name) for c in suite.compressors for s in c.steps}
    return {name: registry.entry(name).origin for registry, name in sorted(names, key=lambda p: p[1])}


def resolve(suite: SuiteConfig, path: Path, data_dir_option: str | None = None) -> ResolvedSuite:
    """Validate plugins and find the model and data, and check that they will work: weights present, data
    readable by the task, shapes within the model, a training split where a compressor needs one. Raises
    BenchError subclasses with one-line messages naming the file and the field."""
    try:
        task, rows = check_plugins(suite)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    data_dir = resolve_data_dir(data_dir_option, suite.data_dir, path)
    if suite.model.id is not None:
        model = resolve_model(suite.model.id, data_dir, path.parent)
    else:
        model = Source.built(str(suite.model.architecture))
    dataset = resolve_dataset(suite.task.dataset, suite.task.split, data_dir, path.parent)
    calibration = _calibration(suite, path, data_dir, dataset, rows)
    try:
        check_model(suite, model)
        check_readable(task, "task.dataset", dataset, suite.task.split)
        if calibration is not None and any(s.compressor.needs_training_split for steps in rows for s in steps):
            field = "task.calibration_dataset" if suite.task.calibration_dataset else "task.calibration_split"
            check_readable(task, field, calibration, suite.task.calibration_split)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    limit = suite.measurement.max_rss_gb
    ram = psutil.virtual_memory().total
    if limit is not None and limit * 1e9 > ram:
        warnings.warn(
            f"{path}: measurement.max_rss_gb: {limit:g} GB is more than this machine's RAM ({ram / 1e9:.1f} GB): "
            "the kernel's OOM killer may stop a run before the watchdog does",
            SuiteWarning,
            stacklevel=2,
        )
    if not any(c.is_baseline for c in suite.compressors):
        warnings.warn(
            f"{path}: compressors: no `baseline` row: deltas and agreement need the uncompressed model",
            SuiteWarning,
            stacklevel=2,
        )
    corpus: list[str] = []
    if suite.model.architecture is not None:
        named = [resolve_path(name, data_dir, path.parent, "tokenizer corpus") for name in suite.model.tokenizer_corpus]
        default = [str(Path(s.location).parent) for s in (dataset, calibration) if s is not None and s.local]
        corpus = list(dict.fromkeys(named or default))
        if not corpus:
            raise ConfigError(f"{path}: model.tokenizer_corpus: give local text to train the tokenizer on")
    return ResolvedSuite(suite, path, data_dir, model, dataset, calibration, corpus, plugin_versions(suite))


def _calibration(
    suite: SuiteConfig, path: Path, data_dir: Path | None, dataset: Source, rows: list[list[Step]]
) -> Source | None:
    """Where training examples come from, or None; refused when it is the evaluation data, or missing
    while a compressor of the suite needs it."""
    task = suite.task
    try:
        calibration: Source | None = resolve_dataset(
            task.calibration_dataset or task.dataset, task.calibration_split, data_dir, path.parent
        )
    except DataNotFoundError:
        calibration = None
    if calibration is not None and calibration == dataset and task.calibration_split == task.split:
        raise ConfigError(
            f"{path}: task.calibration_split: must differ from task.split ('{task.split}'): "
            "calibration and training data never come from the evaluation examples"
        )
    if calibration is not None and calibration == dataset and Path(dataset.location).is_file():
        calibration = None  # one local file holds one split: calibrating on it would use evaluation examples
    needing = sorted({s.name for steps in rows for s in steps if s.compressor.needs_training_split})
    if calibration is None and needing:
        raise ConfigError(
            f"{path}: task.calibration_split: {', '.join(needing)} need examples from the training split "
            f"'{task.calibration_split[:60]}', which dataset '{(task.calibration_dataset or task.dataset)[:80]}' "
            "does not have (name another split, or a `calibration_dataset`)"
        )
    return calibration


WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "*.bin.index.json", "model.pt")


def check_model(suite: SuiteConfig, model: Source) -> None:
    """A local model folder holds a config and weights; the suite's sequence lengths fit the model."""
    if model.architecture:
        from bench.core.architectures import architecture_config

        config: dict[str, object] = {**architecture_config(model.location), **suite.model.overrides}
    elif model.local:
        folder = Path(model.location)
        if not (folder / "config.json").is_file():
            raise ConfigError(f"model.id: {folder} has no config.json: not a transformers model folder")
        if not any(next(folder.glob(pattern), None) for pattern in WEIGHT_FILES):
            raise ConfigError(f"model.id: {folder} has no weights ({', '.join(WEIGHT_FILES)})")
        try:
            config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"model.id: {folder}/config.json does not parse: {str(exc)[:120]}") from None
    else:
        return  # a hub model: checked when it is downloaded
    # relative positions (T5) have no limit: its `n_positions` only describes how it was trained
    absolute = None if "relative_attention_num_buckets" in config else config.get("n_positions")
    limit = config.get("max_position_embeddings", config.get("max_encoder_position_embeddings", absolute))
    too_long = [n for n in suite.sequence_lengths if isinstance(limit, int) and n > limit]
    if too_long:
        raise ConfigError(f"sequence_lengths: {too_long[0]} is above the model's {limit} positions")


def check_readable(task: Task, field: str, source: Source, split: str) -> None:
    """The task reads the first examples of a local dataset (hub datasets are read when the run starts)."""
    if not source.local:
        return
    try:
        rows = task.load_examples(source, split, 2)
    except Exception as exc:
        message = " ".join(str(exc).split())[:200]
        raise ConfigError(
            f"{field}: {source.location} does not read as {task.name} data: {type(exc).__name__}: {message}"
        ) from None
    if not rows:
        raise ConfigError(f"{field}: {source.location} holds no {task.name} examples for split '{split[:60]}'")
