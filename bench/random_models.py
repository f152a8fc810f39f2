"""Models with real architectures' shapes and random weights, for machines without a model hub.

A shipped config (bench/architectures/NAME.json, copied from the real model's config.json) gives the
shapes; the weights are drawn from the architecture's own initializer under a fixed seed; a tokenizer
of the architecture's kind (SentencePiece-style BPE for Marian and T5, byte-level BPE for BART) is
trained on local text at the real vocabulary size, with the special tokens at the real ids.

Accuracy of such a model means nothing; latency, memory, size and agreement with the uncompressed
model still do. Records of runs on them say `weights: random`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core.architectures import architecture_config
from bench.core.errors import ConfigError, DataNotFoundError

BUILDER_VERSION = 1
MIN_TRAINED_VOCAB = 64


@dataclass(frozen=True)
class TokenizerRecipe:
    """How an architecture's tokenizer is laid out: special tokens before and after the trained ones."""

    byte_level: bool
    leading: tuple[str, ...]
    trailing: tuple[str, ...]
    template: str
    pair: str
    """The template of a pair of texts (QA: question, context)."""
    unused_rows: int = 0
    """Embedding rows beyond the tokenizer (t5-small has 32,128 rows for 32,100 tokens)."""
    roles: dict[str, str] = field(default_factory=dict)
    decoder_start: str = "eos_token"
    """The special token that starts decoding: pad for Marian and T5, eos for BART."""


# config key -> the tokenizer role whose id it holds
CONFIG_TOKEN_ROLES = {
    "pad_token_id": "pad_token",
    "eos_token_id": "eos_token",
    "bos_token_id": "bos_token",
    "forced_eos_token_id": "eos_token",
    "forced_bos_token_id": "bos_token",
    "sep_token_id": "sep_token",
}
BART_ROLES = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}


def recipe_for(model_type: str, vocab_size: int) -> TokenizerRecipe:
    """The tokenizer layout of a model type (marian, t5, bart and led, longformer, bigbird_pegasus, big_bird)."""
    if model_type == "marian":
        return TokenizerRecipe(
            False,
            ("</s>", "<unk>"),
            ("<pad>",),
            "$A </s>",
            "$A </s> $B </s>",
            roles={"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
            decoder_start="pad_token",
        )
    if model_type == "t5":
        big = vocab_size > 1000
        extras = tuple(f"<extra_id_{i}>" for i in range(100)) if big else ()
        return TokenizerRecipe(
            False,
            ("<pad>", "</s>", "<unk>"),
            extras,
            "$A </s>",
            "$A </s> $B </s>",
            unused_rows=28 if big else 0,
            roles={"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
            decoder_start="pad_token",
        )
    if model_type in ("bart", "mbart", "led"):
        leading = ("<s>", "<pad>", "</s>", "<unk>")
        return TokenizerRecipe(True, leading, ("<mask>",), "<s> $A </s>", "<s> $A </s> $B </s>", roles=BART_ROLES)
    if model_type == "longformer":  # RoBERTa's layout: a pair is <s> A </s></s> B </s> (three separators)
        leading = ("<s>", "<pad>", "</s>", "<unk>")
        roles = {**BART_ROLES, "sep_token": "</s>", "cls_token": "<s>"}
        return TokenizerRecipe(True, leading, ("<mask>",), "<s> $A </s>", "<s> $A </s> </s> $B </s>", roles=roles)
    if model_type == "bigbird_pegasus":  # Pegasus's layout: pad, eos, then the sentence-mask token
        return TokenizerRecipe(
            False,
            ("<pad>", "</s>", "<mask_1>", "<unk>"),
            (),
            "$A </s>",
            "$A $B </s>",
            roles={"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask_1>"},
            decoder_start="pad_token",
        )
    if model_type == "big_bird":
        return TokenizerRecipe(
            False,
            ("<pad>", "<s>", "</s>", "<unk>", "[CLS]", "[SEP]", "[MASK]"),
            (),
            "[CLS] $A [SEP]",
            "[CLS] $A [SEP] $B [SEP]",
            roles={
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "pad_token": "<pad>",
                "sep_token": "[SEP]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            },
            decoder_start="pad_token",
        )
    known = "marian, t5, bart, led, longformer, bigbird_pegasus, big_bird"
    raise ConfigError(f"no tokenizer recipe for model type '{model_type}' (known: {known})")


def corpus_files(paths: Sequence[str]) -> list[Path]:
    """Text files named directly or found in named folders, sorted."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")))
        elif path.is_file():
            files.append(path)
        else:
            raise DataNotFoundError(f"tokenizer corpus '{name}' not found")
    return files


def _strings(value: object) -> Iterator[str]:
    """Every string inside a parsed JSON document, except `id` fields."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            if key != "id":
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def read_texts(files: Sequence[Path]) -> Iterator[str]:
    """Training text: every string of JSON and JSON lines files (ids excepted), every line of other files."""
    for path in files:
        if path.suffix == ".json":
            yield from _strings(json.loads(path.read_text(encoding="utf-8", errors="replace")))
            continue
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if path.suffix == ".jsonl" and line.strip():
                    row = json.loads(line)
                    yield from (v for k, v in row.items() if isinstance(v, str) and k != "id")
                elif line.strip():
                    yield line.rstrip("\n")


def train_tokenizer(texts: Sequence[str], recipe: TokenizerRecipe, vocab_size: int) -> Any:
    """A fast tokenizer with `vocab_size` tokens (fewer when the text cannot support so many)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    target = vocab_size - recipe.unused_rows - len(recipe.trailing)
    if target < MIN_TRAINED_VOCAB:
        raise ConfigError(f"vocab_size {vocab_size} leaves too few tokens to train")
    tok = Tokenizer(models.BPE(unk_token=None if recipe.byte_level else "<unk>"))
    if recipe.byte_level:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.normalizer = normalizers.NFKC()
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet = []
    trainer = trainers.BpeTrainer(
        vocab_size=target, special_tokens=list(recipe.leading), initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens(list(recipe.trailing))
    used = recipe.template.split() + recipe.pair.split()
    specials = [(t, tok.token_to_id(t)) for t in recipe.leading + recipe.trailing if t in used]
    tok.post_processor = processors.TemplateProcessing(
        single=recipe.template, pair=_pair_template(recipe.pair), special_tokens=specials
    )
    extra = list(recipe.trailing) if recipe.trailing and recipe.trailing[0].startswith("<extra_id") else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        model_input_names=["input_ids", "attention_mask"],
        additional_special_tokens=extra,
        **recipe.roles,
    )


def _pair_template(template: str) -> str:
    """A pair template with the second text's pieces in sequence 1 (`$B:1`, `[SEP]:1`), so that a fast
    tokenizer's `sequence_ids` tells question from context."""
    pieces = template.split()
    second = pieces.index("$B")
    return " ".join(piece if i < second else f"{piece}:1" for i, piece in enumerate(pieces))


def _fingerprint(files: Sequence[Path]) -> list[tuple[str, int, int]]:
    return [(str(p.resolve()), p.stat().st_size, int(p.stat().st_mtime)) for p in files]


def build_key(config: dict[str, Any], files: Sequence[Path], seed: int) -> str:
    """Hash of everything that determines a built model."""
    payload = {"config": config, "corpus": _fingerprint(files), "seed": seed, "builder": BUILDER_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def auto_class(config: dict[str, Any]) -> Any:
    """The transformers auto class of a shipped config: a question-answering head, or a sequence-to-sequence
    model."""
    import transformers

    heads = config.get("architectures") or []
    if any(str(h).endswith("ForQuestionAnswering") for h in heads):
        return transformers.AutoModelForQuestionAnswering
    if config.get("is_encoder_decoder"):
        return transformers.AutoModelForSeq2SeqLM
    raise ConfigError(f"architecture {heads or config.get('model_type')}: neither a QA head nor an encoder-decoder")


def build(name: str, config: dict[str, Any], files: Sequence[Path], seed: int, folder: Path) -> dict[str, Any]:
    """Train the tokenizer and initialize the model into `folder`; return the build facts."""
    import torch
    from transformers import AutoConfig

    texts = list(read_texts(files))
    if not texts:
        raise DataNotFoundError("the tokenizer corpus holds no text")
    vocab_size = int(config["vocab_size"])
    recipe = recipe_for(str(config["model_type"]), vocab_size)
    tokenizer = train_tokenizer(texts, recipe, vocab_size)
    settings = dict(config)
    # the special tokens' ids come from the tokenizer (equal to the real ones when the corpus is large
    # enough to train the full vocabulary); the embedding keeps the real number of rows
    roles = {**CONFIG_TOKEN_ROLES, "decoder_start_token_id": recipe.decoder_start}
    for key, role in roles.items():
        if key in settings:
            settings[key] = getattr(tokenizer, f"{role}_id")
    model_type = settings.pop("model_type")
    hf_config = AutoConfig.for_model(model_type, **settings)
    torch.manual_seed(seed)
    model = auto_class(config).from_config(hf_config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    facts = {
        "architecture": name,
        "weights": "random",
        "seed": seed,
        "model_type": model_type,
        "parameters": sum(p.numel() for p in model.parameters()),
        "vocab_size": vocab_size,
        "tokenizer_vocab": len(tokenizer),
        "tokenizer_kind": "byte-level BPE" if recipe.byte_level else "SentencePiece-style BPE (Metaspace)",
        "corpus_files": [str(p) for p in files],
        "corpus_texts": len(texts),
    }
    (folder / "build.json").write_text(json.dumps(facts, indent=2), encoding="utf-8")
    return facts


def materialize(
    name: str, corpus: Sequence[str], seed: int, cache: Path, overrides: dict[str, Any] | None = None
) -> tuple[Path, dict[str, Any]]:
    """The folder of architecture `name` with random weights (built once, then cached), and its facts."""
    config = {**architecture_config(name), **(overrides or {})}
    files = corpus_files(corpus)
    folder = cache / "models" / f"{name}-{build_key(config, files, seed)}"
    facts_file = folder / "build.json"
    if facts_file.is_file():
        return folder, {**json.loads(facts_file.read_text(encoding="utf-8")), "cached": True}
    partial = folder.with_name(folder.name + ".partial")
    facts = build(name, config, files, seed, partial)
    if folder.exists():  # built meanwhile by another process
        return folder, {**facts, "cached": True}
    partial.rename(folder)
    return folder, {**facts, "cached": False}
