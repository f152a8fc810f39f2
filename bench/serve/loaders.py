"""Loading a saved model with its runtime alone, as a deployment would: a callable from input arrays to
output arrays, set up exactly as the compressing process set up the model it measured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core.serving import ServeRecipe
from bench.serve.protocol import Arrays

RUNTIME_MODULES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino",), "pytorch": ("torch", "transformers")}
"""The module each runtime imports (imported before loading, so its footprint is measured apart)."""


def _unchanged(feed: Arrays) -> Arrays:
    return feed


def _nothing() -> None:
    return None


class Served:
    """A loaded model: its input and output names (none: it takes every array it is given, and names its
    outputs as it returns them), one scoring call (arrays in, arrays out), and for timing: `stage` (inputs
    placed where the model runs, before timing), `timed` (one call on staged inputs) and `synchronize` (wait
    for the device)."""

    def __init__(
        self,
        inputs: list[str],
        outputs: list[str],
        call: Callable[[Arrays], Arrays],
        stage: Callable[[Arrays], Any] = _unchanged,
        timed: Callable[[Any], object] | None = None,
        synchronize: Callable[[], None] = _nothing,
        compiled: bool = False,
    ) -> None:
        self.inputs, self.outputs, self.call = inputs, outputs, call
        self.stage, self.timed, self.synchronize = stage, timed or call, synchronize
        self.compiled = compiled
        """torch.compile compiles it on its first call (the serving process counts graphs built while timed)."""


def load(recipe: ServeRecipe, folder: Path) -> Served:
    """The saved model of `folder`, loaded as `recipe` says."""
    path = folder / recipe.file
    if not path.is_file():
        raise FileNotFoundError(f"the saved model has no {recipe.file} in {folder}")
    if recipe.runtime == "onnxruntime":
        return _onnxruntime(recipe, path)
    if recipe.runtime == "pytorch":
        return _pytorch(recipe, folder)
    return _openvino(recipe, path)


def _onnxruntime(recipe: ServeRecipe, path: Path) -> Served:
    import onnxruntime as ort

    from bench.runtimes.native import session_options

    session = ort.InferenceSession(str(path), session_options(recipe.threads), providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]

    def call(feed: Arrays) -> Arrays:
        return dict(zip(outputs, session.run(None, {n: feed[n] for n in inputs}), strict=True))

    return Served(inputs, outputs, call)


def _openvino(recipe: ServeRecipe, path: Path) -> Served:
    import openvino as ov

    from bench.runtimes.native import openvino_config

    precision = str(recipe.options.get("precision", "f32"))
    hint = str(recipe.options.get("performance_hint", "LATENCY"))
    compiled = ov.Core().compile_model(str(path), "CPU", openvino_config(recipe.threads, precision, hint))
    request = compiled.create_infer_request()
    inputs = [port.get_any_name() for port in compiled.inputs]
    outputs = [port.get_any_name() for port in compiled.outputs]

    def call(feed: Arrays) -> Arrays:
        results = request.infer({n: feed[n] for n in inputs})
        return {name: results[port].copy() for name, port in zip(outputs, compiled.outputs, strict=True)}

    return Served(inputs, outputs, call)


def _pytorch(recipe: ServeRecipe, folder: Path) -> Served:
    """A transformers model from its saved safetensors, in the saved dtype, with the attention kernels and
    threads the compressing process used."""
    import torch
    import transformers

    torch.set_num_threads(recipe.threads)
    torch.set_num_interop_threads(1)
    architecture = str(recipe.options["architecture"])
    cls = getattr(transformers, architecture, None)
    if cls is None:
        raise ValueError(f"transformers has no class {architecture}")
    attention = recipe.options.get("attention")
    device = torch.device(recipe.device)
    kernels = {"attn_implementation": str(attention)} if attention else {}
    dtype = getattr(torch, str(recipe.options["dtype"]))
    if recipe.options.get("dynamic_int8"):
        module = _dynamic_int8(cls, recipe, folder, dtype, kernels)
    elif recipe.options.get("resize_linear"):
        module = _resized(cls, folder, dtype, kernels)
    else:
        module = cls.from_pretrained(folder, dtype=dtype, **kernels)
    module = module.to(device).eval()
    mode = recipe.options.get("compile_mode")
    if mode is not None:  # as the compressing process compiled it; the first call compiles
        dynamic = recipe.options.get("compile_dynamic")
        dynamic = None if dynamic is None else bool(dynamic)
        fullgraph = bool(recipe.options.get("compile_fullgraph"))
        # compiled in this process: a pool of compile workers would still be starting (importing torch) on
        # the other cores while the first slices are timed
        import torch._inductor.config as inductor

        inductor.compile_threads = 1
        module.forward = torch.compile(module.forward, mode=str(mode), dynamic=dynamic, fullgraph=fullgraph)

    def stage(feed: Arrays) -> dict[str, torch.Tensor]:
        return {name: torch.from_numpy(value).to(device) for name, value in feed.items()}

    def timed(staged: dict[str, torch.Tensor]) -> object:
        with torch.inference_mode():
            return module(**staged)

    def call(feed: Arrays) -> Arrays:
        out = timed(stage(feed))
        items = out.items() if hasattr(out, "items") else [("output", out)]
        return {name: value.float().cpu().numpy() for name, value in items if isinstance(value, torch.Tensor)}

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    return Served([], [], call, stage, timed, synchronize, compiled=mode is not None)


def _dynamic_int8(cls: Any, recipe: ServeRecipe, folder: Path, dtype: Any, kernels: dict[str, str]) -> Any:
    """A torch.ao dynamic int8 model from its saved state dict, as a deployment rebuilds one: the architecture
    from its config, the same Linear layers quantized with the same engine and weight scales, then the saved
    weights loaded (strictly: a layer quantized differently fails the load)."""
    import torch
    import transformers

    torch.backends.quantized.engine = str(recipe.options["engine"])
    config = transformers.AutoConfig.from_pretrained(folder)
    module = cls._from_config(config, dtype=dtype, **kernels)
    ao = torch.ao.quantization
    qconfig = ao.per_channel_dynamic_qconfig if recipe.options.get("per_channel") else ao.default_dynamic_qconfig
    layers = str(recipe.options["dynamic_int8"]).split(",")
    module = ao.quantize_dynamic(module, dict.fromkeys(layers, qconfig), dtype=torch.qint8, inplace=True)
    state = torch.load(folder / "model.pt", map_location="cpu", weights_only=False)  # written by this run
    module.load_state_dict(state, strict=True)
    return module


def _resized(cls: Any, folder: Path, dtype: Any, kernels: dict[str, str]) -> Any:
    """A structurally pruned transformers model: the model its config describes (pruned heads included),
    its Linear layers resized to the saved weights' shapes, then every saved tensor copied in, one at a time
    (strictly: a tensor missing, left over or of another shape fails the load)."""
    import torch
    import transformers
    from safetensors import safe_open
    from transformers.modeling_utils import no_init_weights

    from bench.runtimes.torch import resize_linears

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"the saved model has no .safetensors file in {folder}")
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        with safe_open(str(file), framework="pt") as saved:
            shapes |= {key: tuple(saved.get_slice(key).get_shape()) for key in saved.keys()}  # noqa: SIM118
    config = transformers.AutoConfig.from_pretrained(folder)
    with no_init_weights():
        module = cls._from_config(config, dtype=dtype, **kernels)
    resize_linears(module, shapes)
    targets = module.state_dict(keep_vars=True)
    unexpected = sorted(set(shapes) - set(targets))
    if unexpected:
        raise ValueError(f"the saved weights hold {unexpected[0]}, which the rebuilt model does not")
    with torch.no_grad():
        for file in files:
            with safe_open(str(file), framework="pt") as saved:
                for key in saved.keys():  # noqa: SIM118
                    target = targets[key]
                    if tuple(target.shape) != shapes[key]:
                        raise ValueError(f"{key}: saved {shapes[key]}, rebuilt {tuple(target.shape)}")
                    target.copy_(saved.get_tensor(key))
    module.tie_weights()
    loaded = {id(targets[key]) for key in shapes}
    left = [key for key, tensor in module.state_dict(keep_vars=True).items() if id(tensor) not in loaded]
    if left:
        raise ValueError(f"the saved weights do not hold {left[0]}")
    return module
