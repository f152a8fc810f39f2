"""The model a runtime holds: `ModelHandle` (forward, generate, save, its tensors and operators), the batch and
tokenizer types that cross its boundary, and the precision it really executes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeAlias

from pydantic import BaseModel

from bench.core.attention import executed, pattern
from bench.core.devices import Device
from bench.core.serving import ServeRecipe

if TYPE_CHECKING:
    from torch import Tensor
    from transformers import PretrainedConfig, PreTrainedTokenizerBase

    from bench.core.census import Weight
    from bench.core.latency import DeviceTimer

Tokenizer: TypeAlias = "PreTrainedTokenizerBase"
"""A model's tokenizer (a transformers tokenizer)."""

TransformersConfig: TypeAlias = "PretrainedConfig"
"""A model's transformers configuration (architecture, `is_encoder_decoder`, attention implementation)."""

Batch: TypeAlias = "Mapping[str, Tensor]"
"""One model input: tensor name -> torch tensor (a runtime converts to its own arrays)."""

Outputs: TypeAlias = "Mapping[str, Tensor]"
"""A model's named outputs (for QA: start_logits, end_logits), CPU-visible."""

GenerationValue: TypeAlias = "int | float | bool | str | list[int] | None"
GenerationSettings: TypeAlias = "Mapping[str, GenerationValue]"
"""transformers generation arguments (num_beams, max_new_tokens, ...), as a task's decoding settings give them."""

FORWARD_SCOPE = "model forward on tokenized inputs (tokenization and decoding excluded), device synchronized"


class ExecutedPrecision(BaseModel):
    """The precision a model's arithmetic really executes in, read back from its runtime (never from a row's
    name): how many compute operations (matrix products, fused kernels) run in each of f32, bf16, f16, int8
    or int4."""

    ops: dict[str, int]
    source: str
    """What was read: e.g. "openvino runtime graph", "onnxruntime optimized graph", "torch Linear layers"."""

    @property
    def total(self) -> int:
        """Compute operations counted."""
        return sum(self.ops.values())

    def share(self, precision: str) -> float:
        """The fraction of compute operations running in `precision`."""
        return self.ops.get(precision, 0) / self.total if self.total else 0.0

    @property
    def main(self) -> str | None:
        """The precision of most compute operations."""
        return max(self.ops, key=lambda p: self.ops[p]) if self.ops else None

    @property
    def label(self) -> str:
        """The precisions of at least 5% of the operations, most first: "f32", "int8+f32"."""
        kept = sorted((p for p in self.ops if self.share(p) >= 0.05), key=lambda p: -self.ops[p])
        return "+".join(kept) or "–"

    def contradiction(self, claimed: str | None) -> str | None:
        """Why this execution contradicts a claimed precision, or None (also without a claim or a count): a
        float claim must be the main precision; an int8 or int4 claim needs some operations in it."""
        if claimed is None or not self.total:
            return None
        counts = ", ".join(f"{n} {p}" for p, n in sorted(self.ops.items(), key=lambda i: -i[1]))
        if claimed in ("int8", "int4"):
            if self.ops.get(claimed):
                return None
            return f"claims {claimed} but no compute operation executes in {claimed} ({counts}; {self.source})"
        if self.main == claimed:
            return None
        return f"claims {claimed} but executes {self.label} ({counts}; {self.source})"


@dataclass(frozen=True)
class Compilation:
    """How a model was compiled (torch.compile): its settings and what compiling cost."""

    mode: str
    dynamic: bool | None
    seconds: float
    """The first, compiling call (and the graphs it built) in seconds."""
    graphs: int
    """Graphs built by that call."""
    fullgraph: bool = False


class ModelHandle(ABC):
    """A model ready to run: a runtime (eager PyTorch, ONNX Runtime, ...) plus its tokenizer.

    Tasks call `forward` (and `generate`); measurement calls `synchronize`, `save`, `tensors` and
    `operators`; verification may call any of them.
    """

    runtime: ClassVar[str]
    """The runtime's name, e.g. "pytorch" or "onnxruntime" (shown in records)."""
    stages_inputs: ClassVar[bool] = False
    """Whether `stage` moves inputs onto the model's device (else a CUDA run's timed calls include the copy)."""
    save_format: str = "files"
    """The format `save` writes, e.g. "safetensors", "torch" or "onnx" (the record's size.saved.format)."""

    def __init__(self, tokenizer: Tokenizer, device: str, config: TransformersConfig | None = None) -> None:
        self.tokenizer = tokenizer
        self.device = Device(device)
        """Where the model runs (a Device given as is; a plain string is parsed here)."""
        self.config = config
        """The transformers config of the model (architecture, `is_encoder_decoder`), when it has one."""
        self.compilation: Compilation | None = None
        """Set by a compressor that compiled the model; None: it runs as loaded."""

    def attention_implementation(self) -> str | None:
        """The attention kernels the model runs, read back from its transformers config (None without one;
        an exported graph keeps the implementation it was traced with)."""
        return executed(self.config)

    def attention_pattern(self) -> str | None:
        """Which query-key pairs attention computes ("full", a sliding window, block sparse), from the
        config (None without one)."""
        return None if self.config is None else pattern(self.config)

    @abstractmethod
    def forward(self, batch: Batch) -> Outputs:
        """Run one batch; return the named outputs (for QA: start_logits, end_logits) as CPU-visible tensors."""

    @abstractmethod
    def save(self, directory: Path) -> list[Path]:
        """Serialize the model's weights and graph as a user would ship them; return the files written."""

    @abstractmethod
    def tensors(self) -> Iterator[tuple[str, Weight]]:
        """Every weight tensor (torch or numpy), for parameter, sparsity and dtype census."""

    def operators(self) -> dict[str, int] | None:
        """Operator census of the model's graph (op type -> count), or None for runtimes without a graph."""
        return None

    def serve_recipe(self) -> ServeRecipe | str:
        """How a fresh process loads what `save` wrote with this runtime alone, or why it cannot (the run is
        then timed and scored in the compressing process, and its record says so). Default: it cannot."""
        return f"the {self.runtime} runtime has no loader for a fresh process yet"

    def executed_precision(self) -> ExecutedPrecision | None:
        """What the runtime really executes (read back from it), or None where it cannot be read."""
        return None

    def rows_independent(self) -> bool:
        """Whether each input's outputs are independent of the other inputs of its call and of padding, up
        to float rounding: False where activation scales are computed over the whole call (dynamic int8).
        Tasks batch and trim evaluation inputs only where this holds."""
        return True

    def synchronize(self) -> None:
        """Wait for queued device work (CUDA) so that timings cover it. No-op on CPU."""

    def release(self) -> None:
        """Free what the model holds, when a compressor replaces it with a newly loaded one (the handle is
        not used afterwards). Default: nothing (its memory goes when the last reference does)."""

    def device_timer(self) -> DeviceTimer | None:
        """A timer of calls on the device itself (CUDA events), cross-checking the wall clock. Default: none."""
        return None

    def stage(self, batch: Batch) -> Batch:
        """`batch` placed where the model reads its inputs (its device), so that timed calls do not copy
        them. Default: unchanged (see `stages_inputs`)."""
        return batch

    def generate(
        self, batch: Batch, settings: GenerationSettings, on_token: Callable[[], None] | None = None
    ) -> Tensor:
        """Generated token ids, one row per input (sequence-to-sequence models): `settings` are
        transformers generation arguments; `on_token` is called after each decoding step."""
        raise NotImplementedError(f"{self.runtime} models of this kind do not generate text")
