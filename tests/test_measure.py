import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.core.latency import LatencySettings, measure_latency, time_calls
from bench.core.shape import Shape
from bench.core.size import deflated_size, measure_saved
from bench.measure.memory import RssSampler, max_rss_bytes


class FakeClock:
    """Each call to the timed function advances time by `step_ns`."""

    def __init__(self, step_ns: int) -> None:
        self.t = 0
        self.step = step_ns

    def __call__(self) -> int:
        return self.t

    def work(self, _: object) -> None:
        self.t += self.step


def test_stops_only_when_iterations_and_duration_are_both_reached() -> None:
    clock = FakeClock(10_000_000)  # 10 ms per call
    settings = LatencySettings(warmup=2, min_iterations=5, min_duration_s=0.2, max_iterations=1000, max_duration_s=60)
    cold, samples, measured = time_calls(clock.work, [1, 2, 3], settings, clock=clock)
    assert cold == pytest.approx(10.0)
    assert len(samples) == 20  # 0.2 s / 10 ms: the duration bound, not the 5 iterations, decides
    assert all(s == pytest.approx(10.0) for s in samples)
    assert measured == pytest.approx(0.2)


def test_minimum_iterations_win_over_a_short_duration() -> None:
    clock = FakeClock(1_000_000_000)  # 1 s per call
    settings = LatencySettings(warmup=0, min_iterations=7, min_duration_s=0.5, max_iterations=100, max_duration_s=600)
    _, samples, _ = time_calls(clock.work, [0], settings, clock=clock)
    assert len(samples) == 7


def test_maximums_cap_the_measurement() -> None:
    clock = FakeClock(1_000_000)
    settings = LatencySettings(warmup=0, min_iterations=10, min_duration_s=100, max_iterations=50, max_duration_s=1000)
    _, samples, _ = time_calls(clock.work, [0], settings, clock=clock)
    assert len(samples) == 50


def test_inputs_rotate_and_device_is_synchronized() -> None:
    seen: list[int] = []
    syncs: list[int] = []
    settings = LatencySettings(warmup=2, min_iterations=6, min_duration_s=0, max_iterations=6, max_duration_s=10)
    time_calls(seen.append, [0, 1, 2, 3], settings, synchronize=lambda: syncs.append(1))
    assert seen == [0, 1, 2, 3, 0, 1, 2, 3, 0]  # cold, 2 warm-up, 6 timed
    assert len(syncs) >= 2 * 7  # before and after every timed call


def test_result_keeps_raw_samples_and_throughput() -> None:
    settings = LatencySettings(warmup=0, min_iterations=4, min_duration_s=0, max_iterations=4, max_duration_s=10)
    result = measure_latency(lambda _: None, [0], settings, Shape(batch_size=8, sequence_length=16), scope="noop")
    assert len(result.samples_ms) == result.stats.n == 4
    assert result.throughput_samples_per_s == pytest.approx(8000 / result.stats.mean)


def test_rss_sampler_sees_an_allocation() -> None:
    sampler = RssSampler(0.005).start()
    with sampler.phase("idle"):
        pass
    with sampler.phase("big"):
        block = np.ones(200 * 1024 * 1024 // 8)  # 200 MiB, touched
        block.sum()
    sampler.stop()
    del block
    assert sampler.peaks["big"] - sampler.peaks["idle"] > 150 * 1024 * 1024
    assert max_rss_bytes() >= sampler.peaks["big"] * 0.9


KERNEL_PEAKS = """
import json
import numpy as np
from bench.measure.memory import KernelPeaks
if not KernelPeaks.available():
    print("null")
    raise SystemExit
meter = KernelPeaks().start()
with meter.phase("spike"):
    np.ones(200 * 1024 * 1024 // 8).sum()  # 200 MiB allocated, touched and freed inside the block
with meter.phase("after"):
    pass
meter.stop()
print(json.dumps([meter.peaks["spike"], meter.peaks["after"], meter.max_rss()]))
"""


def test_kernel_peaks_catch_a_spike_between_samples_and_keep_the_lifetime_peak() -> None:
    done = subprocess.run([sys.executable, "-c", KERNEL_PEAKS], capture_output=True, text=True, check=True)
    measured = json.loads(done.stdout)
    if measured is None:
        pytest.skip("this system does not let a process reset its high-water mark")
    spike, after, lifetime = measured
    assert spike - after > 150 * 1024 * 1024  # each phase's own peak: the reset drops the spike from "after"
    assert lifetime >= spike  # while the lifetime peak survives the resets


def test_zip_size_credits_zeros(tmp_path: Path) -> None:
    dense = tmp_path / "dense.bin"
    sparse = tmp_path / "sparse.bin"
    rng = np.random.default_rng(0)
    weights = rng.standard_normal(100_000).astype(np.float32)
    dense.write_bytes(weights.tobytes())
    weights[rng.random(100_000) < 0.9] = 0.0
    sparse.write_bytes(weights.tobytes())
    assert deflated_size(sparse) < 0.3 * deflated_size(dense)
    size = measure_saved([dense, sparse], tmp_path, "raw")
    assert size.bytes == 800_000
    assert size.files == {"dense.bin": 400_000, "sparse.bin": 400_000}


def test_contention_sees_another_process_burning_cpu() -> None:
    import subprocess
    import sys
    import time

    from bench.measure.contention import CpuContention

    burner = subprocess.Popen([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<3.0: pass"])
    time.sleep(0.5)
    snapshot = CpuContention.start()
    time.sleep(1.0)
    share = snapshot.share()  # read while it burns: a child once waited for counts as this process's own work
    burner.wait()
    assert share > 0.2  # one of at most a few cores kept busy by someone else


def test_a_sampler_kept_to_its_phases_stays_asleep_between_them() -> None:
    import time

    from bench.measure.memory import RssSampler

    sampler = RssSampler(0.001, between_phases=False).start()
    time.sleep(0.1)
    idle = sampler.samples
    with sampler.phase("latency"):
        time.sleep(0.1)
    sampler.stop()
    assert idle == 0  # a held serving process wakes nobody while another row is timed
    assert sampler.samples > 10 and sampler.peaks["latency"] > 0
