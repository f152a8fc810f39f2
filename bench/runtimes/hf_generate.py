"""transformers' `generate` with a per-step callback, for any model with GenerationMixin (eager
PyTorch, or optimum's ONNX Runtime models)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

GENERATION_INPUTS = ("input_ids", "attention_mask")


@functools.cache
def _step_callback_class() -> Any:
    """A stopping criterion that never stops: transformers calls it once after every decoding step.
    Made once (not per timed call): transformers is imported lazily."""
    import torch
    from transformers import StoppingCriteria

    class StepCallback(StoppingCriteria):
        def __init__(self, on_token: Callable[[], None]) -> None:
            self.on_token = on_token

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            self.on_token()
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)  # type: ignore[return-value]

    return StepCallback


def _step_callback(on_token: Callable[[], None]) -> Any:
    return _step_callback_class()(on_token)


def hf_generate(
    model: Any,
    batch: Mapping[str, Any],
    settings: Mapping[str, Any],
    on_token: Callable[[], None] | None,
    device: str,
) -> Any:
    """Token ids generated for `batch` (decoder start token first), on the CPU."""
    from transformers import StoppingCriteriaList

    inputs = {k: batch[k].to(device) for k in GENERATION_INPUTS if k in batch}
    criteria = StoppingCriteriaList([_step_callback(on_token)]) if on_token is not None else None
    out = model.generate(**inputs, **settings, stopping_criteria=criteria)
    return out.cpu()
