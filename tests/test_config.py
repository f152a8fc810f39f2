from pathlib import Path

import pytest

from bench.config import load_suite
from bench.errors import ConfigError
from bench.validate import check_plugins

from .conftest import REPO

VALID = """
model: {id: some/model}
task: {name: qa, dataset: squad}
compressors: [{name: baseline}, {name: int8-dynamic}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        suite = load_suite(write(tmp_path, text))
        check_plugins(suite)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_valid_suite_gets_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, VALID))
    assert suite.name == "suite"  # from the file name
    assert suite.devices == ["cpu"]
    assert suite.batch_sizes == [1]
    assert suite.measurement.min_iterations == 10
    check_plugins(suite)


def test_shipped_suites_validate() -> None:
    for path in (REPO / "suites").glob("*.yaml"):
        check_plugins(load_suite(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID + "batch_size: [1]\n", "batch_size: unknown key (did you mean 'batch_sizes'?)"),
        (VALID + "batch_sizes: [0]\n", "batch_sizes[0]: Input should be greater than 0"),
        (VALID + "devices: [tpu]\n", "devices[0]: Input should be 'cpu' or 'cuda'"),
        (
            VALID.replace("dataset: squad", "dataset: squad, limit: -5"),
            "task.limit: Input should be greater than 0",
        ),
        (
            VALID.replace("dataset: squad", "datset: squad"),
            "task.datset: unknown key (did you mean 'dataset'?)",
        ),
        (
            VALID + "measurement: {min_iterations: many}\n",
            "measurement.min_iterations: Input should be a valid integer",
        ),
        (VALID + "seed: [1]\n", "seed: Input should be a valid integer"),
        ("model: {id: x}\ncompressors: [{name: baseline}]\n", "task: required key is missing"),
        (VALID.replace("{name: int8-dynamic}", "{name: baseline}"), "appears twice"),
        (
            VALID.replace("int8-dynamic", "int8-dynamc"),
            "compressors[1].name: unknown compressor 'int8-dynamc' (did you mean 'int8-dynamic'?)",
        ),
        (VALID.replace("name: qa", "name: qna"), "task.name: unknown task 'qna'"),
        (
            VALID.replace("{name: int8-dynamic}", "{name: int8-dynamic, config: {backnd: torchao}}"),
            "compressors[1].config.backnd: unknown key (did you mean 'backend'?)",
        ),
        (
            VALID.replace("{name: int8-dynamic}", "{name: int8-dynamic, config: {backend: onnx}}"),
            "compressors[1].config.backend: Input should be 'torch-ao', 'torchao' or 'onnxruntime'",
        ),
        (VALID.replace("dataset: squad", "dataset: squad, config: {n_best: 0}"), "task.config.n_best"),
        (
            VALID.replace("{name: int8-dynamic}", "{name: int8-static, config: {skip: ['(']}}"),
            "compressors[1].config.skip[0]: bad regular expression '('",
        ),
        (
            VALID.replace("{name: int8-dynamic}", "{name: prune-magnitude, config: {exclude: ['[']}}"),
            "compressors[1].config.exclude[0]: bad regular expression '['",
        ),
        ("model: {id: x\n", "invalid YAML"),
        ("- just\n- a list\n", "a suite is a mapping"),
    ],
)
def test_bad_suites_get_one_line_naming_the_field(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="suite file not found"):
        load_suite(tmp_path / "nope.yaml")


def test_more_problems_are_counted(tmp_path: Path) -> None:
    message = error_of(tmp_path, VALID + "batch_sizes: [0]\nsequence_lengths: [-1]\n")
    assert "(and 1 more problem)" in message


BLOCK = """
model: {id: some/model}
task: {name: qa, dataset: squad}
compressors:
  - name: baseline
  - name: int8-dynamic
"""


def test_chains(tmp_path: Path) -> None:
    suite = load_suite(
        write(tmp_path, BLOCK + "  - chain: [{name: baseline}, {name: int8-dynamic, config: {per_channel: false}}]\n")
    )
    chain = suite.compressors[2]
    assert chain.display_name == "baseline+int8-dynamic"
    assert [s.name for s in chain.steps] == ["baseline", "int8-dynamic"]
    check_plugins(suite)
    for bad, expected in (
        ("  - chain: [{name: baseline}]\n", "at least two"),
        ("  - {name: baseline, chain: [{name: baseline}, {name: baseline}]}\n", "either `name`"),
        ("  - chain: [{name: baseline}, {name: int8-dynamc}]\n", "compressors[2].chain[1].name: unknown compressor"),
        ("  - chain: [{name: baseline}, {name: int8-dynamic, config: {x: 1}}]\n", "compressors[2].chain[1].config.x"),
    ):
        assert expected in error_of(tmp_path, BLOCK + bad)
