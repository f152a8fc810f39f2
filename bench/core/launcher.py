"""The launcher contract: a plugin that executes a suite's planned runs somewhere and stores every outcome.

A launcher gets the resolved suite and the command's options and returns one Outcome per selected run.
Launchers register in the entry-point group `bench.launchers`, as compressors do. Most subclass
bench.launchers.sequence.SuiteLauncher, which owns what every launcher does (plan, lock, clean, select,
reuse) and leaves them only where and in what order the runs execute.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.console import Console

from bench.core.sources import Source
from bench.core.suite import SuiteConfig

if TYPE_CHECKING:
    from bench.core.records import RunRecord


@dataclass
class RunOptions:
    """Command-line choices of `bench run`."""

    results_dir: Path
    limit: int | None = None
    quick: bool = False
    force: bool = False
    only: list[str] | None = None
    """Compressor rows (display names) to run; None runs them all."""
    launcher: str = "local"
    address: str | None = None
    """Where the launcher's cluster is (ray: auto, host:port or ray://host:10001); None: the launcher's default."""
    max_parallel: int | None = None
    """At most this many runs in flight at once; None: as many as the cluster has slots for."""
    gpu_runs_per_node: int = 1
    """How many CUDA runs may share one node (each still holds one GPU of its own)."""


@dataclass
class Outcome:
    """A run's record, and whether it was measured now or found stored."""

    record: RunRecord
    reused: bool


class Launcher(ABC):
    """Executes a suite's runs and stores a record for each; subclasses name themselves in `name`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, options: RunOptions) -> None:
        self.options = options

    @abstractmethod
    def run(self, resolved: ResolvedSuite, console: Console) -> list[Outcome]:
        """Plan the suite, reuse what is stored, measure the rest (baselines before their group), and return
        every selected run's outcome. A stop signal cancels what is in flight and propagates."""


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
