"""Where models and datasets come from: local paths, a data directory of known layouts, or the hub.

The data directory is chosen by, in order: the --data-dir option, $BENCH_DATA_DIR, the suite's
`data_dir` key (relative to the suite file). Dataset names map to files in it through CATALOG.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bench.core.errors import DataNotFoundError
from bench.core.sources import Source

ENV_VAR = "BENCH_DATA_DIR"

# dataset name -> split -> path inside the data directory.
CATALOG: dict[str, dict[str, str]] = {
    "squad": {
        "validation": "squad/dev-v1.1.json",
        "dev": "squad/dev-v1.1.json",
        "train": "squad/train-subset-v1.1.json",
    },
    # Translation datasets are named by their source-language file; the reference file lies beside it.
    # Only test sets are available offline: the `train` split of one direction is the other direction's
    # test set reversed (other documents, so never the evaluation sentences), used for calibration and
    # as distillation inputs.
    "wmt21-en-de": {
        "test": "wmt/newstest2021.en-de.src.en",
        "train": "wmt/newstest2021.de-en.ref.A.en",
    },
    "wmt21-de-en": {
        "test": "wmt/newstest2021.de-en.src.de",
        "train": "wmt/newstest2021.en-de.ref.A.de",
    },
    # Summarization test samples; each one's `train` split is the other sample's documents (calibration
    # and sequence-level distillation need inputs only, never references).
    "cnn_dailymail": {
        "test": "summarization/cnn_dailymail-test-sample.jsonl",
        "train": "summarization/xsum-test-sample.jsonl",
    },
    "xsum": {
        "test": "summarization/xsum-test-sample.jsonl",
        "train": "summarization/cnn_dailymail-test-sample.jsonl",
    },
}

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def hub_offline() -> bool:
    """Whether the Hugging Face libraries are told not to reach the hub."""
    return any(
        os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def resolve_data_dir(option: str | None, suite_value: str | None, suite_file: Path) -> Path | None:
    """The data directory in force, or None. A named directory that does not exist is an error."""
    for origin, value, base in (
        ("--data-dir", option, Path.cwd()),
        (f"${ENV_VAR}", os.environ.get(ENV_VAR), Path.cwd()),
        ("the suite's data_dir", suite_value, suite_file.parent),
    ):
        if value:
            path = (base / Path(value).expanduser()).resolve()
            if not path.is_dir():
                raise DataNotFoundError(f"data directory from {origin} does not exist: {path}")
            return path
    return None


def _candidates(name: str, data_dir: Path | None, suite_dir: Path) -> list[Path]:
    path = Path(name).expanduser()
    if path.is_absolute():
        return [path]
    found = [Path.cwd() / path, suite_dir / path]
    if data_dir is not None:
        found.append(data_dir / path)
    return found


def resolve_path(name: str, data_dir: Path | None, suite_dir: Path, kind: str) -> str:
    """An existing local file or folder, looked up like models and datasets."""
    looked = _candidates(name, data_dir, suite_dir)
    for path in looked:
        if path.exists():
            return str(path.resolve())
    raise _not_found(kind, name, looked, "")


def _not_found(kind: str, name: str, looked: list[Path], hub_note: str) -> DataNotFoundError:
    places = ", ".join(str(p) for p in dict.fromkeys(looked))
    return DataNotFoundError(f"{kind} '{name}' not found: looked in {places}{hub_note}")


def resolve_model(name: str, data_dir: Path | None, suite_dir: Path) -> Source:
    """A local model folder, or a hub id when no such folder exists and the name is a valid hub id."""
    looked = _candidates(name, data_dir, suite_dir)
    for path in looked:
        if path.is_dir():
            return Source(str(path.resolve()), local=True)
    if _HUB_ID.match(name) and not name.startswith((".", "~")):
        if hub_offline() and not _in_hf_cache(name):
            raise _not_found(
                "model",
                name,
                looked,
                "; not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids the hub",
            )
        return Source(name, local=False)
    hint = "" if data_dir is not None else f" (no data directory set: use --data-dir or ${ENV_VAR})"
    raise _not_found("model", name, looked, hint)


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError:
        return False
    return (Path(HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}").is_dir()


def _is_saved_dataset(path: Path) -> bool:
    """A folder written by datasets' save_to_disk."""
    return (path / "dataset_dict.json").is_file() or (path / "dataset_info.json").is_file()


def resolve_dataset(name: str, split: str, data_dir: Path | None, suite_dir: Path) -> Source:
    """A dataset file: an explicit path, a catalog name in the data directory, or a hub dataset id."""
    looked = _candidates(name, data_dir, suite_dir)
    for path in looked:
        if path.is_file() or _is_saved_dataset(path):
            return Source(str(path.resolve()), local=True)
    catalog = CATALOG.get(name)
    if catalog is not None:
        rel = catalog.get(split)
        if rel is None:
            raise DataNotFoundError(
                f"dataset '{name}' has no split '{split}' in the data directory layout; known: "
                + ", ".join(sorted(catalog))
            )
        if data_dir is not None:
            path = data_dir / rel
            if path.is_file():
                return Source(str(path), local=True)
            looked.append(path)
    if _HUB_ID.match(name):
        if hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "") in ("1", "true"):
            raise _not_found(
                "dataset",
                f"{name}' split '{split}",
                looked,
                "; the hub is off (HF_DATASETS_OFFLINE/HF_HUB_OFFLINE): set a data directory holding it",
            )
        return Source(name, local=False)
    raise _not_found("dataset", name, looked, "")
