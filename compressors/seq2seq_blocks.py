"""Where the prunable parts of encoder-decoder models are: attention heads and feed-forward neurons of
Marian/BART-style layers (q/k/v/out projections, fc1/fc2) and T5 blocks (q/k/v/o, wi/wo)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.core.errors import UnsupportedHere


@dataclass
class HeadGroup:
    """One attention module: its projections and how many heads it has."""

    module: Any
    query: str
    key: str
    value: str
    output: str
    heads_attr: str
    head_dim: int

    @property
    def heads(self) -> int:
        """Current number of heads."""
        return int(getattr(self.module, self.heads_attr))


@dataclass
class FeedForward:
    """One feed-forward block: the widening and the narrowing Linear, as (owner, attribute)."""

    owner: Any
    widen: str
    narrow: str

    @property
    def width(self) -> int:
        """Current number of hidden neurons."""
        return int(getattr(self.owner, self.widen).out_features)


@dataclass
class Seq2SeqLayers:
    """The prunable parts of a model; `heads_note` says why heads are not pruned, when they are not."""

    attention: list[HeadGroup]
    ffn: list[FeedForward]
    heads_note: str | None = None


def find_layers(module: Any) -> Seq2SeqLayers:
    """The attention modules and feed-forward blocks of a Marian/BART/T5 model, or UnsupportedHere."""
    base = getattr(module, "model", None)
    if base is not None and hasattr(getattr(base, "encoder", None), "layers"):  # Marian, BART, mBART, Pegasus
        attention: list[HeadGroup] = []
        ffn: list[FeedForward] = []
        for stack in (base.encoder.layers, base.decoder.layers):
            for layer in stack:
                for name in ("self_attn", "encoder_attn"):
                    attn = getattr(layer, name, None)
                    if attn is not None:
                        attention.append(
                            HeadGroup(attn, "q_proj", "k_proj", "v_proj", "out_proj", "num_heads", attn.head_dim)
                        )
                ffn.append(FeedForward(layer, "fc1", "fc2"))
        return Seq2SeqLayers(attention, ffn)
    if hasattr(module, "encoder") and hasattr(module.encoder, "block"):  # T5
        ffn = []
        for stack in (module.encoder.block, module.decoder.block):
            for block in stack:
                dense = block.layer[-1].DenseReluDense
                if not hasattr(dense, "wi"):
                    raise UnsupportedHere("prune-structured: gated T5 feed-forward (wi_0/wi_1) is not supported")
                ffn.append(FeedForward(dense, "wi", "wo"))
        note = "T5 heads kept: one relative position bias is shared by every layer's heads"
        return Seq2SeqLayers([], ffn, heads_note=note)
    kind = getattr(getattr(module, "config", None), "model_type", type(module).__name__)
    raise UnsupportedHere(f"prune-structured: no known encoder-decoder layout in '{kind}'")


def head_scores(group: HeadGroup) -> Any:
    """Weight-norm importance of each head: its q/k/v rows and its output-projection columns."""
    m, h, d = group.module, group.heads, group.head_dim
    rows = [getattr(m, p).weight.view(h, d, -1).pow(2).sum(dim=(1, 2)) for p in (group.query, group.key, group.value)]
    cols = getattr(m, group.output).weight.view(-1, h, d).pow(2).sum(dim=(0, 2))
    return (sum(rows) + cols).sqrt()


def neuron_scores(block: FeedForward) -> Any:
    """Weight-norm importance of each hidden neuron: incoming row norm times outgoing column norm."""
    return getattr(block.owner, block.widen).weight.norm(dim=1) * getattr(block.owner, block.narrow).weight.norm(dim=0)


def prune_heads(group: HeadGroup, drop: list[int]) -> None:
    """Remove heads `drop` from an attention module (its forward infers the head count from shapes)."""
    import torch
    from transformers.pytorch_utils import prune_linear_layer

    keep_heads = [h for h in range(group.heads) if h not in set(drop)]
    index: Any = torch.cat([torch.arange(h * group.head_dim, (h + 1) * group.head_dim) for h in keep_heads])
    for name in (group.query, group.key, group.value):
        setattr(group.module, name, prune_linear_layer(getattr(group.module, name), index, dim=0))
    setattr(group.module, group.output, prune_linear_layer(getattr(group.module, group.output), index, dim=1))
    setattr(group.module, group.heads_attr, len(keep_heads))


def prune_neurons(block: FeedForward, keep: Any) -> None:
    """Keep only hidden neurons `keep` of a feed-forward block."""
    from transformers.pytorch_utils import prune_linear_layer

    setattr(block.owner, block.widen, prune_linear_layer(getattr(block.owner, block.widen), keep, dim=0))
    setattr(block.owner, block.narrow, prune_linear_layer(getattr(block.owner, block.narrow), keep, dim=1))
