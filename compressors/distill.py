"""Distillation: a student made from some of the teacher's layers, trained to match the teacher's outputs
(soft targets at a temperature) and the task's hard labels, on the task's training split.

Trained students are cached by the hash of everything that determines them (the teacher's content, the
training examples, the settings), so re-runs do not retrain; an entry appears whole or not at all.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import PositiveInt, model_validator

from bench.core.census import Census, take_census
from bench.core.compressor import CompressContext, Compressor, Trait, Verification
from bench.core.errors import UnsupportedHere
from bench.core.model import ModelHandle
from bench.core.settings import IntRange
from bench.runtimes.torch import TorchModel, eager
from compressors import training
from compressors.training import TrainingBudget, cached_facts, publish_trained, train_student


class DistillConfig(TrainingBudget):
    """Settings of distill: which teacher layers the student keeps, how many examples it trains on, and the
    training budget (compressors.training.TrainingBudget)."""

    layers: list[int] | None = None
    """Teacher layers copied into the student (0-based); default: `num_layers` evenly spaced ones from layer 0."""
    num_layers: PositiveInt = 3
    train_examples: PositiveInt = 4000
    """The first N examples of the training split."""

    @model_validator(mode="before")
    @classmethod
    def _no_seed(cls, data: object) -> object:
        if isinstance(data, dict) and "seed" in data:
            raise ValueError("`seed` is no longer a distill setting: the suite's `seed` seeds the training")
        return data

    @model_validator(mode="after")
    def _layers_distinct(self) -> DistillConfig:
        if self.layers is not None and (not self.layers or len(set(self.layers)) != len(self.layers)):
            raise ValueError("layers must be distinct teacher layer indices")
        return self


def _blocks(module: Any) -> tuple[Any, str, str]:
    """The owner of the transformer blocks that a student drops, the attribute holding them, and the config
    attribute holding their count. Encoder-decoder students drop decoder layers: the decoder runs once
    per generated token (as distilbart and the Marian students do)."""
    if getattr(getattr(module, "config", None), "is_encoder_decoder", False):
        base = getattr(module, "model", module)
        for owner, attr, count in (
            (getattr(base, "decoder", None), "layers", "decoder_layers"),  # Marian, BART
            (getattr(module, "decoder", None), "block", "num_decoder_layers"),  # T5
        ):
            if owner is not None and hasattr(owner, attr):
                return owner, attr, count
        raise UnsupportedHere(f"distill: no decoder layer list found in {type(module).__name__}")
    base = getattr(module, "base_model", module)
    for owner, attr, count in (
        (getattr(base, "encoder", None), "layer", "num_hidden_layers"),
        (getattr(base, "transformer", None), "layer", "n_layers"),
    ):
        if owner is not None and hasattr(owner, attr):
            return owner, attr, count
    raise UnsupportedHere(f"distill: no encoder layer list found in {type(module).__name__}")


def student_layers(teacher_layers: int, config: DistillConfig) -> list[int]:
    """Which teacher layers the student keeps, in order."""
    if config.layers is not None:
        bad = [i for i in config.layers if not 0 <= i < teacher_layers]
        if bad:
            raise ValueError(f"distill: layers {bad} do not exist (the teacher has {teacher_layers})")
        return sorted(config.layers)
    n = min(config.num_layers, teacher_layers)
    if n == teacher_layers:
        raise ValueError(f"distill: num_layers {n} is not fewer than the teacher's {teacher_layers}")
    # every k-th layer from the first, as DistilBERT does (measured here: layers 0,2,4 of 6 reach
    # F1 54.5 after 300 s where 1,3,5 reach 37.5)
    return sorted({int(teacher_layers * i / n) for i in range(n)})


def make_student(teacher: Any, keep: list[int]) -> Any:
    """A deep copy of the teacher with only the `keep` blocks."""
    import torch

    student = copy.deepcopy(teacher)
    owner, attr, count_attr = _blocks(student)
    if getattr(student.config, "model_type", "") == "t5" and 0 not in keep:
        raise ValueError("distill: a T5 student keeps layer 0, which holds the relative position bias")
    layers = getattr(owner, attr)
    kept = torch.nn.ModuleList([layers[i] for i in keep])
    for index, layer in enumerate(kept):  # the KV cache is indexed by each attention's layer_idx
        for sub in layer.modules():
            if isinstance(getattr(sub, "layer_idx", None), int):
                setattr(sub, "layer_idx", index)  # noqa: B010 (mypy types module attributes as tensors)
    setattr(owner, attr, kept)
    setattr(student.config, count_attr, len(keep))
    return student


class Distill(Compressor):
    """Train a shallower student from the teacher's own layers."""

    name = "distill"
    description = "student from the teacher's layers, trained on the training split with soft + hard targets"
    Config = DistillConfig
    needs_training_split = True
    requires = frozenset({Trait.PYTORCH, Trait.FLOAT_LINEAR})
    config: DistillConfig
    search_space = {"num_layers": IntRange(low=1, high=5)}

    def cache_key(self, ctx: CompressContext, examples: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """Hash of everything that determines the trained student, and what it covers."""
        return training.cache_key(ctx, self.config.model_dump(), examples, version=5)

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:

        model = eager(model, self.name)
        owner, attr, _ = _blocks(model.module)
        teacher_layers = len(getattr(owner, attr))
        keep = student_layers(teacher_layers, self.config)
        examples = ctx.training_examples(self.config.train_examples)
        key, identity = self.cache_key(ctx, examples)
        cached = ctx.cache_dir / "students" / key
        ctx.facts.update(
            {"student_layers": keep, "teacher_layers": teacher_layers, "cache_key": key, "cache_identity": identity}
        )
        facts = cached_facts(cached)
        if facts is not None:
            student_cls: Any = type(model.module)
            student = student_cls.from_pretrained(cached).to(model.device).eval()
            ctx.facts.update(facts, cached=True)
            return TorchModel(student, model.tokenizer, model.device)
        student = make_student(model.module, keep)
        facts = train_student(model, student, examples, ctx, self.config)
        publish_trained(cached, facts, student.save_pretrained)
        ctx.facts.update(facts, cached=False)
        return TorchModel(student.eval(), model.tokenizer, model.device)

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        params = take_census(after.tensors()).parameters
        checks: dict[str, Any] = {"parameters_before": before.parameters, "parameters_after": params}
        layers = ""
        if isinstance(after, TorchModel):  # later in a chain (another runtime), the parameter count still tells
            owner, attr, _ = _blocks(after.module)
            checks["student_layers"] = len(getattr(owner, attr))
            layers = f"{checks['student_layers']} layers, "
        if params >= before.parameters:
            return Verification(passed=False, summary="the student is not smaller than the teacher", checks=checks)
        return Verification(passed=True, summary=f"student of {layers}{params:,} parameters", checks=checks)
