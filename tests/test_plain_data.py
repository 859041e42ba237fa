"""Plain data: one flattening of params, one YAML loader and dumper, one result file."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.environment import Budget
from pytest_delphyne.plain_data import (
    dump_yaml,
    flatten_params,
    load_yaml,
    yaml_error_line,
)
from pytest_delphyne.results import (
    RecordedResult,
    ResultFileError,
    read_result,
    write_result,
)


@pytest.mark.parametrize(
    ("params", "flat"),
    [
        ({"a": 1}, {"a": 1}),
        ({"a": {"b": {"c": 2}}, "d": None}, {"a.b.c": 2, "d": None}),
        ({"xs": [1, "y"], "t": (1,)}, {"xs": [1, "y"], "t": (1,)}),
        ({"empty": {}, "x": 0}, {"x": 0}),
    ],
)
def test_flatten_params_keeps_values_as_they_are(
    params: dict[str, Any], flat: dict[str, Any]
) -> None:
    assert flatten_params(params) == flat


def test_dump_yaml_writes_multiline_text_as_a_literal_block_unless_asked() -> None:
    data = {"answer": "two\nlines", "n": 1}
    assert dump_yaml(data) == "answer: |-\n  two\n  lines\nn: 1\n"
    assert dump_yaml(data, literal_blocks=False) == "answer: 'two\n\n  lines'\nn: 1\n"
    assert load_yaml(dump_yaml(data)) == load_yaml(dump_yaml(data, width=10)) == data


def test_dump_yaml_keeps_the_key_order_and_writes_text_as_it_reads() -> None:
    assert dump_yaml({"model": "modèle", "a": 1}) == "model: modèle\na: 1\n"


def test_load_yaml_is_safe_and_names_the_line_of_an_error() -> None:
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']\n")
    with pytest.raises(yaml.YAMLError) as info:
        load_yaml("a: 1\nb: [\n")
    assert yaml_error_line(info.value) == 3


def recorded(name: str = "c1") -> RecordedResult:
    return RecordedResult(
        config_name=name,
        params={"x": 1, "pair": [1, 2]},
        success=True,
        values=[{"answer": "two\nlines"}],
        spent=Budget(2, 1, 10, 0, 3, 0.5),
        start_time=datetime(2024, 5, 1, 12, tzinfo=UTC),
        end_time=datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC),
        duration=1.0,
    )


def test_write_result_then_read_result_gives_it_back(tmp_path: Path) -> None:
    write_result(tmp_path, recorded())
    assert read_result(tmp_path) == recorded()
    assert sorted(p.name for p in tmp_path.iterdir()) == [layout.RESULT_FILE]


def test_result_file_writes_a_multiline_value_as_a_literal_block(
    tmp_path: Path,
) -> None:
    # A person reads the answer's lines as they are, not as one quoted "\n" string.
    write_result(tmp_path, recorded())
    text = (tmp_path / layout.RESULT_FILE).read_text()
    assert "    - answer: |-\n        two\n        lines\n" in text


def test_read_result_takes_a_result_written_by_delphyne(tmp_path: Path) -> None:
    """Delphyne's own `result.yaml` records the command, not the config or times."""
    (tmp_path / layout.RESULT_FILE).write_text(
        "command: run_strategy\n"
        "outcome:\n"
        "  result:\n"
        "    success: true\n"
        "    values: [[9, 2]]\n"
        "    spent_budget: {num_requests: 1, price: 0.5}\n"
    )
    result = read_result(tmp_path)
    assert (result.config_name, result.params, result.duration) == (None, {}, None)
    assert result.values == [[9, 2]]
    assert result.spent == Budget(num_requests=1, price=0.5)


@pytest.mark.parametrize(
    ("text", "problem", "missing"),
    [
        (None, "no such result file", True),
        ("a: [\n", "not a result file (corrupt YAML", False),
        ("config_name: a\n", "not a result file (no 'outcome.result' mapping)", False),
        (
            "outcome: {result: {success: true, spent_budget: [1]}}\n",
            "not a result file (its 'spent_budget' is not a mapping)",
            False,
        ),
    ],
)
def test_read_result_names_the_file_and_its_problem(
    tmp_path: Path, text: str | None, problem: str, missing: bool
) -> None:
    path = tmp_path / layout.RESULT_FILE
    if text is not None:
        path.write_text(text)
    with pytest.raises(ResultFileError) as info:
        read_result(tmp_path)
    assert str(info.value).startswith(f"{path}: {problem}")
    assert info.value.missing is missing
    assert info.value.path == path
