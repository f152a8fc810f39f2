"""`bench doctor --gpu`: a half-minute check of the CUDA path on the first GPU machine it meets.

A small random-weight BERT QA model goes through bench's own code: the QA task's loader, the fp16, bf16,
bnb-int8 and bnb-nf4 compressors and their verification, the census, the latency harness with CUDA events
and device-resident inputs, and the per-phase GPU memory tracker. Each variant's logits are compared with
fp32's; the harness's wall-clock median with the CUDA events' (within 5%); and fp16's steady-state memory
with fp32's.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench.core.compressor import CompressContext
from bench.core.device_memory import CudaMemoryApi, DeviceMemoryTracker
from bench.core.devices import Device
from bench.core.latency import LatencySettings
from bench.core.model import Batch, ModelHandle
from bench.core.shape import Shape
from bench.core.sources import Source
from bench.core.task import Task

Outcome = Literal["pass", "fail", "skip"]
VARIANTS = ("fp32", "fp16", "bf16", "bnb-int8", "bnb-nf4")
MODEL = {
    "hidden_size": 512,
    "num_hidden_layers": 6,
    "num_attention_heads": 8,
    "intermediate_size": 2048,
    "vocab_size": 1024,
    "max_position_embeddings": 512,
}
SHAPE = Shape(batch_size=32, sequence_length=256)
"""Large enough that the GPU, not kernel launches, sets the pace: the wall clock and CUDA events then agree."""
AGREEMENT = {"fp16": 0.999, "bf16": 0.99, "bnb-int8": 0.98, "bnb-nf4": 0.9}
"""Least cosine similarity of a variant's logits with fp32's."""
TIMING_TOLERANCE = 0.05
SETTINGS = LatencySettings(warmup=10, min_iterations=50, min_duration_s=1.0, max_iterations=2000, max_duration_s=4.0)


@dataclass(frozen=True)
class Check:
    """One line of the self-check."""

    name: str
    outcome: Outcome
    detail: str


@dataclass
class Variant:
    """What one variant measured."""

    logits: Any = None
    parameters: int | None = None
    steady_allocated: int | None = None
    checks: list[Check] = field(default_factory=list)


def tiny_qa_model(folder: Path, config: dict[str, int] | None = None) -> Path:
    """A random-weight BERT QA model and a WordPiece tokenizer, saved to `folder` (seeded: the same every time)."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering, BertTokenizerFast

    torch.manual_seed(0)
    settings = config or MODEL
    model = BertForQuestionAnswering(BertConfig(**settings))
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = [f"w{i}" for i in range(settings["vocab_size"] - len(specials))]
    vocab = folder / "vocab.txt"
    vocab.write_text("\n".join(specials + words) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    return folder


def inputs(shape: Shape, vocab_size: int, device: str) -> Batch:
    """A seeded batch of token ids at `shape`, on `device`."""
    import torch

    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (shape.batch_size, shape.sequence_length), generator=generator)
    return {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "token_type_ids": torch.zeros_like(ids).to(device),
    }


def _no_data(*_: object) -> Any:
    raise RuntimeError("the self-check has no training data")


def context(task: Task, source: Source, device: str, workdir: Path, batch: Batch) -> CompressContext:
    """A compressor's context for the self-check's model (no data splits: its compressors need none)."""
    from bench.core.environment import cpu_flags

    return CompressContext(
        device=Device(device),
        seed=0,
        workdir=workdir,
        threads=1,
        cpu_flags=cpu_flags(),
        task=task,
        shape=SHAPE,
        model_source=source,
        calibration_split="train",
        reload=lambda **kwargs: task.load_model(source, device, **kwargs),
        example_batch=lambda: batch,
        calibration_data=_no_data,
        training_examples=_no_data,
        cache_dir=workdir,
    )


def cosine(a: Any, b: Any) -> float:
    """Cosine similarity of two tensors, flattened, in float32."""
    import torch

    x, y = a.float().flatten(), b.float().flatten()
    return float(torch.nn.functional.cosine_similarity(x, y, dim=0))


def why_not(variant: str, device: str) -> str | None:
    """Why `variant` cannot run on `device` here, or None."""
    if variant == "fp32":
        return None
    from bench.core.environment import cpu_flags
    from bench.core.registry import COMPRESSORS

    return COMPRESSORS.load(variant).from_mapping({}).unsupported_reason(Device(device), cpu_flags())


class SelfCheck:
    """Runs the variants one after another on one device, each loaded fresh and released after."""

    def __init__(self, device: str, memory: CudaMemoryApi, workdir: Path, timed: bool = True) -> None:
        from bench.core.registry import TASKS

        self.device = device
        self.tracker = DeviceMemoryTracker(memory, device)
        self.workdir = workdir
        self.timed = timed
        self.task = TASKS.load("qa").from_mapping({})
        self.source = Source(str(tiny_qa_model(workdir / "model")), local=True)
        self.batch = inputs(SHAPE, MODEL["vocab_size"], device)
        self.results: dict[str, Variant] = {}

    def load(self, variant: str) -> tuple[ModelHandle, list[Check]]:
        """The model as `variant`, with the compressor's verification as a check."""
        from bench.core.census import take_census
        from bench.core.registry import COMPRESSORS

        model = self.task.load_model(self.source, self.device)
        if variant == "fp32":
            return model, []
        compressor = COMPRESSORS.load(variant).from_mapping({})
        before = take_census(model.tensors())
        ctx = context(self.task, self.source, self.device, self.workdir, self.batch)
        model = compressor.compress(model, ctx)
        proof = compressor.verify(before, model)
        return model, [Check(f"{variant} verification", "pass" if proof.passed else "fail", proof.summary)]

    def run(self, variant: str) -> Variant:
        """Load, compare with fp32, time and weigh one variant."""
        from bench.core.census import take_census
        from bench.tasks.numerics import NonFiniteOutput, require_finite

        found = Variant()
        with self.tracker.phase(f"{variant}:load"):
            model, found.checks = self.load(variant)
        with self.tracker.phase(f"{variant}:latency"):
            logits = model.forward(self.batch)["start_logits"]
            if self.timed:
                timing = self.task.latency(model, [self.batch], SETTINGS, SHAPE)["forward"]
        found.steady_allocated = self.tracker.record.phases[f"{variant}:latency"].allocated_peak
        found.parameters = take_census(model.tensors()).parameters
        try:
            require_finite(logits, f"{variant} logits")
            found.logits = logits.float().cpu()
        except NonFiniteOutput as exc:
            found.checks.append(Check(f"{variant} outputs", "fail", str(exc)))
        reference = self.results.get("fp32")
        if found.logits is not None and reference is not None and reference.logits is not None:
            similarity = cosine(found.logits, reference.logits)
            least = AGREEMENT[variant]
            found.checks.append(
                Check(
                    f"{variant} vs fp32",
                    "pass" if similarity >= least else "fail",
                    f"cosine similarity of the logits {similarity:.5f} (at least {least})",
                )
            )
            if reference.parameters is not None and found.parameters != reference.parameters:
                found.checks.append(
                    Check(
                        f"{variant} census",
                        "fail",
                        f"{found.parameters:,} parameters counted, fp32 has {reference.parameters:,}",
                    )
                )
        if self.timed:
            found.checks.append(timing_check(variant, timing.stats.p50, timing.device_p50_ms))
        model.release()
        del model
        self.results[variant] = found
        return found


def timing_check(variant: str, wall_p50: float, device_p50: float | None) -> Check:
    """The harness's synchronized wall-clock median against the CUDA events' median."""
    if device_p50 is None:
        return Check(f"{variant} timing", "fail", "no CUDA-event timings were recorded")
    gap = abs(wall_p50 - device_p50) / wall_p50
    return Check(
        f"{variant} timing",
        "pass" if gap <= TIMING_TOLERANCE else "fail",
        f"wall clock p50 {wall_p50:.3f} ms, CUDA events p50 {device_p50:.3f} ms ({100 * gap:.1f}% apart, "
        f"at most {100 * TIMING_TOLERANCE:.0f}%)",
    )


def memory_check(results: dict[str, Variant]) -> list[Check]:
    """Half-precision and 4-bit variants must hold less GPU memory in steady state than fp32."""
    base = results.get("fp32")
    if base is None or base.steady_allocated is None:
        return []
    checks = []
    for variant in ("fp16", "bf16", "bnb-nf4"):
        found = results.get(variant)
        if found is None or found.steady_allocated is None:
            continue
        smaller = found.steady_allocated < base.steady_allocated
        checks.append(
            Check(
                f"{variant} memory",
                "pass" if smaller else "fail",
                f"steady-state GPU allocation {found.steady_allocated / 2**20:.1f} MB, "
                f"fp32 {base.steady_allocated / 2**20:.1f} MB",
            )
        )
    return checks


def run_self_check(
    device: str = "cuda", memory: Callable[[str], CudaMemoryApi] | None = None, timed: bool = True
) -> list[Check]:
    """Every check, in order; the first line says why nothing ran when `device` cannot run here."""
    from bench.core.devices import cuda_unavailable_reason, is_cuda

    if is_cuda(device):
        reason = cuda_unavailable_reason(device)
        if reason is not None:
            return [Check("GPU", "fail", f"the self-check needs a GPU: {reason}")]
    if memory is None:
        from bench.core.device_memory import TorchCudaMemory

        memory = TorchCudaMemory
    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="bench-doctor-") as scratch:
        check = SelfCheck(device, memory(device), Path(scratch), timed=timed)
        for variant in VARIANTS:
            reason = why_not(variant, device)
            if reason is not None:
                checks.append(Check(variant, "skip", reason))
                continue
            try:
                checks.extend(check.run(variant).checks)
            except Exception as exc:  # one variant's failure is a failed check, not the end of the others
                checks.append(Check(variant, "fail", f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))
        checks.extend(memory_check(check.results))
    return checks
