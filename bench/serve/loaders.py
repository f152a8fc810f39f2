"""Loading a saved model with its runtime alone, as a deployment would: a callable from input arrays to
output arrays, set up exactly as the compressing process set up the model it measured."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.core.serving import ServeRecipe
from bench.serve.protocol import Arrays

RUNTIME_MODULES = {"onnxruntime": "onnxruntime", "openvino": "openvino"}
"""The module each runtime imports (imported before loading, so its footprint is measured apart)."""


class Served:
    """A loaded model: its input and output names and one call."""

    def __init__(self, inputs: list[str], outputs: list[str], call: Callable[[Arrays], Arrays]) -> None:
        self.inputs, self.outputs, self.call = inputs, outputs, call


def load(recipe: ServeRecipe, folder: Path) -> Served:
    """The saved model of `folder`, loaded as `recipe` says."""
    path = folder / recipe.file
    if not path.is_file():
        raise FileNotFoundError(f"the saved model has no {recipe.file} in {folder}")
    if recipe.runtime == "onnxruntime":
        return _onnxruntime(recipe, path)
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
