"""The malformed-suite corpus (tests/malformed_suites/): every case is refused by `bench validate` with exit
code 2 and one line naming the file, the field and the problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.cli import main

CASES = Path(__file__).parent / "malformed_suites"
BASE = (CASES / "_base.yaml").read_text(encoding="utf-8")


def _expected(text: str) -> tuple[int, str]:
    match = re.search(r"^# expect: (.*)$", text, re.MULTILINE)
    assert match, "a case starts with '# expect: MESSAGE'"
    return 2, match.group(1)


def _suite_text(case: str) -> str:
    """The base suite with the case's top-level keys replacing the base's (a textual merge, so that
    YAML-level faults such as duplicate keys and aliases reach bench as written)."""
    if "# whole-file" in case:
        return case
    keys = set(re.findall(r"^([A-Za-z_]\w*):", case, re.MULTILINE))
    kept = [line for line in BASE.splitlines() if not re.match(rf"^({'|'.join(keys) or '^$'}):", line)]
    return "\n".join([*kept, case]) + "\n"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    folder = tmp_path_factory.mktemp("malformed")
    (folder / "empty-model").mkdir()
    (folder / "config-only-model").mkdir()
    (folder / "config-only-model" / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    (folder / "broken.json").write_text('{"data": [')
    (folder / "wrong-shape.json").write_text(json.dumps({"rows": [1, 2]}))
    (folder / "empty-squad.json").write_text(json.dumps({"version": "1.1", "data": []}))
    return folder


def _run(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("*.yaml") if not p.name.startswith("_")))
def test_malformed_suite(
    case: str,
    work: Path,
    tiny_model_dir: Path,
    tiny_squad_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (CASES / case).read_text(encoding="utf-8")
    code, message = _expected(text)
    places = {"@MODEL@": str(tiny_model_dir), "@DATA@": str(tiny_squad_dir), "@WORK@": str(work)}
    suite_text = _suite_text(text)
    for placeholder, value in places.items():
        suite_text = suite_text.replace(placeholder, value)
        message = message.replace(placeholder, value)
    path = tmp_path / f"{case}"
    path.write_text(suite_text, encoding="utf-8")
    got, err = _run(path, capsys)
    assert got == code, err
    assert err.count("\n") == 1 and err.startswith("bench: error: "), err
    assert message in err, err
    assert len(err) < 600, "an error line stays short"


def test_the_base_suite_is_valid(
    tiny_model_dir: Path, tiny_squad_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "base.yaml"
    path.write_text(BASE.replace("@MODEL@", str(tiny_model_dir)).replace("@DATA@", str(tiny_squad_dir)))
    code, err = _run(path, capsys)
    assert code == 0 and err == ""


def test_files_that_are_not_text_or_too_large(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00\x01name: x")
    code, err = _run(binary, capsys)
    assert code == 2 and "invalid YAML" in err and err.count("\n") == 1
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    code, err = _run(deep, capsys)
    assert code == 2 and "nesting deeper than 24 levels" in err and err.count("\n") == 1
    large = tmp_path / "large.yaml"
    large.write_text("# padding\n" * 30_000)
    code, err = _run(large, capsys)
    assert code == 2 and "a suite file has at most 262,144" in err


def test_no_baseline_row_warns_and_several_suites_are_checked(
    tiny_model_dir: Path, tiny_squad_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    valid = BASE.replace("@MODEL@", str(tiny_model_dir)).replace("@DATA@", str(tiny_squad_dir))
    lonely = tmp_path / "lonely.yaml"
    lonely.write_text(valid.replace("[{name: baseline}, {name: int8-dynamic}]", "[{name: int8-dynamic}]"))
    broken = tmp_path / "broken.yaml"
    broken.write_text(valid + "seed: -3\n")
    code = main(["validate", str(lonely), str(broken)])
    captured = capsys.readouterr()
    assert code == 2
    assert f"bench: warning: {lonely}: compressors: no `baseline` row" in captured.err
    assert f"{lonely}: ok" in captured.out and f"bench: error: {broken}: seed" in captured.err


def test_a_memory_limit_beyond_the_machine_warns(
    tiny_model_dir: Path, tiny_squad_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    valid = BASE.replace("@MODEL@", str(tiny_model_dir)).replace("@DATA@", str(tiny_squad_dir))
    greedy = tmp_path / "greedy.yaml"
    greedy.write_text(valid + "measurement: {max_rss_gb: 100000}\n")
    assert main(["validate", str(greedy)]) == 0
    assert "measurement.max_rss_gb: 100000 GB is more than this machine's RAM" in capsys.readouterr().err
