"""The direct writer of PyYAML's block layout: the same text as `yaml.dump`, or none."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
import yaml

from pytest_delphyne.yaml_writer import block_yaml

T1 = datetime(2024, 5, 1, 12, 0, 30, 500000, tzinfo=UTC)

TRICKY_STRINGS = [
    "",
    " padded ",
    "yes",
    "null",
    "~",
    "12",
    "1e5",
    "0x1F",
    "2024-01-01",
    "a: b",
    "#hash",
    "-dash",
    "it's",
    'say "hi"',
    "multi\nline\n",
    "tab\there",
    "back\\slash",
    "naïve café",
    "emoji 😀",
    "\x85\u2028\ufeff\x00",
    "x" * 300,
]


@pytest.mark.parametrize("text", TRICKY_STRINGS)
def test_rendered_yaml_reads_back_as_the_same_data(text: str) -> None:
    data = {
        "name": text,
        "description": None,
        "configs": {
            "c": {
                "params": {
                    "s": text,
                    "nested": {"list": [text, 1, 2.5, -0.0, 1e20, True, None, []]},
                    "rows": [{"a": text, "b": [[1, 2], {}]}],
                    "floats": [math.inf, -math.inf],
                },
                "status": "todo",
            }
        },
    }
    text_yaml = block_yaml(data)
    assert text_yaml is not None
    assert yaml.load(text_yaml, Loader=yaml.CSafeLoader) == data


@pytest.mark.parametrize(
    "data",
    [
        {"a": "plain", "b": 1, "c": 0.5, "d": None, "e": False, "f": "two words"},
        {"nested": {"list": [1, [2, 3], {"x": "y", "z": []}], "empty": {}}},
        {"when": T1, "quoted": "2024-05-01", "number-like": "12"},
    ],
)
def test_block_yaml_is_what_pyyaml_writes(data: dict[str, object]) -> None:
    assert block_yaml(data) == yaml.safe_dump(
        data, sort_keys=False, allow_unicode=True, width=1000
    )


def test_block_yaml_leaves_other_data_to_pyyaml() -> None:
    assert block_yaml({"long " * 40: 1}) is None
    assert block_yaml({"a": {1: "int key"}}) is None
    assert block_yaml({"a": "x" * 200}, max_line=90) is None
    assert block_yaml({"a": "two\nlines"}, multiline=False) is None
