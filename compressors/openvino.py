"""OpenVINO rows: the model converted with `openvino.convert_model` and compiled for the CPU at a pinned
inference precision (`openvino` f32, `openvino-bf16`), and NNCF's post-training int8 quantization of it
(`nncf-int8`), calibrated on the task's training split.

OpenVINO runs an "fp32" model in bf16 on CPUs with AVX512-BF16 or AMX unless told not to; every row here
pins the precision hint, and bench reads the executed precision back from the compiled graph.
Encoder models only: encoder-decoder generation needs optimum-intel's stateful export (see docs/plugins.md).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveFloat, PositiveInt

from bench.core.census import Census
from bench.core.compressor import LOADED_TRAITS, CompressContext, Compressor, Trait, Verification
from bench.core.devices import Device
from bench.core.errors import UnsupportedHere
from bench.core.model import ModelHandle
from bench.core.settings import Choice, Facts, PluginConfig
from bench.runtimes.torch import TorchModel, eager
from compressors.patterns import Pattern

BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


class OpenVinoConfig(PluginConfig):
    """Settings of openvino and openvino-bf16."""

    performance_hint: Literal["LATENCY", "THROUGHPUT"] = "LATENCY"
    """OpenVINO's performance hint (LATENCY: one stream, as bench times one request at a time)."""


class NncfInt8Config(OpenVinoConfig):
    """Settings of nncf-int8."""

    calibration_samples: PositiveInt = 128
    """Training-split examples that NNCF collects statistics on (its subset_size); never evaluation ones."""
    preset: Literal["mixed", "performance"] = "mixed"
    """NNCF's preset: mixed (symmetric weights, asymmetric activations) or performance (symmetric both)."""
    fast_bias_correction: bool = True
    smooth_quant_alpha: float | None = Field(None, ge=0.0, le=1.0)
    """SmoothQuant's alpha; None keeps NNCF's default for transformers."""
    accuracy_control: bool = False
    """Use `nncf.quantize_with_accuracy_control`: layers that cost the most accuracy are returned to float
    until the drop on validation examples from the training split is within `max_drop`."""
    max_drop: PositiveFloat = 1.0
    """With accuracy_control: the largest drop of the task's primary metric allowed, in its points."""
    validation_samples: PositiveInt = 200
    """With accuracy_control: training-split examples after the calibration ones (never evaluation ones)."""
    skip: list[Pattern] = []
    """Regular expressions (re.search) over OpenVINO operation names kept in float (NNCF's ignored scope),
    e.g. 'layer\\.5[./]' for the last block of a BERT (names carry the PyTorch module path)."""


def require_openvino() -> None:
    """Raise UnsupportedHere (a skipped run) when the `openvino` extra is not installed."""
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        raise UnsupportedHere(f"OpenVINO is not installed ({exc}); pip install 'bench[openvino]'") from None


def _encoder_only(model: TorchModel) -> None:
    if getattr(model.config, "is_encoder_decoder", False):
        raise UnsupportedHere(
            "OpenVINO rows run encoder models: generation needs optimum-intel's stateful seq2seq export, "
            "which cannot be installed beside optimum-onnx"
        )


class _ToOpenVino(Compressor):
    """Convert the eager model and compile it at `hint` precision."""

    devices = frozenset({"cpu"})
    requires = frozenset({Trait.PYTORCH, Trait.FLOAT_LINEAR})
    hint: ClassVar[str] = "f32"
    config: OpenVinoConfig

    def removes(self) -> frozenset[Trait]:
        return LOADED_TRAITS  # an OpenVINO compiled model from here on

    def convert(self, model: ModelHandle, ctx: CompressContext) -> tuple[TorchModel, Any]:
        """The eager model and its OpenVINO conversion (timed in the facts)."""
        from bench.runtimes.openvino import convert

        require_openvino()
        torch_model = eager(model, self.name)
        _encoder_only(torch_model)
        start = time.perf_counter()
        converted = convert(torch_model, ctx.example_batch())
        ctx.facts["convert_s"] = round(time.perf_counter() - start, 3)
        return torch_model, converted

    def compiled(self, converted: Any, source: TorchModel, ctx: CompressContext) -> ModelHandle:
        """Compile for the CPU (timed in the facts)."""
        from bench.runtimes.openvino import OpenVinoModel

        start = time.perf_counter()
        out = OpenVinoModel(
            converted, source.tokenizer, ctx.threads, self.hint, source.config, self.config.performance_hint
        )
        ctx.facts["compile_s"] = round(time.perf_counter() - start, 3)
        ctx.facts["inference_precision_hint"] = self.hint
        return out

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        source, converted = self.convert(model, ctx)
        return self.compiled(converted, source, ctx)

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        executed = after.executed_precision()
        if after.runtime != "openvino" or executed is None:
            return Verification(passed=False, summary=f"no OpenVINO model: a {after.runtime} one")
        checks: Facts = {"executed": executed.ops, "source": executed.source}
        problem = executed.contradiction(self.precision) if executed.total else "no compute layer read back"
        if problem is not None:
            return Verification(passed=False, summary=problem, checks=checks)
        return Verification(passed=True, summary=f"OpenVINO CPU, executes {executed.label}", checks=checks)


class OpenVino(_ToOpenVino):
    """OpenVINO at fp32, the precision hint pinned (the CPU plugin would otherwise pick bf16 where it can)."""

    name = "openvino"
    precision = "f32"
    description = "OpenVINO CPU at fp32 (precision hint pinned to f32; runtime change, no compression)"
    Config = OpenVinoConfig


class OpenVinoBf16(_ToOpenVino):
    """OpenVINO with bf16 inference, on CPUs that compute in bf16 natively."""

    name = "openvino-bf16"
    precision = "bf16"
    description = "OpenVINO CPU with bf16 inference precision (CPUs with AVX512-BF16 or AMX)"
    Config = OpenVinoConfig
    hint = "bf16"

    def unsupported_reason(self, device: Device, cpu_flags: frozenset[str]) -> str | None:
        if device == "cpu" and not BF16_FLAGS & cpu_flags:
            return "openvino-bf16 needs a CPU with AVX512-BF16 or AMX (OpenVINO would run f32 or emulate bf16)"
        return super().unsupported_reason(device, cpu_flags)


class NncfInt8(_ToOpenVino):
    """NNCF post-training int8 quantization of the OpenVINO model, calibrated on the training split; the
    layers it leaves in float run in f32 (the hint is pinned)."""

    name = "nncf-int8"
    precision = "int8"
    description = "NNCF post-training int8 (transformer preset) on OpenVINO, calibrated on the training split"
    Config = NncfInt8Config
    needs_training_split = True
    config: NncfInt8Config
    search_space = {
        "preset": Choice(values=("mixed", "performance")),
        "calibration_samples": Choice(values=(64, 128, 256)),
        "fast_bias_correction": Choice(values=(True, False)),
        "smooth_quant_alpha": Choice(values=(None, 0.5, 0.95)),
    }
    layer_setting = "skip"

    def compress(self, model: ModelHandle, ctx: CompressContext) -> ModelHandle:
        import nncf

        source, converted = self.convert(model, ctx)
        calibration = ctx.calibration_data(self.config.calibration_samples)
        rows = calibration.single_inputs()
        ctx.facts["calibration"] = {
            "split": ctx.calibration_split,
            "examples": len(calibration.example_ids),
            "inputs": len(rows),
            "example_ids": calibration.example_ids,
            "preset": self.config.preset,
        }
        options: dict[str, Any] = {}
        if self.config.smooth_quant_alpha is not None:
            options["advanced_parameters"] = nncf.AdvancedQuantizationParameters(
                smooth_quant_alphas=nncf.AdvancedSmoothQuantParameters(matmul=self.config.smooth_quant_alpha)
            )
        presets = {"mixed": nncf.QuantizationPreset.MIXED, "performance": nncf.QuantizationPreset.PERFORMANCE}
        options.update(
            preset=presets[self.config.preset],
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(rows),
            fast_bias_correction=self.config.fast_bias_correction,
        )
        if self.config.skip:  # NNCF anchors its patterns at the start of a name (re.match)
            patterns = [f".*(?:{p})" for p in self.config.skip]
            options["ignored_scope"] = nncf.IgnoredScope(patterns=patterns, validate=False)
            ctx.facts["float_operations"] = self.config.skip
        start = time.perf_counter()
        if self.config.accuracy_control:
            quantized = self._with_accuracy_control(converted, rows, source, ctx, options)
        else:
            quantized = nncf.quantize(converted, nncf.Dataset(rows), **options)
        ctx.facts["quantize_s"] = round(time.perf_counter() - start, 3)
        return self.compiled(quantized, source, ctx)

    def _with_accuracy_control(
        self, converted: Any, rows: list[dict[str, Any]], source: TorchModel, ctx: CompressContext, options: Any
    ) -> Any:
        """NNCF's own accuracy-aware quantization, validated with the task's metric on training examples that
        follow the calibration ones."""
        import nncf

        from bench.runtimes.openvino import CompiledOpenVino

        cfg = self.config
        examples = ctx.training_examples(cfg.calibration_samples + cfg.validation_samples)
        validation = examples[cfg.calibration_samples :]
        if not validation:
            raise UnsupportedHere("nncf-int8: the training split has no examples left for accuracy control")
        metric = ctx.task.primary_metric

        def validate(compiled: Any, items: Any) -> float:
            chosen = list(items)
            features = ctx.task.encode(source.tokenizer, chosen, ctx.shape.sequence_length)
            handle = CompiledOpenVino(compiled, source.tokenizer, source.config)
            batch_size = ctx.task.evaluation_batch_size(ctx.shape, handle)
            return float(ctx.task.evaluate(handle, chosen, features, batch_size).metrics[metric].value)

        quantized = nncf.quantize_with_accuracy_control(
            converted,
            nncf.Dataset(rows),
            nncf.Dataset(validation),
            validation_fn=validate,
            max_drop=cfg.max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            **options,
        )
        ctx.facts["accuracy_control"] = {
            "metric": metric,
            "max_drop": cfg.max_drop,
            "validation_examples": len(validation),
            "validation_ids": [str(e.get("id")) for e in validation],
        }
        return quantized

    def verify(self, before: Census, after: ModelHandle) -> Verification:
        ops = after.operators() or {}
        executed = after.executed_precision()
        if after.runtime != "openvino" or executed is None:
            return Verification(passed=False, summary=f"no OpenVINO model: a {after.runtime} one")
        checks = {"fake_quantize": ops.get("FakeQuantize", 0), "executed": executed.ops, "source": executed.source}
        if not ops.get("FakeQuantize"):
            summary = "no FakeQuantize operations: NNCF quantized nothing"
            return Verification(passed=False, summary=summary, checks=checks)
        if not executed.ops.get("int8"):
            return Verification(
                passed=False, summary=f"FakeQuantize in the graph, but the CPU executes {executed.label}", checks=checks
            )
        share = executed.share("int8")
        summary = f"{ops['FakeQuantize']} FakeQuantize; {100 * share:.0f}% of compute layers execute int8"
        return Verification(passed=True, summary=summary, checks=checks)
