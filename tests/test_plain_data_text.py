from __future__ import annotations

import pytest

from pytest_delphyne.identity import InvalidConfigNameError, validate_config_name
from pytest_delphyne.plain_data import (
    UNENCODABLE_MESSAGE,
    UnencodableTextError,
    check_plain_data,
    is_encodable,
    plain_copy,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("plain", True), ("café ✓", True), ("a\udc80", False), ("\ud800x", False)],
)
def test_is_encodable(text: str, expected: bool) -> None:
    assert is_encodable(text) is expected


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"label": "a\udc80"}, "Config.params['label']"),
        ({"a\udc80": 1}, "Config.params: the key 'a\\udc80' of it"),
        ({"nested": {"xs": ["ok", "b\udc80"]}}, "Config.params['nested']['xs'][1]"),
    ],
)
def test_params_with_unencodable_text_are_refused_naming_the_field(
    value: object, path: str
) -> None:
    with pytest.raises(UnencodableTextError) as raised:
        check_plain_data(value, "Config.params")
    assert raised.value.path == path
    assert str(raised.value) == UNENCODABLE_MESSAGE.format(
        path=path, text=raised.value.text
    )


def test_values_with_unencodable_text_are_refused_naming_the_value() -> None:
    with pytest.raises(UnencodableTextError) as raised:
        plain_copy(["ok", {"k": "v\udc80"}], "values")
    assert raised.value.path == "values[1]['k']"


def test_config_name_with_a_lone_surrogate_is_invalid() -> None:
    with pytest.raises(InvalidConfigNameError, match="lone surrogate"):
        validate_config_name("x\udc80")


def test_a_top_level_unencodable_key_of_values_is_refused_naming_it() -> None:
    with pytest.raises(UnencodableTextError) as raised:
        plain_copy({"a\udc80": 1}, "values")
    assert raised.value.path == "values: the key 'a\\udc80' of it"
