"""Encoder-decoder models in ONNX Runtime: export with optimum (encoder, decoder, and decoder with past
key values), quantize the graphs one by one, merge the two decoders into one file with shared weights,
and generate with optimum's ORTModelForSeq2SeqLM (transformers' generate, with the KV cache).

Imported only by the compressors that produce ONNX models (extra `onnx`).
"""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.core.model import Batch, ExecutedPrecision, ModelHandle, Tokenizer, TransformersConfig
from bench.runtimes.onnx import OrtHandle, copy_model_files, executed_operators, initializers, operator_census
from bench.runtimes.torch import TorchModel

ENCODER = "encoder_model.onnx"
DECODER = "decoder_model.onnx"
DECODER_WITH_PAST = "decoder_with_past_model.onnx"
MERGED = "decoder_model_merged.onnx"
GRAPHS = (ENCODER, DECODER, DECODER_WITH_PAST)
"""The graphs of an unmerged export, each quantized on its own."""


def is_seq2seq(model: ModelHandle) -> bool:
    """Whether the model is an encoder-decoder (generation) model."""
    return bool(getattr(model.config, "is_encoder_decoder", False))


def export_seq2seq(model: TorchModel, folder: Path) -> Path:
    """Export encoder, decoder and decoder-with-past graphs (fp32) and the tokenizer into `folder`."""
    import logging

    from optimum.exporters.onnx import onnx_export_from_model

    folder.mkdir(parents=True, exist_ok=True)
    module = model.module.to("cpu").eval()
    quiet = logging.getLogger("optimum")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_export_from_model(
                module, folder, task="text2text-generation-with-past", do_validation=False, no_post_process=True
            )
    finally:
        quiet.setLevel(level)
    model.tokenizer.save_pretrained(folder)
    missing = [g for g in GRAPHS if not (folder / g).is_file()]
    if missing:
        raise RuntimeError(f"the ONNX export wrote no {', '.join(missing)}")
    return folder


def transform_graphs(source: Path, target: Path, transform: Callable[[Path, Path], None]) -> Path:
    """Apply `transform(src_graph, dst_graph)` to each graph of an unmerged export; copy the other files."""
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file() and item.suffix != ".onnx" and not item.name.endswith(".onnx.data"):
            shutil.copyfile(item, target / item.name)
    for graph in GRAPHS:
        transform(source / graph, target / graph)
    return target


def merge_decoders(folder: Path) -> Path:
    """Merge the decoder and decoder-with-past graphs into one file whose identical weights are stored
    once (as optimum ships seq2seq models); remove the two."""
    from optimum.onnx import merge_decoders as merge

    merge(folder / DECODER, folder / DECODER_WITH_PAST, save_path=folder / MERGED, strict=False)
    for name in (DECODER, DECODER_WITH_PAST):
        for path in folder.glob(f"{name}*"):
            path.unlink()
    return folder


def graph_files(folder: Path) -> list[Path]:
    """The ONNX graphs of a folder, with their external data files."""
    return sorted(p for p in folder.iterdir() if p.name.endswith((".onnx", ".onnx.data", ".onnx_data")))


class _RecordingSession:
    """Stands in for an InferenceSession: keeps a copy of every input it is run with."""

    def __init__(self, session: Any, sink: list[dict[str, Any]]) -> None:
        self._session = session
        self._sink = sink

    def run(self, output_names: Any, feed: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        self._sink.append({k: v.copy() for k, v in feed.items()})
        return self._session.run(output_names, feed, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def record_session_inputs(model: OrtSeq2SeqModel, work: Callable[[], object]) -> dict[str, list[dict[str, Any]]]:
    """The inputs each part's session receives while `work()` runs (for static calibration)."""
    parts = model.parts()
    feeds: dict[str, list[dict[str, Any]]] = {name: [] for name in parts}
    originals = {name: part.session for name, part in parts.items()}
    try:
        for name, part in parts.items():
            part.session = _RecordingSession(part.session, feeds[name])
        work()
    finally:
        for name, part in parts.items():
            part.session = originals[name]
    return feeds


class OrtSeq2SeqModel(OrtHandle):
    """An exported encoder-decoder run by ONNX Runtime through optimum's ORTModelForSeq2SeqLM."""

    def __init__(
        self, folder: Path, tokenizer: Tokenizer, device: str, threads: int, config: TransformersConfig | None = None
    ) -> None:
        from optimum.onnxruntime import ORTModelForSeq2SeqLM

        super().__init__(tokenizer, device, threads, config)
        self.folder = folder
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = ORTModelForSeq2SeqLM.from_pretrained(
                folder,
                session_options=self.options,
                provider=self.provider,
                provider_options=self.provider_options,
                use_io_binding=False,
            )
        if self.config is None:
            self.config = self.model.config

    def parts(self) -> dict[str, Any]:
        """optimum's parts by name: encoder, decoder (and decoder_with_past when unmerged)."""
        parts = {"encoder": self.model.encoder, "decoder": self.model.decoder}
        past = getattr(self.model, "decoder_with_past", None)
        if past is not None:
            parts["decoder_with_past"] = past
        return parts

    def forward(self, batch: Batch) -> Mapping[str, Any]:
        import torch

        inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "decoder_input_ids") if k in batch}
        if "decoder_input_ids" not in inputs:
            start = int(self.model.config.decoder_start_token_id)
            inputs["decoder_input_ids"] = torch.full((batch["input_ids"].shape[0], 1), start, dtype=torch.long)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.model(**inputs, use_cache=False)
        return {"logits": out.logits}

    def generate(self, batch: Batch, settings: Mapping[str, Any], on_token: Callable[[], None] | None = None) -> Any:
        from bench.runtimes.hf_generate import hf_generate

        return hf_generate(self.model, batch, settings, on_token, "cpu")

    def save(self, directory: Path) -> list[Path]:
        return copy_model_files(graph_files(self.folder), directory, self.config)

    def graphs(self) -> list[Path]:
        """The ONNX graph files (encoder, merged decoder)."""
        return [p for p in graph_files(self.folder) if p.suffix == ".onnx"]

    def executed_precision(self) -> ExecutedPrecision:
        return executed_operators(self.graphs(), self.threads)

    def tensors(self) -> Iterator[tuple[str, Any]]:
        for path in self.graphs():
            yield from initializers(path, prefix=f"{path.stem}/")

    def operators(self) -> dict[str, int]:
        """Operator census over every graph of the model."""
        total: Counter[str] = Counter()
        for path in self.graphs():
            total.update(operator_census(path))
        return dict(sorted(total.items()))
