"""Unstructured magnitude pruning of Linear weights, made permanent (zeros stored in dense tensors)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from bench.core.census import Census, take_census
from bench.core.compressor import CompressContext, Compressor, Trait, Verification
from bench.core.model import ModelHandle
from bench.core.settings import Facts, FloatRange, PluginConfig
from bench.runtimes.torch import TorchModel, eager
from compressors.patterns import Pattern, matches_any

DEFAULT_EXCLUDE = ["qa_outputs", "classifier", "lm_head", "pooler"]
TOLERANCE = 0.01


class PruneMagnitudeConfig(PluginConfig):
    """Settings of prune-magnitude."""

    sparsity: float = Field(0.5, gt=0.0, lt=1.0)
    """Fraction of the targeted weights set to zero."""
    scope: Literal["global", "layer"] = "global"
    """global: one magnitude threshold over all targeted layers; layer: the same fraction in each."""
    include: Pattern = ""
    """Regular expression (re.search) a Linear module's name must match; empty matches all."""
    exclude: list[Pattern] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    """Regular expressions of module names left dense (by default the task heads)."""


def target_layers(module: Any, config: PruneMagnitudeConfig) -> list[tuple[str, Any]]:
    """The Linear layers the config selects, by name."""
    import torch

    return [
        (name, sub)
        for name, sub in module.named_modules()
        if isinstance(sub, torch.nn.Linear)
        and re.search(config.include, name)
        and not matches_any(name, config.exclude)
    ]


def weight_sparsity(layers: list[tuple[str, Any]]) -> tuple[float, dict[str, float]]:
    """Overall and per-layer fraction of zero weights."""
    import torch

    per_layer = {n: float((m.weight == 0).float().mean()) for n, m in layers}
    zeros = sum(int(torch.count_nonzero(m.weight == 0)) for _, m in layers)
    total = sum(m.weight.numel() for _, m in layers)
    return (zeros / total if total else 0.0), per_layer


class PruneMagnitude(Compressor):
    """Zero the smallest-magnitude weights (L1), globally or per layer."""

    name = "prune-magnitude"
    description = "unstructured magnitude pruning of Linear weights to a target sparsity"
    Config = PruneMagnitudeConfig
    requires = frozenset({Trait.PYTORCH, Trait.FLOAT_LINEAR})
    config: PruneMagnitudeConfig
    search_space = {"sparsity": FloatRange(low=0.1, high=0.7, step=0.1)}
    pruned_elements: int = 0
    """Weights the last `compress` targeted (for checking, later in a chain, that the zeros survived)."""

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import torch
        from torch.nn.utils import prune

        model = eager(model, self.name)
        layers = target_layers(model.module, self.config)
        if not layers:
            raise ValueError("prune-magnitude: no Linear layer matches include/exclude")
        params = [(m, "weight") for _, m in layers]
        with torch.no_grad():
            if self.config.scope == "global":
                prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=self.config.sparsity)
            else:
                for m, name in params:
                    prune.l1_unstructured(m, name, amount=self.config.sparsity)
            for m, name in params:
                prune.remove(m, name)
        ctx.notes.append("unstructured sparsity runs on dense kernels: no speed-up expected, only smaller zipped size")
        ctx.facts["pruned_layers"] = len(layers)
        self.pruned_elements = sum(m.weight.numel() for _, m in layers)
        return model

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        layers = target_layers(after.module, self.config) if isinstance(after, TorchModel) else []
        if not layers:
            return self._zeros_survived(before, after)
        measured, per_layer = weight_sparsity(layers)
        checks: dict[str, Any] = {
            "target_sparsity": self.config.sparsity,
            "measured_sparsity": measured,
            "layers": len(layers),
            "min_layer_sparsity": min(per_layer.values(), default=0.0),
            "max_layer_sparsity": max(per_layer.values(), default=0.0),
        }
        ok = abs(measured - self.config.sparsity) <= TOLERANCE
        summary = f"measured sparsity {measured:.4f} of {len(layers)} Linear layers (target {self.config.sparsity})"
        return Verification(passed=ok, summary=summary, checks=checks)

    def _zeros_survived(self, before: Census, after: ModelHandle) -> Verification:
        """Later in a chain (quantized or exported layers): the zeros the pruning made are still there."""
        expected = before.parameters - before.nonzero + round(self.config.sparsity * self.pruned_elements)
        census = take_census(after.tensors())
        zeros = census.parameters - census.nonzero
        checks: Facts = {"expected_zero_weights": expected, "zero_weights": zeros}
        ok = self.pruned_elements > 0 and zeros >= (1 - TOLERANCE) * expected
        summary = f"{zeros:,} zero weights in the model (at least {expected:,} expected after pruning)"
        return Verification(passed=ok, summary=summary, checks=checks)
