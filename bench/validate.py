"""Check a loaded suite against what is installed and on disk, without loading any model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.config import SuiteConfig
from bench.datadir import ARCHITECTURE_PREFIX, Source, resolve_data_dir, resolve_dataset, resolve_model, resolve_path
from bench.errors import ConfigError, DataNotFoundError
from bench.registry import PluginError, load_compressor, load_task


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


def check_plugins(suite: SuiteConfig) -> None:
    """Every compressor and the task are installed, and their settings validate."""
    try:
        task_cls = load_task(suite.task.name)
    except PluginError as exc:
        raise ConfigError(f"task.name: {exc}") from None
    task_cls.from_mapping(suite.task.options)
    for i, comp in enumerate(suite.compressors):
        for j, step in enumerate(comp.steps):
            where = f"compressors[{i}].chain[{j}]" if comp.chain is not None else f"compressors[{i}]"
            try:
                comp_cls = load_compressor(step.name)
            except PluginError as exc:
                raise ConfigError(f"{where}.name: {exc}") from None
            comp_cls.from_mapping(step.config, where=f"{where}.config")


def resolve(suite: SuiteConfig, path: Path, data_dir_option: str | None = None) -> ResolvedSuite:
    """Validate plugins and find the model and data. Raises BenchError subclasses with one-line messages."""
    try:
        check_plugins(suite)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    data_dir = resolve_data_dir(data_dir_option, suite.data_dir, path)
    if suite.model.id is not None:
        model = resolve_model(suite.model.id, data_dir, path.parent)
    else:
        model = Source(f"{ARCHITECTURE_PREFIX}{suite.model.architecture}", local=True)
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
    corpus: list[str] = []
    if suite.model.architecture is not None:
        named = [resolve_path(name, data_dir, path.parent, "tokenizer corpus") for name in suite.model.tokenizer_corpus]
        default = [str(Path(s.location).parent) for s in (dataset, calibration) if s is not None and s.local]
        corpus = list(dict.fromkeys(named or default))
        if not corpus:
            raise ConfigError(f"{path}: model.tokenizer_corpus: give local text to train the tokenizer on")
    return ResolvedSuite(suite, path, data_dir, model, dataset, calibration, corpus)
