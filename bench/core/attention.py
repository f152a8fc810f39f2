"""Attention kernels as a measured choice: what a suite may request, whether the model family and this
machine can run it, and what the loaded model really runs (read back from it, never from the request)."""

from __future__ import annotations

import importlib.util
from typing import Literal

from bench.core.devices import Device

Attention = Literal["eager", "sdpa", "flash_attention_2"]
"""transformers' `attn_implementation` values that bench measures."""

_SUPPORT_FLAG = {"sdpa": "_supports_sdpa", "flash_attention_2": "_supports_flash_attn"}


def unsupported_here(requested: Attention | None, device: Device) -> str | None:
    """Why this machine cannot run the requested kernels (the run is a skipped record), or None."""
    if requested != "flash_attention_2":
        return None
    if not device.is_cuda:
        return "flash_attention_2 runs on CUDA only"
    if importlib.util.find_spec("flash_attn") is None:
        return "flash_attention_2 needs the flash-attn package, which is not installed"
    return None


def unsupported_by_model(requested: Attention | None, location: str, revision: str | None) -> str | None:
    """Why the model's family has no such kernels in this transformers (a skipped record), or None."""
    if requested is None or requested == "eager":
        return None
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    config = AutoConfig.from_pretrained(location, revision=revision)
    try:
        family: object = MODEL_MAPPING[type(config)]
    except KeyError:
        return None  # a family transformers does not map: from_pretrained decides
    if getattr(family, _SUPPORT_FLAG[requested], False):
        return None
    name = getattr(family, "__name__", family)
    return f"{name} has no {requested} attention in transformers {transformers.__version__}"


def load_arguments(requested: Attention | None) -> dict[str, str]:
    """from_pretrained keyword arguments for the request (none: transformers' default, sdpa where the family
    has it)."""
    return {} if requested is None else {"attn_implementation": requested}


def executed(config: object) -> str | None:
    """The attention implementation a loaded model runs, from its config (None where it has none)."""
    value = getattr(config, "_attn_implementation", None)
    return value if isinstance(value, str) else None


def pattern(config: object, block_sparse_switched_off: bool = False) -> str:
    """Which query-key pairs the model's attention computes: "full", a sliding window, or block-sparse
    (BigBird turns block-sparse off for inputs too short for its blocks: `block_sparse_switched_off`)."""
    window = getattr(config, "attention_window", None)
    if isinstance(window, list) and window:
        return f"sliding window of {max(window)} tokens + global"
    if isinstance(window, int):
        return f"sliding window of {window} tokens + global"
    if getattr(config, "attention_type", None) == "block_sparse":
        if block_sparse_switched_off:
            return "full (block-sparse switched off by the model: the input is too short for its blocks)"
        blocks, random = getattr(config, "block_size", "?"), getattr(config, "num_random_blocks", "?")
        return f"block sparse ({blocks}-token blocks, {random} random)"
    return "full"
