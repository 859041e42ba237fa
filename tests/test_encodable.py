from __future__ import annotations

import pytest

from pytest_delphyne.cache import plain_copy
from pytest_delphyne.encodable import (
    UNENCODABLE_MESSAGE,
    UnencodableTextError,
    is_encodable,
)
from pytest_delphyne.identity import (
    InvalidConfigNameError,
    check_plain_data,
    validate_config_name,
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
        ({"label": "a\udc80"}, "params['label']"),
        ({"a\udc80": 1}, "params (its key 'a\\udc80')"),
        ({"nested": {"xs": ["ok", "b\udc80"]}}, "params['nested']['xs'][1]"),
    ],
)
def test_params_with_unencodable_text_are_refused_naming_the_field(
    value: object, path: str
) -> None:
    with pytest.raises(UnencodableTextError) as raised:
        check_plain_data(value, "params")
    assert raised.value.path == path
    assert str(raised.value) == UNENCODABLE_MESSAGE.format(
        path=path, text=raised.value.text
    )


def test_values_with_unencodable_text_are_refused_naming_the_value() -> None:
    with pytest.raises(UnencodableTextError) as raised:
        plain_copy(["ok", {"k": "v\udc80"}], "the values", "values")
    assert raised.value.path == "the values: values[1]['k']"


def test_config_name_with_a_lone_surrogate_is_invalid() -> None:
    with pytest.raises(InvalidConfigNameError, match="lone surrogate"):
        validate_config_name("x\udc80")
