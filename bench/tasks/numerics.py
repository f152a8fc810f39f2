"""Outputs that overflowed: a model whose logits hold NaN or inf fails its run instead of scoring empty
answers (fp16 overflows where fp32 does not)."""

from __future__ import annotations

import functools
from typing import Any


class NonFiniteOutput(RuntimeError):
    """A model produced NaN or inf logits."""


def _array(values: Any) -> Any:
    import numpy as np

    return values.float().cpu().numpy() if hasattr(values, "cpu") else np.asarray(values)


def require_finite(values: Any, what: str) -> None:
    """Raise NonFiniteOutput when the tensor or array `values` holds NaN or inf."""
    import numpy as np

    array = _array(values)
    bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
    if bad:
        raise NonFiniteOutput(
            f"{what} hold NaN or inf ({bad:,} of {np.size(array):,} values): the model overflows in this precision"
        )


def require_scores(values: Any, what: str) -> None:
    """Raise NonFiniteOutput when decoding scores hold NaN or +inf, or a row is -inf throughout."""
    import numpy as np

    array = _array(values)
    bad = int(np.count_nonzero(np.isnan(array) | np.isposinf(array)))
    dead = int(np.count_nonzero(np.all(np.isneginf(array), axis=-1)))
    if bad or dead:
        raise NonFiniteOutput(
            f"{what} hold NaN or +inf ({bad:,} values) or rows of -inf ({dead:,}): the model overflows in this "
            "precision"
        )


@functools.cache
def _finite_scores_class() -> Any:
    from transformers import LogitsProcessor

    class FiniteScores(LogitsProcessor):
        """Checks each decoding step's scores. transformers runs its own processors first, and they mask
        tokens with -inf: so -inf alone is allowed, but not NaN, +inf, or a row with every token at -inf."""

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            require_scores(scores, f"decoding step {input_ids.shape[-1]} logits")
            return scores

    return FiniteScores


def finite_scores_check() -> Any:
    """A transformers LogitsProcessorList that fails generation at the first step with NaN or inf logits."""
    from transformers import LogitsProcessorList

    return LogitsProcessorList([_finite_scores_class()()])
