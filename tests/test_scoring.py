"""Scoring throughput: the tokens a task's evaluation pushes through the model per second, against a bare
replay of the same calls."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from bench.core.model import Batch, ModelHandle
from bench.core.records import ScoringThroughput
from bench.measure.scoring import ScoringMeter


class SleepyModel(ModelHandle):
    """A model whose calls take 20 µs per input token."""

    runtime = "fake"

    def __init__(self) -> None:
        super().__init__(None, "cpu")

    def forward(self, batch: Batch) -> Mapping[str, torch.Tensor]:
        time.sleep(2e-5 * batch["input_ids"].numel())
        return {"logits": batch["input_ids"].float()}

    def save(self, directory: Path) -> list[Path]:
        return []

    def tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        return iter(())


def score(overhead_s: float) -> tuple[SleepyModel, ScoringThroughput | None]:
    """Thirty calls of three widths, with `overhead_s` of other work after each (what an evaluation loop does
    between calls), metered."""
    model = SleepyModel()
    meter = ScoringMeter(model)
    start = time.perf_counter()
    with meter.recording():
        for width in (64, 128, 256) * 10:
            model.forward({"input_ids": torch.zeros(2, width, dtype=torch.long)})
            time.sleep(overhead_s)
    return model, meter.result(time.perf_counter() - start)


def test_a_loop_without_overhead_scores_at_the_models_speed() -> None:
    model, result = score(0.0)
    assert result is not None and result.calls == 30 and result.tokens == 30 * 2 * 448 // 3
    assert result.ratio is not None and 0.8 < result.ratio <= 1.1
    assert "forward" not in vars(model)  # the model's own method again


def test_time_between_calls_shows_as_a_lower_ratio() -> None:
    _, result = score(0.01)
    assert result is not None and result.ratio is not None and result.ratio < 0.6
    assert result.model_seconds < result.seconds and result.replayed_calls == 4  # every 10th at once, one more after


def test_a_short_evaluation_replays_its_first_calls_after_it() -> None:
    model = SleepyModel()
    meter = ScoringMeter(model)
    with meter.recording():
        model.forward({"input_ids": torch.zeros(1, 32, dtype=torch.long)})
    result = meter.result(1.0)
    assert result is not None and result.replayed_calls == 1 and result.seconds == 1.0
    assert result.ratio is not None and result.ratio < 0.1  # 32 tokens in a second, against the model's speed


def test_no_model_call_gives_no_figure() -> None:
    meter = ScoringMeter(SleepyModel())
    with meter.recording():
        pass
    assert meter.result(1.0) is None
