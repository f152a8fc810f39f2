"""The CUDA path, tested on CPU where it can be: device strings, per-phase GPU memory with a fake CUDA
memory API, record reuse by environment, the census of packed 4-bit weights, NaN detection, timing scope,
capability checks and `bench doctor`. The GPU tests at the end run where CUDA is."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from bench.core import devices
from bench.core.census import state_dict_tensors, take_census
from bench.core.device_memory import DeviceMemoryTracker
from bench.core.devices import Device
from bench.core.environment import Environment, GpuInfo, capture
from bench.core.latency import LatencySettings, time_calls, with_device_samples
from bench.core.records import ErrorInfo, RunRecord, Status
from bench.reuse import still_holds
from bench.tasks.numerics import NonFiniteOutput, finite_scores_check, require_finite

from .test_records import make_record

CUDA = torch.cuda.is_available()


# --- device strings -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "index"),
    [("cpu", "cpu", None), ("cuda", "cuda", None), ("cuda:1", "cuda", 1), (" cuda:0", "cuda", 0)],
)
def test_device_strings_parse_in_one_place(text: str, kind: str, index: int | None) -> None:
    ref = devices.parse(text)
    assert (ref.kind, ref.index) == (kind, index)
    assert devices.is_cuda(text) == (kind == "cuda")


@pytest.mark.parametrize("text", ["tpu", "cpu:0", "cuda:", "cuda:x", "CUDA"])
def test_unknown_devices_are_one_clear_error(text: str) -> None:
    with pytest.raises(ValueError, match="use cpu, cuda or cuda:N"):
        devices.parse(text)


def test_a_numbered_gpu_reaches_onnx_runtime_and_the_run_key() -> None:
    assert devices.ort_cuda_options("cuda:2") == {"device_id": "2"}
    assert devices.cuda_index("cuda:3") == 3


def test_a_suite_on_cuda_1_plans_runs_keyed_without_a_colon(tiny_suite: Path, tmp_path: Path) -> None:
    from bench.config import load_suite
    from bench.core.launcher import RunOptions
    from bench.launchers.sequence import plan
    from bench.validate import resolve

    suite = load_suite(tiny_suite).model_copy(update={"devices": ["cuda:1"]})
    specs = plan(resolve(suite, tiny_suite), RunOptions(results_dir=tmp_path))
    assert {s.device for s in specs} == {"cuda:1"}
    assert all("__cuda1__" in s.key and ":" not in s.key for s in specs)


def test_a_cpu_only_torch_is_told_apart_from_a_machine_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.version, "cuda", None)
    assert "this torch build has no CUDA" in str(devices.cuda_unavailable_reason("cuda"))
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reason = str(devices.cuda_unavailable_reason("cuda"))
    assert reason.startswith("no CUDA device on this machine") and "CUDA 12.8" in reason
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert devices.cuda_unavailable_reason("cuda:1") == "cuda:1: this machine has 1 CUDA device(s)"
    assert devices.cuda_unavailable_reason("cuda:0") is None


# --- GPU memory per phase -------------------------------------------------------------------------------


class FakeCudaMemory:
    """The CUDA caching allocator, in miniature: tensors held, blocks cached, peaks since a reset."""

    def __init__(self) -> None:
        self.held = 0
        self.cached = 0
        self.peak = 0
        self.reserved_peak = 0
        self.releases = 0
        self.context = 500

    def allocate(self, n: int) -> None:
        self.held += n
        self.cached = max(0, self.cached - n)
        self.peak = max(self.peak, self.held)
        self.reserved_peak = max(self.reserved_peak, self.held + self.cached)

    def free(self, n: int) -> None:
        self.held -= n
        self.cached += n  # the allocator keeps freed blocks until empty_cache

    def release_cached(self) -> None:
        self.releases += 1
        self.cached = 0

    def reset_peaks(self) -> None:
        self.peak = self.held
        self.reserved_peak = self.held + self.cached

    def peaks(self) -> tuple[int, int]:
        return self.peak, self.reserved_peak

    def device_used(self) -> int | None:
        return self.context + self.held + self.cached

    def total(self) -> int | None:
        return 80_000


def test_each_phase_has_its_own_peaks_and_a_cast_model_shows_its_own_size() -> None:
    api = FakeCudaMemory()
    tracker = DeviceMemoryTracker(api, "cuda:0")
    with tracker.phase("load"):
        api.allocate(4000)  # the fp32 model
    with tracker.phase("compress"):
        api.allocate(2000)  # cast to fp16 ...
        api.free(4000)  # ... the fp32 weights go
    with tracker.phase("latency"):
        api.allocate(300)  # activations
        api.free(300)
    phases = tracker.record.phases
    assert phases["load"].allocated_peak == 4000
    assert phases["compress"].allocated_peak == 6000
    assert phases["latency"].allocated_peak == 2300  # fp16's own, not the fp32 peak of an earlier phase
    assert phases["latency"].reserved_peak == 2300  # the cached fp32 blocks were released before the phase
    assert phases["latency"].device_used == 500 + 2000 + 300  # context included, read at the phase's edges
    assert api.releases == 3
    assert tracker.record.steady_allocated() == 2300
    assert tracker.record.total_bytes == 80_000


def test_the_record_keeps_every_phase_and_the_highest_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.measure.memory import RssSampler
    from bench.worker import _memory

    api = FakeCudaMemory()
    tracker = DeviceMemoryTracker(api, "cuda")
    with tracker.phase("load"):
        api.allocate(4000)
    with tracker.phase("latency"):
        api.free(2000)
    memory = _memory(RssSampler(), 0, tracker, None)
    assert memory.device is not None and set(memory.device.phases) == {"load", "latency"}
    assert memory.cuda_max_allocated == 4000
    assert _memory(RssSampler(), 0, None, None).device is None


def test_gpu_memory_shows_in_tables_only_for_cuda_runs() -> None:
    from bench.catalogue import BY_NAME
    from bench.core.device_memory import DeviceMemory, DevicePhase
    from bench.core.records import Memory

    cpu = make_record()
    gpu = make_record(
        memory=Memory(
            interval_ms=10,
            samples=1,
            rss_at_start=0,
            process_max_rss=0,
            device=DeviceMemory(
                device="cuda",
                phases={
                    "latency": DevicePhase(allocated_peak=2 * 2**20, reserved_peak=3 * 2**20, device_used=5 * 2**20)
                },
            ),
        )
    )
    assert BY_NAME["gpu_memory.peak"].read(gpu) == 2.0 and BY_NAME["gpu.used"].read(gpu) == 5.0
    assert BY_NAME["gpu_memory.peak"].read(cpu) is None


# --- record reuse by environment ------------------------------------------------------------------------


def _gpu(uuid: str = "GPU-1", driver: str = "570.1") -> GpuInfo:
    return GpuInfo(name="NVIDIA H100", compute_capability="9.0", memory_bytes=80 * 2**30, uuid=uuid, driver=driver)


def _cuda_record(env: Environment, status: Status = Status.OK) -> RunRecord:
    record = make_record(environment=env, status=status)
    error = (
        ErrorInfo(type="UnsupportedHere", message="bitsandbytes is not installed") if status == Status.SKIPPED else None
    )
    return record.model_copy(update={"spec": record.spec.model_copy(update={"device": Device("cuda")}), "error": error})


def test_a_skip_is_reused_only_while_what_decided_it_holds() -> None:
    here = capture()
    skipped = make_record(environment=here, status=Status.SKIPPED)
    assert still_holds(skipped, here)
    installed = here.model_copy(update={"libraries": {**here.libraries, "bitsandbytes": "0.50.0"}})
    assert not still_holds(skipped, installed)  # bitsandbytes arrived: decide again
    assert not still_holds(make_record(environment=None, status=Status.SKIPPED), here)
    assert still_holds(make_record(environment=here), installed)  # an ok CPU figure stands


def test_a_cuda_figure_stands_only_on_the_same_gpu_and_driver() -> None:
    here = capture().model_copy(update={"gpus": [_gpu()]})
    record = _cuda_record(here)
    assert still_holds(record, here)
    assert not still_holds(record, here.model_copy(update={"gpus": [_gpu(uuid="GPU-2")]}))  # another H100, same CPU
    assert not still_holds(record, here.model_copy(update={"gpus": [_gpu(driver="580.0")]}))
    skipped_without_gpu = _cuda_record(here.model_copy(update={"gpus": []}), Status.SKIPPED)
    assert not still_holds(skipped_without_gpu, here)  # made where CUDA was missing


def test_a_cpu_suite_does_not_import_torch_to_check_its_records() -> None:
    import subprocess
    import sys

    code = (
        "import sys\nfrom bench.launchers.sequence import environment_for\nfrom tests.test_records import make_spec\n"
        "environment_for([make_spec().device])\nprint('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-1] == "False"


# --- census of packed weights ---------------------------------------------------------------------------


class Linear4bit(torch.nn.Module):
    """bitsandbytes' 4-bit layer as the census sees it: packed uint8 weight, quantization state beside it."""

    def __init__(self, rows: int, cols: int) -> None:
        super().__init__()
        packed = torch.full((rows * cols // 2, 1), 0x77, dtype=torch.uint8)
        self.weight = torch.nn.Parameter(packed, requires_grad=False)
        self.weight.quant_state = SimpleNamespace(shape=torch.Size([rows, cols]), quant_type="nf4")  # type: ignore[attr-defined]
        self.bias = torch.nn.Parameter(torch.zeros(rows, dtype=torch.float16))

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        rows = self.weight.quant_state.shape[0]  # type: ignore[attr-defined]
        destination[prefix + "weight.absmax"] = torch.ones(rows * 2, dtype=torch.float32)
        destination[prefix + "weight.quant_map"] = torch.linspace(-1, 1, 16)
        destination[prefix + "weight.quant_state.bitsandbytes__nf4"] = torch.zeros(40, dtype=torch.uint8)


class Linear8bitLt(torch.nn.Module):
    def __init__(self, rows: int, cols: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(rows, cols, dtype=torch.int8), requires_grad=False)
        self.register_buffer("SCB", torch.ones(rows, dtype=torch.float32))


def test_packed_4bit_weights_count_their_logical_parameters() -> None:
    model = torch.nn.Sequential(Linear4bit(8, 16), Linear8bitLt(4, 8), torch.nn.LayerNorm(8).half())
    census = take_census(state_dict_tensors(model))
    assert census.dtypes == {"float16": 8 + 8 + 8, "int8": 32, "nf4": 128}
    assert census.parameters == 128 + 32 + 24  # not the 64 bytes that hold the 128 nf4 values
    assert census.nonzero == 184 - 8 - 8  # two zero biases; the nf4 weight (no unpacking here) counts dense
    stored = census.stored_bytes
    assert stored["uint8"] == 64 + 40  # the packed weight and the serialized quant state
    assert stored["float32"] == 16 * 4 + 16 * 4 + 4 * 4  # absmax, code book, int8 row scales: bytes only
    assert stored["int8"] == 32 and stored["float16"] == 24 * 2


# --- numerics -------------------------------------------------------------------------------------------


def test_nan_or_inf_logits_fail_the_run_with_a_count() -> None:
    require_finite(torch.tensor([1.0, -3.0]), "logits")
    with pytest.raises(NonFiniteOutput, match=r"start_logits hold NaN or inf \(2 of 3 values\)"):
        require_finite(torch.tensor([float("nan"), 1.0, float("inf")], dtype=torch.float16), "start_logits")
    check = finite_scores_check()
    ids = torch.zeros(1, 3, dtype=torch.long)
    masked = torch.tensor([[0.0, float("-inf")]])
    assert check(ids, masked) is masked  # transformers' own processors mask tokens with -inf
    with pytest.raises(NonFiniteOutput, match="decoding step 3 logits"):
        check(ids, torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(NonFiniteOutput, match=r"rows of -inf \(1\)"):
        check(ids, torch.full((1, 2), float("-inf")))


def test_qa_evaluation_of_an_overflowing_model_fails(tiny_run: Any) -> None:
    from bench.runtimes.torch import TorchModel

    model = tiny_run.model()
    with torch.no_grad():
        model.module.qa_outputs.bias.fill_(float("inf"))
    examples = tiny_run.task.load_examples(tiny_run.spec.dataset_source, "validation", 2)
    features = tiny_run.task.encode(model.tokenizer, examples, 64)
    with pytest.raises(NonFiniteOutput, match="start_logits of the evaluated windows"):
        tiny_run.task.evaluate(TorchModel(model.module, model.tokenizer, "cpu"), examples, features, 2)


def test_t5_keeps_its_float32_modules_under_fp16() -> None:
    from transformers import T5Config, T5ForConditionalGeneration

    from bench.core.registry import COMPRESSORS
    from bench.runtimes.torch import TorchModel

    module = T5ForConditionalGeneration(T5Config(d_model=16, d_ff=24, d_kv=4, num_layers=1, num_heads=2, vocab_size=64))
    model = TorchModel(module, None, "cpu")
    before = take_census(model.tensors())
    fp16 = COMPRESSORS.load("fp16").from_mapping({})
    ctx = SimpleNamespace(notes=[], device="cpu")
    out = fp16.compress(model, ctx)  # type: ignore[arg-type]
    assert module.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.float32
    assert module.encoder.block[0].layer[1].DenseReluDense.wi.weight.dtype == torch.float16
    verdict = fp16.verify(before, out)
    assert verdict.passed and "the model keeps in float32" in verdict.summary
    assert verdict.checks["kept_float32"] == 2 * 16 * 24  # encoder and decoder wo
    assert "keep in float32: wo" in ctx.notes[0]
    bf16 = COMPRESSORS.load("bf16").from_mapping({})
    again = T5ForConditionalGeneration(T5Config(d_model=16, d_ff=24, d_kv=4, num_layers=1, num_heads=2, vocab_size=64))
    bf16.compress(TorchModel(again, None, "cpu"), SimpleNamespace(notes=[], device="cuda", cpu_flags=frozenset()))  # type: ignore[arg-type]
    assert again.encoder.block[0].layer[1].DenseReluDense.wo.weight.dtype == torch.bfloat16  # fp16 only


# --- timing scope ---------------------------------------------------------------------------------------


class FakeDeviceTimer:
    def __init__(self) -> None:
        self.calls = 0

    def begin(self) -> None:
        self.calls += 1

    def end(self) -> None:
        pass

    def elapsed_ms(self) -> float:
        return 0.9


def test_device_timings_cover_the_timed_calls_only() -> None:
    timer = FakeDeviceTimer()
    on_device: list[float] = []
    settings = LatencySettings(warmup=2, min_iterations=5, min_duration_s=0.0, max_iterations=5, max_duration_s=10)
    _, samples, _ = time_calls(lambda x: x, [1, 2], settings, device_timer=timer, device_samples=on_device)
    assert len(on_device) == len(samples) == 5 and timer.calls == 5  # not the cold call, not the warm-up
    result = with_device_samples(make_record().latency["forward"], on_device)
    assert result.device_samples_ms == on_device and result.device_p50_ms == 0.9


def test_cuda_scopes_say_where_the_inputs_were_and_gaps_are_noted() -> None:
    from bench.worker import device_timing_gaps, scoped

    torch_model = SimpleNamespace(stages_inputs=True)
    other = SimpleNamespace(stages_inputs=False)
    assert scoped("forward", Device("cpu"), torch_model) == "forward"  # type: ignore[arg-type]
    assert scoped("forward", Device("cuda:0"), torch_model).endswith("inputs resident on cuda:0 before timing")  # type: ignore[arg-type]
    assert "includes copying the inputs from host memory" in scoped("forward", Device("cuda"), other)  # type: ignore[arg-type]
    result = make_record().latency["forward"]
    close = result.model_copy(update={"device_p50_ms": result.stats.p50 * 0.98})
    far = result.model_copy(update={"device_p50_ms": result.stats.p50 * 0.5})
    assert device_timing_gaps({"forward": close}) == []
    assert "differ by 50%" in device_timing_gaps({"forward": far})[0]


def test_the_torch_runtime_stages_inputs_on_its_device() -> None:
    from bench.runtimes.torch import TorchModel

    model = TorchModel(torch.nn.Linear(2, 2), None, "cpu")
    batch = {"input_ids": torch.ones(1, 2)}
    assert model.stage(batch)["input_ids"] is batch["input_ids"]  # already there: no copy
    assert model.device_timer() is None  # CUDA events only on CUDA


# --- capability checks ----------------------------------------------------------------------------------


def test_bf16_asks_for_native_support_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.core.registry import COMPRESSORS

    asked: list[dict[str, object]] = []

    def supported(**kwargs: object) -> bool:
        asked.append(kwargs)
        return False

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    reason = COMPRESSORS.load("bf16").from_mapping({}).unsupported_reason(Device("cuda:0"), frozenset())
    assert asked == [{"including_emulation": False}] and "no native bfloat16" in str(reason)


def test_bitsandbytes_without_its_libraries_is_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from bench.core.registry import COMPRESSORS

    bnb = COMPRESSORS.load("bnb-nf4").from_mapping({})
    assert "CUDA only" in str(bnb.unsupported_reason(Device("cpu"), frozenset()))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "accelerate" else real(name))
    monkeypatch.setattr("compressors.bnb.importlib.util.find_spec", importlib.util.find_spec)
    reason = bnb.unsupported_reason(Device("cuda:1"), frozenset())
    assert reason is not None and "is not installed" in reason


def test_a_cuda_run_here_is_skipped_with_the_build_reason_and_a_full_environment(tiny_run: Any, tmp_path: Path) -> None:
    from bench.core.job import Job
    from bench.worker import execute

    spec = tiny_run.spec.model_copy(update={"device": Device("cuda")})
    record = execute(Job(spec=spec, folder=str(tmp_path)))
    if CUDA:
        pytest.skip("this machine has CUDA")
    assert record.status == Status.SKIPPED and record.error is not None
    assert ("this torch build has no CUDA" if torch.version.cuda is None else "no CUDA device") in record.error.message
    assert record.environment is not None and record.environment.cpu_model and record.environment.libraries


def test_bitsandbytes_keeps_the_head_whatever_the_suite_skips() -> None:
    pytest.importorskip("accelerate")
    from transformers import BertConfig, BertForQuestionAnswering

    from compressors.bnb import default_kept

    module = BertForQuestionAnswering(
        BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24)
    )
    assert default_kept(module) == ["qa_outputs"]
    assert all(p.device.type == "cpu" for p in module.parameters())  # found on a storage-less copy


# --- bench doctor ---------------------------------------------------------------------------------------


def test_doctor_says_plainly_what_runs_here(capsys: pytest.CaptureFixture[str]) -> None:
    from bench.cli import main

    assert main(["doctor"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "runs on cpu" in out and "baseline" in out
    if not CUDA:
        assert "this machine has no usable GPU" in out
        assert main(["doctor", "--gpu"]) == 1
        assert "the self-check needs a GPU" in " ".join(capsys.readouterr().out.split())


def test_the_self_check_runs_its_variants_on_cpu_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench import selfcheck

    monkeypatch.setattr(
        selfcheck,
        "MODEL",
        {
            **selfcheck.MODEL,
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 48,
        },
    )
    monkeypatch.setattr(selfcheck, "SHAPE", selfcheck.Shape(batch_size=2, sequence_length=16))
    monkeypatch.setattr(selfcheck, "VARIANTS", ("fp32", "bf16", "bnb-nf4"))
    checks = selfcheck.run_self_check("cpu", memory=lambda _: FakeCudaMemory(), timed=False)
    by_name = {c.name: c for c in checks}
    assert by_name["bf16 verification"].outcome == "pass"
    assert by_name["bf16 vs fp32"].outcome == "pass", by_name["bf16 vs fp32"].detail
    assert by_name["bnb-nf4"].outcome == "skip"
    assert "bf16 census" not in by_name  # same logical parameter count as fp32


def test_the_memory_and_timing_verdicts() -> None:
    from bench.selfcheck import Variant, memory_check, timing_check

    verdicts = memory_check(
        {
            "fp32": Variant(steady_allocated=100),
            "fp16": Variant(steady_allocated=60),
            "bf16": Variant(steady_allocated=100),
        }
    )
    assert [(c.name, c.outcome) for c in verdicts] == [("fp16 memory", "pass"), ("bf16 memory", "fail")]
    assert timing_check("fp16", 2.0, 1.95).outcome == "pass"
    assert timing_check("fp16", 2.0, 1.5).outcome == "fail"
    assert timing_check("fp16", 2.0, None).outcome == "fail"


# --- on a GPU -------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
def test_the_gpu_self_check_passes() -> None:
    from bench.selfcheck import run_self_check

    failed = [c for c in run_self_check("cuda") if c.outcome == "fail"]
    assert failed == []


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_forward_on_the_gpu_matches_fp32(tiny_run: Any, dtype: torch.dtype) -> None:
    from bench.runtimes.torch import TorchModel

    reference = TorchModel(tiny_run.model().module.to("cuda"), None, "cuda")
    half = TorchModel(tiny_run.model().module.to("cuda", dtype), None, "cuda")
    batch = reference.stage(tiny_run.context().example_batch())
    want = reference.forward(batch)["start_logits"].float()
    got = half.forward(batch)["start_logits"].float()
    require_finite(got, "logits")
    assert torch.nn.functional.cosine_similarity(got.flatten(), want.flatten(), dim=0) > 0.99
