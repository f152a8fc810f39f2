"""Structured pruning: remove whole attention heads and FFN neurons, so the matrices really shrink."""

from __future__ import annotations

import copy
from typing import Any, Literal

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt

from bench.core.census import Census, take_census
from bench.core.compressor import CompressContext, Compressor, Trait, Verification
from bench.core.errors import UnsupportedHere
from bench.core.model import ModelHandle
from bench.core.settings import FloatRange, PluginConfig
from bench.runtimes.torch import TorchModel, eager
from compressors import training
from compressors.training import TrainingBudget, cached_facts, publish_trained, train_student

WEIGHTS = "model.safetensors"
"""The recovered weights in a cache entry (the pruning itself is redone: it is deterministic)."""


class PruneStructuredConfig(PluginConfig):
    """Settings of prune-structured."""

    heads: float = Field(0.25, ge=0.0, lt=1.0)
    """Fraction of attention heads removed in each layer (at least one head always stays)."""
    ffn: float = Field(0.25, ge=0.0, lt=1.0)
    """Fraction of feed-forward neurons removed in each layer."""
    importance: Literal["activation", "magnitude"] = "activation"
    """activation: mean |output| on training-split batches times the outgoing weight norm;
    magnitude: weight norms only (no data)."""
    calibration_samples: PositiveInt = 32
    recover_steps: NonNegativeInt = 0
    """Recovery fine-tuning after pruning: at most this many steps of distillation from the unpruned model
    (soft targets and hard labels) on the training split; 0: none. Cached like distillation."""
    recover_time_s: PositiveFloat = 600.0
    """Recovery stops at whichever of recover_steps and recover_time_s comes first."""
    recover_examples: PositiveInt = 4000
    """The first N examples of the training split."""
    recover_batch_size: PositiveInt = 16
    recover_learning_rate: PositiveFloat = 5e-5
    recover_seq_length: PositiveInt = 256
    """Training window length (evaluation uses the run's sequence length)."""


def encoder_layers(module: Any) -> list[Any]:
    """The transformer blocks of a BERT-style encoder, or UnsupportedHere."""
    base = getattr(module, "base_model", module)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    needed = ("attention.self.query", "attention.output.dense", "intermediate.dense", "output.dense")
    if not layers or not all(_has(layers[0], path) for path in needed):
        kind = getattr(getattr(module, "config", None), "model_type", type(module).__name__)
        raise UnsupportedHere(f"prune-structured supports BERT-style encoders; '{kind}' has another layout")
    return list(layers)


def _has(obj: Any, path: str) -> bool:
    for part in path.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def _magnitude_scores(layer: Any) -> tuple[Any, Any]:
    attn = layer.attention.self
    heads, size = attn.num_attention_heads, attn.attention_head_size
    rows = [m.weight.view(heads, size, -1).pow(2).sum(dim=(1, 2)) for m in (attn.query, attn.key, attn.value)]
    out = layer.attention.output.dense.weight.view(-1, heads, size).pow(2).sum(dim=(0, 2))
    head_scores = (sum(rows) + out).sqrt()
    neuron_scores = layer.intermediate.dense.weight.norm(dim=1) * layer.output.dense.weight.norm(dim=0)
    return head_scores, neuron_scores


def _activation_scores(module: Any, layers: list[Any], batches: list[Any], device: str) -> list[tuple[Any, Any]]:
    import torch

    sums: dict[int, list[Any]] = {}

    def hook(index: int, kind: int, heads: int) -> Any:
        def record(_: Any, inputs: tuple[Any, ...]) -> None:
            x = inputs[0].detach().float().abs()
            value = x.view(*x.shape[:-1], heads, -1).mean(dim=(0, 1, 3)) if kind == 0 else x.mean(dim=(0, 1))
            slot = sums.setdefault(index, [0, 0])
            slot[kind] = slot[kind] + value

        return record

    handles = []
    for i, layer in enumerate(layers):
        heads = layer.attention.self.num_attention_heads
        handles.append(layer.attention.output.dense.register_forward_pre_hook(hook(i, 0, heads)))
        handles.append(layer.output.dense.register_forward_pre_hook(hook(i, 1, 0)))
    try:
        with torch.no_grad():
            for batch in batches:
                module(**{k: v.to(device) for k, v in batch.items()})
    finally:
        for h in handles:
            h.remove()
    scores = []
    with torch.no_grad():
        for i, layer in enumerate(layers):
            attn = layer.attention.self
            w_o = layer.attention.output.dense.weight.view(-1, attn.num_attention_heads, attn.attention_head_size)
            head_out = w_o.pow(2).sum(dim=(0, 2)).sqrt()
            neuron_out = layer.output.dense.weight.norm(dim=0)
            scores.append((sums[i][0] * head_out, sums[i][1] * neuron_out))
    return scores


class PruneStructured(Compressor):
    """Remove the least important heads and FFN neurons of every layer."""

    name = "prune-structured"
    description = "remove attention heads and FFN neurons by importance (smaller matrices: faster, smaller)"
    Config = PruneStructuredConfig
    requires = frozenset({Trait.PYTORCH, Trait.FLOAT_LINEAR})
    config: PruneStructuredConfig
    search_space = {
        "heads": FloatRange(low=0.0, high=0.5, step=0.125),
        "ffn": FloatRange(low=0.0, high=0.75, step=0.125),
    }

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        model = eager(model, self.name)
        teacher = None
        if self.config.recover_steps:
            teacher = TorchModel(copy.deepcopy(model.module), model.tokenizer, model.device)
        if getattr(model.config, "is_encoder_decoder", False):
            pruned = self._seq2seq(model, ctx)
        else:
            pruned = self._encoder(model, ctx)
        if teacher is not None:
            self._recover(teacher, pruned, ctx)
        else:
            ctx.notes.append("structured pruning without fine-tuning: accuracy loss is not recovered")
        return pruned

    def _recover(self, teacher: TorchModel, pruned: TorchModel, ctx: CompressContext) -> None:
        """Distil the unpruned model into the pruned one, or load what an earlier run learned (the pruning
        itself is deterministic, so the cache holds only the trained weights)."""
        from safetensors.torch import load_model, save_model

        cfg = self.config
        examples = ctx.training_examples(cfg.recover_examples)
        key, identity = training.cache_key(ctx, cfg.model_dump(), examples, version=1)
        cached = ctx.cache_dir / "recovered" / key
        recovery: dict[str, Any] = {"cache_key": key, "cache_identity": identity}
        ctx.facts["recovery"] = recovery
        facts = cached_facts(cached)
        if facts is not None:
            load_model(pruned.module, str(cached / WEIGHTS))
            recovery.update(facts, cached=True)
        else:
            settings = TrainingBudget(
                max_steps=cfg.recover_steps,
                max_time_s=cfg.recover_time_s,
                batch_size=cfg.recover_batch_size,
                learning_rate=cfg.recover_learning_rate,
                warmup_steps=min(20, cfg.recover_steps // 10),
                temperature=2.0,
                alpha=0.5,
                max_seq_length=cfg.recover_seq_length,
            )
            facts = train_student(teacher, pruned.module, examples, ctx, settings)
            publish_trained(cached, facts, lambda folder: save_model(pruned.module, str(folder / WEIGHTS)))
            recovery.update(facts, cached=False)
        steps = recovery["train_steps"]
        ctx.notes.append(f"recovered by {steps} steps of distillation from the unpruned model on the training split")

    def _encoder(self, model: TorchModel, ctx: CompressContext) -> TorchModel:
        """BERT-style encoders: heads and neurons by activation (or magnitude) importance."""
        import torch
        from transformers.pytorch_utils import prune_linear_layer

        module: Any = model.module
        layers = encoder_layers(module)
        if self.config.importance == "activation":
            data = ctx.calibration_data(self.config.calibration_samples)
            ctx.facts["calibration"] = {"split": ctx.calibration_split, "example_ids": data.example_ids}
            scores = _activation_scores(module, layers, data.batches, model.device)
        else:
            with torch.no_grad():
                scores = [_magnitude_scores(layer) for layer in layers]
        heads_to_prune: dict[int, list[int]] = {}
        neurons_removed: list[int] = []
        with torch.no_grad():
            for i, (layer, (head_scores, neuron_scores)) in enumerate(zip(layers, scores, strict=True)):
                n_heads = layer.attention.self.num_attention_heads
                drop = min(round(n_heads * self.config.heads), n_heads - 1)
                if drop:
                    heads_to_prune[i] = sorted(int(h) for h in torch.argsort(head_scores)[:drop])
                width = layer.intermediate.dense.out_features
                n_drop = round(width * self.config.ffn)
                if n_drop:
                    keep: Any = torch.argsort(neuron_scores, descending=True)[: width - n_drop].sort().values
                    layer.intermediate.dense = prune_linear_layer(layer.intermediate.dense, keep, dim=0)
                    layer.output.dense = prune_linear_layer(layer.output.dense, keep, dim=1)
                neurons_removed.append(n_drop)
            if heads_to_prune:
                module.prune_heads(heads_to_prune)
        ctx.facts["heads_removed"] = {str(k): v for k, v in heads_to_prune.items()}
        ctx.facts["ffn_neurons_removed"] = neurons_removed
        return model

    def _seq2seq(self, model: TorchModel, ctx: CompressContext) -> TorchModel:
        """Encoder-decoder models: heads and neurons by weight norms (magnitude importance)."""
        import torch

        from compressors.seq2seq_blocks import find_layers, head_scores, neuron_scores, prune_heads, prune_neurons

        parts = find_layers(model.module)
        if self.config.importance == "activation":
            ctx.notes.append("prune-structured on encoder-decoder models ranks by weight magnitude")
        if parts.heads_note and self.config.heads:
            ctx.notes.append(parts.heads_note)
        heads_removed: list[list[int]] = []
        neurons_removed: list[int] = []
        with torch.no_grad():
            for group in parts.attention:
                drop = min(round(group.heads * self.config.heads), group.heads - 1)
                chosen = sorted(int(h) for h in torch.argsort(head_scores(group))[:drop])
                if chosen:
                    prune_heads(group, chosen)
                heads_removed.append(chosen)
            for block in parts.ffn:
                width = block.width
                n_drop = round(width * self.config.ffn)
                if n_drop:
                    keep: Any = torch.argsort(neuron_scores(block), descending=True)[: width - n_drop].sort().values
                    prune_neurons(block, keep)
                neurons_removed.append(n_drop)
        ctx.facts["heads_removed"] = heads_removed
        ctx.facts["ffn_neurons_removed"] = neurons_removed
        return model

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        params_after = take_census(after.tensors()).parameters
        params_before = before.parameters
        checks: dict[str, Any] = {"parameters_before": params_before, "parameters_after": params_after}
        if not isinstance(after, TorchModel):
            pass  # later in a chain (another runtime): the parameter count still tells
        elif getattr(after.config, "is_encoder_decoder", False):
            from compressors.seq2seq_blocks import find_layers

            parts = find_layers(after.module)
            checks["heads_per_attention"] = [g.heads for g in parts.attention]
            checks["ffn_width_per_layer"] = [b.width for b in parts.ffn]
        else:
            layers = encoder_layers(after.module)
            checks["heads_per_layer"] = [layer.attention.self.num_attention_heads for layer in layers]
            checks["ffn_width_per_layer"] = [layer.intermediate.dense.out_features for layer in layers]
        removed = params_before - params_after
        if removed <= 0 and (self.config.heads or self.config.ffn):
            return Verification(passed=False, summary="no parameter was removed", checks=checks)
        return Verification(
            passed=True, summary=f"{removed:,} parameters removed ({100 * removed / params_before:.1f}%)", checks=checks
        )
