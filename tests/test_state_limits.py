from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.identity import codec_for
from pytest_delphyne.plain_data import ALIAS_PROBLEM, first_alias_line
from pytest_delphyne.state import StateFileError
from pytest_delphyne.state_store import StateStore


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a: 1\nb: [x, y]\n", None),
        ("a: 'x & y * z'\n", None),  # marks inside a value are no alias
        ("a: &one [1]\nb: *one\n", 1),
        ("a: 1\nb: [2]\nc: &x 3\n", 3),
    ],
)
def test_first_alias_line(text: str, line: int | None) -> None:
    assert first_alias_line(text) == line


def test_first_alias_line_of_text_that_is_not_yaml() -> None:
    with pytest.raises(yaml.YAMLError):
        first_alias_line("a: b: c\nd: &x 1\n")


def test_state_with_aliases_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Config:
        x: int

    state = tmp_path / layout.STATE_FILE
    state.write_text(
        "name: e\ndescription: null\nconfigs:\n  c0: &c\n    params: {x: 0}\n"
        "    status: todo\n  c1: *c\n"
    )
    with pytest.raises(StateFileError) as raised:
        StateStore(tmp_path, codec_for(Config)).load()
    assert str(raised.value) == f"{state}:4: {ALIAS_PROBLEM}"
