"""Check a loaded suite against what is installed and on disk, without loading any model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.chain import Step, chain_problem
from bench.config import SuiteConfig
from bench.datadir import Source, resolve_data_dir, resolve_dataset, resolve_model, resolve_path
from bench.errors import ConfigError, DataNotFoundError
from bench.registry import COMPRESSORS, TASKS, PluginError


@dataclass(frozen=True)
class ResolvedSuite:
    """A suite whose plugins exist and whose model and data were found."""

    suite: SuiteConfig
    path: Path
    data_dir: Path | None
    model: Source
    dataset: Source
    calibration: Source | None
    tokenizer_corpus: list[str]
    """Resolved text files and folders that train the tokenizer of a random-weight architecture."""
    plugins: dict[str, str]
    """Each plugin the suite uses -> the distribution and version that provides it."""


def check_plugins(suite: SuiteConfig) -> list[list[Step]]:
    """Every compressor and the task are installed, their settings validate and each chain can run in its
    order. Returns each row's steps."""
    try:
        task_cls = TASKS.load(suite.task.name)
    except PluginError as exc:
        raise ConfigError(f"task.name: {exc}") from None
    task_cls.from_mapping(suite.task.config)
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
    return rows


def plugin_versions(suite: SuiteConfig) -> dict[str, str]:
    """Each plugin the suite uses -> its distribution and version (part of every run's identity)."""
    names = {(TASKS, suite.task.name)} | {(COMPRESSORS, s.name) for c in suite.compressors for s in c.steps}
    return {name: registry.entry(name).origin for registry, name in sorted(names, key=lambda p: p[1])}


def resolve(suite: SuiteConfig, path: Path, data_dir_option: str | None = None) -> ResolvedSuite:
    """Validate plugins and find the model and data. Raises BenchError subclasses with one-line messages."""
    try:
        rows = check_plugins(suite)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    data_dir = resolve_data_dir(data_dir_option, suite.data_dir, path)
    if suite.model.id is not None:
        model = resolve_model(suite.model.id, data_dir, path.parent)
    else:
        model = Source.built(str(suite.model.architecture))
    dataset = resolve_dataset(suite.task.dataset, suite.task.split, data_dir, path.parent)
    try:
        calibration: Source | None = resolve_dataset(
            suite.task.calibration_dataset or suite.task.dataset, suite.task.calibration_split, data_dir, path.parent
        )
    except DataNotFoundError:
        calibration = None
    if calibration is not None and calibration == dataset and Path(dataset.location).is_file():
        calibration = None  # one local file holds one split: calibrating on it would use evaluation examples
    if calibration is not None and calibration == dataset and suite.task.calibration_split == suite.task.split:
        raise ConfigError(
            f"{path}: task.calibration_split: must differ from task.split ('{suite.task.split}'): "
            "calibration and training data never come from the evaluation examples"
        )
    needing = sorted({s.name for steps in rows for s in steps if s.compressor.needs_training_split})
    if calibration is None and needing:
        raise ConfigError(
            f"{path}: task.calibration_split: {', '.join(needing)} need examples from the training split "
            f"'{suite.task.calibration_split}', which dataset '{suite.task.calibration_dataset or suite.task.dataset}' "
            "does not have (name another split, or a `calibration_dataset`)"
        )
    corpus: list[str] = []
    if suite.model.architecture is not None:
        named = [resolve_path(name, data_dir, path.parent, "tokenizer corpus") for name in suite.model.tokenizer_corpus]
        default = [str(Path(s.location).parent) for s in (dataset, calibration) if s is not None and s.local]
        corpus = list(dict.fromkeys(named or default))
        if not corpus:
            raise ConfigError(f"{path}: model.tokenizer_corpus: give local text to train the tokenizer on")
    return ResolvedSuite(suite, path, data_dir, model, dataset, calibration, corpus, plugin_versions(suite))
