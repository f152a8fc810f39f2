"""Serving: how a fresh process loads a saved model with its runtime alone, and what that process measured.

A handle that can be served gives a `ServeRecipe`; the run then times and scores the saved files in a new
process that imports only that runtime, so the memory a row reports is what a deployment of it needs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from bench.core.device_memory import DeviceMemory
from bench.core.settings import JsonScalar

ServeRuntime = Literal["onnxruntime", "openvino", "pytorch"]


class ServeRecipe(BaseModel):
    """The runtime, the file in the saved folder it loads, and the settings the compressing process used."""

    model_config = ConfigDict(frozen=True)
    runtime: ServeRuntime
    file: str
    """Path of the model file inside the saved folder, e.g. `model.onnx` or `model.xml`."""
    threads: int
    device: str = "cpu"
    """Where the serving process runs the model (`cuda:0`: the saved model is moved there, and the timed inputs
    are placed there before timing)."""
    options: dict[str, JsonScalar] = {}
    """Runtime settings: OpenVINO's `precision` and `performance_hint`; PyTorch's transformers
    `architecture` class, weight `dtype` and `attention` implementation."""


class Serving(BaseModel):
    """Where a run's latency, scoring and memory were measured, and the serving process's memory."""

    where: Literal["fresh process", "compressing process"]
    reason: str | None = None
    """Why the run was measured in the compressing process (None when served)."""
    runtime: str | None = None
    rss_start: int | None = None
    """Bytes resident in the serving process before the runtime's imports (Python and numpy)."""
    rss_runtime: int | None = None
    """Bytes resident after the runtime's imports, before the model loads."""
    model_bytes: int | None = None
    """What loading the model added to the resident memory."""
    load_s: float | None = None
    """Cold start: seconds to load and compile the saved model."""
    timing_peak: int | None = None
    """Peak resident bytes while timed at the run's shape."""
    scoring_peak: int | None = None
    """Peak resident bytes while scoring accuracy."""
    max_rss: int | None = None
    """The serving process's high-water mark (ru_maxrss), an upper bound of the sampled peaks."""
    device_memory: DeviceMemory | None = None
    """CUDA rows: the serving process's GPU memory while timed (`latency`) and while scoring (`evaluate`)."""
    torch_loaded: bool | None = None
    """Whether PyTorch was imported in the serving process (False for ONNX Runtime and OpenVINO rows; a
    PyTorch row's runtime is PyTorch)."""

    def steady_peaks(self) -> list[int]:
        """The serving process's peaks while timed and while scoring (those it measured)."""
        return [peak for peak in (self.timing_peak, self.scoring_peak) if peak]


class Interleaving(BaseModel):
    """How a served row was timed again in interleaved rounds with the other served rows of its group: each
    round times every member for a slice, in an order that rotates from round to round, so that a drift of
    the machine reaches all of them alike. Its latency's `rounds_ms` holds each round's samples."""

    session: str
    """Names one interleaving: rows with the same session were timed in the same rounds (their changes are
    paired by round)."""
    members: list[str]
    """The run keys timed in these rounds, in plan order (this row's among them)."""
    rounds: int
    slice_s: float
    positions: list[int]
    """This row's place in each round's order (0: timed first)."""
    held: bool
    """Whether its serving process stayed loaded between rounds (else it was loaded again for each round,
    outside the timed slice)."""
    guard: str
    """The memory guard's decision, in words."""
    first_window_ms: list[float]
    """The samples of the worker's own first window, kept but not in the figures."""
    other_cpu_share: list[float]
    """Per round: the share of the CPU other processes used during this row's slice."""
    load_s: list[float] = []
    """Per load in the rounds: seconds to load the saved model again (untimed; one entry when held)."""


def same_rounds(a: Interleaving | None, b: Interleaving | None) -> bool:
    """Whether two rows were timed in the same interleaved rounds (their latency changes pair by round)."""
    return a is not None and b is not None and a.session == b.session and len(a.positions) == len(b.positions)
