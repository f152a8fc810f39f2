import math

import numpy as np
import pytest

from bench.core.stats import percentile, summarize


def test_summary_of_hand_made_samples() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0, 5.0])
    assert s.n == 5
    assert s.mean == 3.0
    assert s.min == 1.0 and s.max == 5.0
    assert s.p50 == 3.0
    # sample standard deviation of 1..5 is sqrt(2.5)
    assert s.stdev == pytest.approx(math.sqrt(2.5))
    assert s.cv_percent == pytest.approx(100 * math.sqrt(2.5) / 3)
    # linear interpolation: p90 of 1..5 is 1 + 0.9 * 4
    assert s.p90 == pytest.approx(4.6)
    assert s.p99 == pytest.approx(4.96)


@pytest.mark.parametrize("q", [0, 10, 25, 50, 90, 95, 99, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    rng = np.random.default_rng(0)
    values = sorted(rng.lognormal(size=37).tolist())
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_single_sample_has_zero_spread() -> None:
    s = summarize([7.5])
    assert (s.mean, s.stdev, s.p99) == (7.5, 0.0, 7.5)


def test_no_samples_is_an_error() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        percentile([1.0], 101)
