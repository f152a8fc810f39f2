"""Eager PyTorch models: the runtime every built-in task loads, and the one most compressors act on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bench.core.attention import pattern
from bench.core.model import Batch, ExecutedPrecision, ModelHandle
from bench.core.serving import ServeRecipe

if TYPE_CHECKING:
    import torch

    from bench.core.latency import DeviceTimer

SaveFormat = Literal["safetensors", "torch"]


class TorchModel(ModelHandle):
    """An eager PyTorch module. `save_format` is "safetensors", or "torch" for packed quantized weights
    that safetensors cannot hold."""

    runtime = "pytorch"
    stages_inputs = True

    def __init__(
        self, module: torch.nn.Module, tokenizer: Any, device: str, save_format: SaveFormat = "safetensors"
    ) -> None:
        super().__init__(tokenizer, device, getattr(module, "config", None))
        self.module = module
        self.save_format = save_format

    def device_timer(self) -> DeviceTimer | None:
        if not self.device.is_cuda:
            return None
        from bench.core.latency import CudaEventTimer

        return CudaEventTimer()

    def stage(self, batch: Batch) -> Batch:
        return {k: v.to(self.device) if hasattr(v, "to") else v for k, v in batch.items()}

    def forward(self, batch: Batch) -> Mapping[str, torch.Tensor]:
        import torch

        inputs = self.stage(batch)  # a no-op for staged inputs
        with torch.inference_mode():
            out = self.module(**inputs)
        return dict(out.items()) if hasattr(out, "items") else {"output": out}

    def release(self) -> None:
        """Free the weights' host and device memory (they become storage-less meta tensors): for a model
        being replaced by a new one. The handle cannot run afterwards."""
        self.module.to("meta")

    def rows_independent(self) -> bool:
        """False with dynamically quantized Linear layers (torch.ao, torchao wrappers, bitsandbytes int8),
        whose activation scales or outlier columns span the whole call."""
        from bench.core.census import is_wrapper_tensor

        for sub in self.module.modules():
            kind = f"{type(sub).__module__}.{type(sub).__name__}"
            if "quantized.dynamic" in kind or "Linear8bitLt" in kind:
                return False
            weight = getattr(sub, "weight", None)
            if weight is not None and is_wrapper_tensor(weight):
                return False
        return True

    def synchronize(self) -> None:
        if self.device.is_cuda:
            import torch

            torch.cuda.synchronize(self.device)

    def generate(
        self, batch: Batch, settings: Mapping[str, Any], on_token: Callable[[], None] | None = None
    ) -> torch.Tensor:
        import torch

        from bench.runtimes.hf_generate import hf_generate

        with torch.inference_mode():
            return hf_generate(self.module, batch, settings, on_token, self.device)

    def save(self, directory: Path) -> list[Path]:
        import torch

        directory.mkdir(parents=True, exist_ok=True)
        if self.save_format == "safetensors":
            self.module.save_pretrained(directory, safe_serialization=True)  # type: ignore[operator]
        else:
            torch.save(self.module.state_dict(), directory / "model.pt")
            if self.config is not None:
                self.config.save_pretrained(directory)
        return sorted(p for p in directory.rglob("*") if p.is_file())

    def serve_recipe(self) -> ServeRecipe | str:
        """transformers' rebuild of the saved safetensors, where it rebuilds this very module (the config's
        model, with Linear widths read from the saved weights after structured pruning), compiled again with
        the same torch.compile settings when this one was compiled, as a deployment compiles at start-up."""
        dynamic = dynamic_int8_layers(self.module) if self.save_format != "safetensors" else None
        if self.save_format != "safetensors" and not dynamic:
            return "its quantized modules are saved as a PyTorch state dict that only its compressor can rebuild"
        if getattr(self.config, "attention_type", None) == "block_sparse":
            return "BigBird picks its attention pattern per call, which bench reads back from the module it timed"
        plan = rebuild_plan(self.module)
        if isinstance(plan, str):
            return plan
        if plan.resized and dynamic:
            return "its int8 layers have widths its config does not state, and a torch.ao state dict does not say them"
        dtype = next((p.dtype for p in self.module.parameters() if p.is_floating_point()), None)
        options: dict[str, str | int | float | bool | None] = {
            "architecture": type(self.module).__name__,
            "dtype": str(dtype).removeprefix("torch.") if dtype is not None else "float32",
            "attention": getattr(self.config, "_attn_implementation", None),
        }
        if plan.resized:
            options["resize_linear"] = True
        if dynamic:  # rebuilt as a deployment of a torch.ao state dict is: quantize the same layers, then load
            import torch

            options |= {"dynamic_int8": ",".join(dynamic), "engine": torch.backends.quantized.engine}
            options["per_channel"] = dynamic_int8_per_channel(self.module)
        if self.compilation is not None:
            compiled = self.compilation
            options |= {
                "compile_mode": compiled.mode,
                "compile_dynamic": compiled.dynamic,
                "compile_fullgraph": compiled.fullgraph,
            }
        return ServeRecipe(
            runtime="pytorch", file="config.json", threads=torch_threads(), device=str(self.device), options=options
        )

    def tensors(self) -> Iterator[tuple[str, Any]]:
        from bench.core.census import state_dict_tensors

        yield from state_dict_tensors(self.module)

    def executed_precision(self) -> ExecutedPrecision:
        return linear_precision(self.module)

    def attention_pattern(self) -> str | None:
        """As configured, except where BigBird switched its block-sparse attention off at run time."""
        if self.config is None:
            return None
        switched = any(getattr(sub, "attention_type", None) == "original_full" for sub in self.module.modules())
        return pattern(self.config, block_sparse_switched_off=switched)


def torch_threads() -> int:
    """The intra-op threads this process runs PyTorch with (the run pinned them)."""
    import torch

    return int(torch.get_num_threads())


def dynamic_int8_layers(module: Any) -> list[str] | None:
    """The names of a module's torch.ao dynamically quantized Linear layers, when they are its only quantized
    modules (None otherwise: nothing quantized, or kinds a serving process would not rebuild)."""
    import torch

    dynamic = torch.ao.nn.quantized.dynamic.Linear
    packed = torch.ao.nn.quantized.modules.linear.LinearPackedParams  # each dynamic layer's weights
    names = [name for name, sub in module.named_modules() if type(sub) is dynamic]
    others = [s for s in module.modules() if "quantized" in type(s).__module__ and type(s) not in (dynamic, packed)]
    weights = [p for p in module.parameters() if not p.is_floating_point()]
    return names if names and not others and not weights else None


def dynamic_int8_per_channel(module: Any) -> bool:
    """Whether its dynamic int8 layers hold per-channel weight scales."""
    import torch

    layer = next(sub for sub in module.modules() if type(sub) is torch.ao.nn.quantized.dynamic.Linear)
    return bool(layer.weight().qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric))


def float_shapes(module: Any) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of its state dict, with a dynamic int8 Linear's packed weights as the float
    layer's `weight` and `bias` they quantize."""
    import torch

    shapes: dict[str, tuple[int, ...]] = {}
    packed = set()
    for name, sub in module.named_modules():
        if type(sub) is torch.ao.nn.quantized.dynamic.Linear:
            packed.add(name)
            shapes[f"{name}.weight"] = tuple(sub.weight().shape)
            if sub.bias() is not None:
                shapes[f"{name}.bias"] = tuple(sub.bias().shape)
    for key, tensor in module.state_dict().items():
        if not any(key.startswith(f"{name}.") for name in packed) and hasattr(tensor, "shape"):
            shapes[key] = tuple(tensor.shape)
    return shapes


@dataclass(frozen=True)
class Rebuild:
    """How a serving process rebuilds a transformers module: the model its config describes, with the Linear
    layers named in `resized` given the widths of the saved weights (structured pruning's FFN widths)."""

    resized: tuple[str, ...] = ()


def rebuild_plan(module: Any) -> Rebuild | str:
    """How the model its transformers config describes becomes `module` again from its saved weights, or why
    it cannot: every tensor must have its saved shape, which only Linear layers may change (they are resized),
    and every submodule's own settings (head counts, widths...) must then match."""
    import torch
    import transformers

    if getattr(transformers, type(module).__name__, None) is not type(module) or module.config is None:
        return f"{type(module).__name__} is not a transformers class that from_pretrained can load"
    try:
        with torch.device("meta"):  # shapes without memory
            fresh = type(module)(module.config)
    except (NotImplementedError, RuntimeError):  # pruned heads select indices, which meta tensors cannot
        from transformers.modeling_utils import no_init_weights

        with no_init_weights():
            fresh = type(module)(module.config)
    actual = float_shapes(module)
    resized = resize_linears(fresh, actual)
    expected = {name: tuple(t.shape) for name, t in fresh.state_dict().items()}
    if expected != actual:
        changed = sorted(set(expected.items()) ^ set(actual.items()))
        where = changed[0][0] if changed else "?"
        return (
            "its saved weights are not the model its transformers config describes (e.g. "
            f"{where}): from_pretrained cannot rebuild it"
        )
    theirs = module_settings(fresh)
    for name, mine in module_settings(module).items():
        if name in theirs and theirs[name][0] is mine[0] and theirs[name] != mine:
            return (
                f"its module {name or type(module).__name__} has settings its transformers config does not "
                "describe: a serving process cannot rebuild it"
            )
    return Rebuild(tuple(resized))


def resize_linears(module: Any, shapes: Mapping[str, tuple[int, ...]]) -> list[str]:
    """Replace each Linear layer of `module` whose weight has another shape in `shapes` by an uninitialized
    Linear of that shape (same dtype, device and bias); the names of those replaced."""
    import torch

    resized = []
    for name, layer in list(module.named_modules()):
        shape = shapes.get(f"{name}.weight")
        if not isinstance(layer, torch.nn.Linear) or shape is None or len(shape) != 2:
            continue
        if shape == (layer.out_features, layer.in_features):
            continue
        weight = layer.weight
        with torch.device(weight.device):
            new = torch.nn.Linear(shape[1], shape[0], bias=layer.bias is not None, dtype=weight.dtype)
        parent, _, leaf = name.rpartition(".")
        setattr(module.get_submodule(parent), leaf, new)
        resized.append(name)
    return resized


PLAIN = (bool, int, float, str)


def module_settings(module: Any) -> dict[str, tuple[type, dict[str, object]]]:
    """Each submodule's class and own plain attributes (head counts, widths, pruned heads), by module name:
    what shapes its computation besides its tensors (a quantized layer compares with its float original by
    its weights' shapes alone)."""
    settings: dict[str, tuple[type, dict[str, object]]] = {}
    for name, sub in module.named_modules():
        own: dict[str, object] = {}
        for key, value in vars(sub).items():
            if key.startswith("_") or key == "training":
                continue
            if isinstance(value, set | frozenset):
                own[key] = sorted(value)
            elif isinstance(value, PLAIN) or (isinstance(value, tuple) and all(isinstance(v, PLAIN) for v in value)):
                own[key] = value
        settings[name] = (type(sub), own)
    return settings


DTYPES = {"float32": "f32", "bfloat16": "bf16", "float16": "f16", "int8": "int8", "qint8": "int8", "uint8": "int8"}


def _linear_kind(module: Any) -> str | None:
    """The precision a linear layer computes in, from its kernel's class and its weight; None when the
    module is not a linear layer."""
    kind = type(module)
    name, path = kind.__name__, kind.__module__
    if "quantized" in path and "Linear" in name:  # torch.ao dynamic/static int8 kernels
        return "int8"
    if name == "Linear8bitLt":
        return "int8"
    if name in ("Linear4bit", "LinearNF4", "LinearFP4"):
        return "int4"
    if name not in ("Linear", "Conv1D", "NonDynamicallyQuantizableLinear"):
        return None
    weight = getattr(module, "weight", None)
    if weight is None:
        return None
    kinds = [k.__name__ for k in type(weight).__mro__]
    if "TorchAOBaseTensor" in kinds or any("Quantized" in k or "Affine" in k for k in kinds):  # torchao weights
        return "int4" if "Int4" in kinds[0] else "int8"
    return DTYPES.get(str(weight.dtype).removeprefix("torch."), str(weight.dtype).removeprefix("torch."))


def linear_precision(module: Any) -> ExecutedPrecision:
    """Each linear layer's kernel precision (eager PyTorch runs a Linear in its weight's dtype, and a
    quantized Linear in int8)."""
    counts: Counter[str] = Counter()
    for sub in module.modules():
        kind = _linear_kind(sub)
        if kind is not None:
            counts[kind] += 1
    return ExecutedPrecision(ops=dict(counts), source="torch linear layers (kernel class and weight dtype)")


def linear_layers(module: Any) -> dict[str, str]:
    """Every linear layer by module name: its class and the dtype its weight holds, e.g. `Linear4bit nf4`,
    `Linear8bitLt int8`, `Linear float16`."""
    found: dict[str, str] = {}
    for name, sub in module.named_modules():
        if _linear_kind(sub) is None:
            continue
        weight = sub.weight
        state = getattr(weight, "quant_state", None)
        dtype = str(state.quant_type) if state is not None else str(weight.dtype).removeprefix("torch.")
        found[name] = f"{type(sub).__name__} {dtype}"
    return found


def fp32_module_names(module: Any, dtype_name: str) -> list[str]:
    """The names a model asks to keep in float32 when it runs in `dtype_name`: `_keep_in_fp32_modules`
    in float16, `_keep_in_fp32_modules_strict` in float16 and bfloat16."""
    keep = set(getattr(module, "_keep_in_fp32_modules_strict", None) or [])
    if dtype_name == "float16":
        keep |= set(getattr(module, "_keep_in_fp32_modules", None) or [])
    return sorted(keep)


def kept_in_fp32(module: Any, dtype_name: str) -> list[str]:
    """The modules transformers keeps in float32 when loading the model in `dtype_name` (those whose name
    has one of `fp32_module_names` as a whole component, as transformers matches them)."""
    keep = set(fp32_module_names(module, dtype_name))
    if not keep:
        return []
    return [name for name, _ in module.named_modules() if name and keep & set(name.split("."))]


def eager(model: ModelHandle, who: str) -> TorchModel:
    """`model` as an eager PyTorch model, or a TypeError naming the compressor that needs one
    (for example a chain that puts a PyTorch-only step after an ONNX one)."""
    if not isinstance(model, TorchModel):
        raise TypeError(f"{who} needs an eager PyTorch model, got a {model.runtime} one")
    return model
