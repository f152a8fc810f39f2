import re
from pathlib import Path

import pytest

from bench.config import load_suite, load_suites
from bench.core.errors import ConfigError
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
        for suite in load_suites(path):
            check_plugins(suite)


SEVERAL = """
description: two models
defaults:
  task: {name: qa, dataset: squad, limit: 20, config: {doc_stride: 64}}
  compressors: [{name: baseline}]
  sequence_lengths: [128, 256]
suites:
  - name: first
    model: {id: some/model}
  - name: second
    model: {id: other/model}
    task: {limit: 5}
    sequence_lengths: [512]
"""


def test_a_file_of_several_suites_merges_each_over_the_defaults(tmp_path: Path) -> None:
    first, second = load_suites(write(tmp_path, SEVERAL))
    assert (first.name, first.model.id, first.task.limit, first.sequence_lengths) == (
        "first",
        "some/model",
        20,
        [128, 256],
    )
    assert (second.task.limit, second.task.config, second.sequence_lengths) == (5, {"doc_stride": 64}, [512])
    assert [s.name for s in load_suites(write(tmp_path, VALID))] == ["suite"]  # a single suite as before


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("  - name: second", "  - nme: second"), "suites[1].name: each suite of the file needs"),
        (lambda t: t.replace("name: second", "name: first"), "the name 'first' appears twice"),
        (lambda t: t.replace("limit: 5", "limit: -5"), "suites[1] (second): task.limit: Input should be greater"),
        (lambda t: t + "model: {id: x}\n", "model: a file of several suites holds only"),
        (lambda t: t.split("suites:")[0] + "suites: []\n", "suites: a list of suites"),
    ],
)
def test_several_suites_errors_name_the_member(tmp_path: Path, edit: object, expected: str) -> None:
    assert callable(edit)
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_suites(write(tmp_path, edit(SEVERAL)))


def test_a_single_suite_command_refuses_a_file_of_several(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="holds several suites"):
        load_suite(write(tmp_path, SEVERAL))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (VALID + "batch_size: [1]\n", "batch_size: unknown key (did you mean 'batch_sizes'?)"),
        (VALID + "batch_sizes: [0]\n", "batch_sizes[0]: Input should be greater than 0"),
        (VALID + "devices: [tpu]\n", "devices[0]: unknown device 'tpu': use cpu, cuda or cuda:N"),
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
