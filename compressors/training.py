"""Training shared by the compressors that train (distillation, recovery after structured pruning): a
student learns the teacher's outputs (soft targets at a temperature) and the task's hard labels on the
training split, within a step and a time budget; what it learns is cached by the hash of everything
that determines it, and a cache entry appears whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field, PositiveFloat, PositiveInt

from bench.core.compressor import CompressContext
from bench.core.settings import PluginConfig
from bench.core.sources import Source
from bench.runtimes.torch import TorchModel

MARKER = "training.json"
"""Written last into a cache entry: the training facts."""


class TrainingBudget(PluginConfig):
    """How a network is trained by distillation from the unpruned or full model: budget, optimizer and loss.
    The suite's `seed` seeds it (the CompressContext's seed), so that one seed gives one trained model."""

    max_steps: PositiveInt = 300
    max_time_s: PositiveFloat = 300.0
    """Training stops at whichever of max_steps and max_time_s comes first."""
    batch_size: PositiveInt = 16
    learning_rate: PositiveFloat = 2e-4
    warmup_steps: int = Field(20, ge=0)
    """Linear warm-up; then the rate decays linearly to zero at whichever budget (steps, time) ends first
    (see schedule_progress: a step budget that binds gives a reproducible model, a time budget cannot)."""
    temperature: PositiveFloat = 2.0
    alpha: float = Field(0.5, ge=0.0, le=1.0)
    """Weight of the soft-target loss; 1 - alpha weighs the hard labels."""
    max_seq_length: PositiveInt = 256
    """Training window length (evaluation uses the run's sequence length)."""


def content_identity(source: Source, revision: str | None) -> str:
    """Identity of a model: the SHA-256 of a local folder's files (names and bytes), or the hub id and its
    revision (a branch name such as the default is not a pinned identity, and says so)."""
    path = Path(source.location)
    if not path.is_dir():
        return f"{source.location}@{revision or 'default-branch (unpinned)'}"
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return f"sha256:{digest.hexdigest()}"


def examples_identity(examples: list[dict[str, Any]]) -> str:
    """SHA-256 of the training examples themselves (ids and content, in order)."""
    canonical = json.dumps(examples, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def publish_atomically(build: Path, target: Path) -> None:
    """Move a finished cache entry into place in one rename: readers see all of it or none of it. A
    concurrent run that got there first wins; a partial entry left by an older bench is replaced."""
    if target.is_dir() and not (target / MARKER).is_file():
        shutil.rmtree(target, ignore_errors=True)
    try:
        os.rename(build, target)
    except OSError:
        if not (target / MARKER).is_file():
            raise
        shutil.rmtree(build, ignore_errors=True)


def cached_facts(entry: Path) -> dict[str, Any] | None:
    """The training facts of a finished cache entry, or None (absent, or left partial by a killed run)."""
    marker = entry / MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def publish_trained(entry: Path, facts: dict[str, Any], save: Callable[[Path], object]) -> None:
    """Save what was trained (`save` writes into a folder) with its facts into a partial folder beside
    `entry`, then publish it there atomically."""
    build = entry.with_name(f".{entry.name}.{os.getpid()}.partial")
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    save(build)
    (build / MARKER).write_text(json.dumps(facts, indent=2))
    publish_atomically(build, entry)


def cache_key(
    ctx: CompressContext, config: dict[str, Any], examples: list[dict[str, Any]], version: int
) -> tuple[str, dict[str, Any]]:
    """Hash of everything that determines a trained model (the compressor's settings, the teacher's content,
    the task, the training examples, the chain before it), and that identity itself."""
    training = ctx.training_source
    payload: dict[str, Any] = {
        "config": config,
        "teacher": content_identity(ctx.model_source, ctx.model_revision),
        "task": ctx.task.name,
        "task_options": ctx.task.config.model_dump(),
        "training": {
            "file": training.location if training is not None else None,
            "split": ctx.calibration_split,
            "ids": hashlib.sha256(json.dumps([str(e.get("id")) for e in examples]).encode()).hexdigest(),
            "content": examples_identity(examples),
        },
        "seed": ctx.seed,
        "version": version,
    }
    if ctx.chain_before:  # the teacher is what the earlier steps of the chain made of the model
        payload["chain_before"] = list(ctx.chain_before)
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16], payload


def schedule_progress(steps: int, elapsed_s: float, cfg: TrainingBudget) -> float:
    """How far the learning-rate decay has gone (0 to 1). While the steps done so far project to finish the
    step budget within the time budget, the decay follows the steps alone, so that one seed gives one trained
    model; once time would end training first, the decay follows time, reaching zero when it ends."""
    by_steps = steps / cfg.max_steps
    on_pace = steps == 0 or elapsed_s / steps * cfg.max_steps <= cfg.max_time_s
    return by_steps if on_pace else max(by_steps, elapsed_s / cfg.max_time_s)


def train_student(
    teacher: TorchModel, student: Any, examples: list[dict[str, Any]], ctx: CompressContext, cfg: TrainingBudget
) -> dict[str, Any]:
    """Train `student` in place on `examples`, seeded by the run's seed; return the training facts (steps, time,
    losses)."""
    import torch

    torch.manual_seed(ctx.seed)
    batches = ctx.task.train_batches(teacher, examples, cfg.max_seq_length, cfg.batch_size)
    if not batches:
        raise ValueError("the training split gave no training batches")
    rng = random.Random(ctx.seed)
    optimizer = torch.optim.AdamW(student.parameters(), lr=cfg.learning_rate)
    teacher.module.eval()
    student.train()
    losses: list[float] = []
    order: list[int] = []
    start = time.perf_counter()
    while len(losses) < cfg.max_steps and time.perf_counter() - start < cfg.max_time_s:
        progress = schedule_progress(len(losses), time.perf_counter() - start, cfg)
        warm = min(1.0, (len(losses) + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
        for group in optimizer.param_groups:
            group["lr"] = cfg.learning_rate * warm * max(0.0, 1.0 - progress)
        if not order:
            order = list(range(len(batches)))
            rng.shuffle(order)
        batch = {k: v.to(teacher.device) for k, v in batches[order.pop()].items()}
        inputs = {k: v for k, v in batch.items() if k not in ("start_positions", "end_positions", "labels")}
        with torch.no_grad():
            teacher_out = teacher.module(**inputs)
        student_out = student(**inputs)
        loss = ctx.task.distillation_loss(student_out, teacher_out, batch, cfg.temperature, cfg.alpha)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    student.eval()
    window = max(1, len(losses) // 10)
    return {
        "train_steps": len(losses),
        "train_time_s": time.perf_counter() - start,
        "train_windows": sum(len(b["input_ids"]) for b in batches),
        "stopped_by": "max_steps" if len(losses) >= cfg.max_steps else "max_time_s",
        "loss_first": sum(losses[:window]) / window,
        "loss_last": sum(losses[-window:]) / window,
        "loss_curve": [
            round(sum(losses[i : i + window]) / len(losses[i : i + window]), 4) for i in range(0, len(losses), window)
        ],
    }
