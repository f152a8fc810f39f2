"""The input shape of a run: batch size and sequence length, shared by the plan, the context and results."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, PositiveInt


class Shape(BaseModel):
    """Inputs per call and tokens per input."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: PositiveInt
    sequence_length: PositiveInt

    def __str__(self) -> str:
        return f"bs{self.batch_size} seq{self.sequence_length}"
