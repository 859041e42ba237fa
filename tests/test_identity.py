from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.identity import (
    CONFIG_PARAMS_MESSAGE,
    INVALID_CONFIG_NAME_MESSAGE,
    ConfigParamsError,
    InvalidConfigNameError,
    codec_for,
    validate_config_name,
)
from pytest_delphyne.plain_data import (
    NOT_PLAIN_DATA_MESSAGE,
    NotPlainDataError,
    canonical_json,
    check_plain_data,
)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass
class Sampling:
    temperature: float = 0.7
    stop: tuple[str, ...] = ("\n",)


@dataclass
class Config:
    lr: float
    model: Literal["small", "large"] = "small"
    color: Color = Color.RED
    sampling: Sampling = field(default_factory=Sampling)
    seed: int | None = None
    weights: dict[str, list[int]] = field(default_factory=dict)
    pair: tuple[int, str] = (1, "a")

    def instantiate(self, context: object) -> object:
        return None


def test_int_and_float_for_a_float_field_are_one_config() -> None:
    codec = codec_for(Config)
    assert codec.canonical_key(Config(1)) == codec.canonical_key(Config(1.0))
    assert codec.canonical_key(Config(1)) != codec.canonical_key(Config(2.0))


def test_canonical_key_is_sorted_compact_json_of_the_loaded_config() -> None:
    key = codec_for(Config).canonical_key(Config(1, seed=3))
    assert key == (
        '{"color":"red","lr":1.0,"model":"small","pair":[1,"a"],'
        '"sampling":{"stop":["\\n"],"temperature":0.7},"seed":3,"weights":{}}'
    )


def test_dump_includes_defaults_enum_values_and_tuples_as_lists() -> None:
    data = codec_for(Config).dump(
        Config(0.5, "large", Color.BLUE, Sampling(1.0, ("x", "y")), 7, {"a": [1]})
    )
    assert data == {
        "lr": 0.5,
        "model": "large",
        "color": "blue",
        "sampling": {"temperature": 1.0, "stop": ["x", "y"]},
        "seed": 7,
        "weights": {"a": [1]},
        "pair": [1, "a"],
    }
    assert type(data["sampling"]["stop"]) is list


def test_load_reads_nested_typed_values_back() -> None:
    codec = codec_for(Config)
    config = Config(0.5, "large", Color.BLUE, Sampling(1.0, ("x",)), None, {"a": [1]})
    assert codec.load(codec.dump(config)) == config


def test_load_fills_missing_defaulted_fields() -> None:
    assert codec_for(Config).load({"lr": 2}) == Config(2.0)


def test_codec_is_cached_per_class() -> None:
    assert codec_for(Config) is codec_for(Config)


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"lr": "fast"}, "expected float, got str @ params.lr"),
        ({"lr": 1, "model": "huge"}, "@ params.model"),
        ({"lr": 1, "color": "green"}, "@ params.color"),
        ({"lr": 1, "removed": 3}, "unknown fields ['removed'] @ params"),
        ({}, "required field missing @ params.lr"),
        ({"lr": 1, "sampling": {"stop": [1]}}, "@ params.sampling.stop[0]"),
        ({"lr": True}, "expected float, got bool @ params.lr"),
    ],
)
def test_load_refuses_params_that_do_not_fit_naming_the_field(
    params: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigParamsError) as info:
        codec_for(Config).load(params, config_name="c1")
    prefix = CONFIG_PARAMS_MESSAGE.format(
        config_name="c1", class_name="Config", problems=""
    )
    assert str(info.value).startswith(prefix)
    assert problem in str(info.value)
    assert isinstance(info.value, DelphyneError)


def test_a_class_that_is_not_a_dataclass_has_no_codec() -> None:
    class NotData:
        pass

    with pytest.raises(DelphyneError, match="NotData is not a dataclass"):
        codec_for(NotData)


def test_canonical_json_sorts_keys_compactly() -> None:
    assert canonical_json({"b": [1, 2.5], "a": None}) == '{"a":null,"b":[1,2.5]}'
    # Text stays as it is, as in the state and result files a person reads.
    assert canonical_json({"model": "café"}) == '{"model":"café"}'


@pytest.mark.parametrize(
    "value",
    [None, True, 3, 2.5, "s", [1, [2]], (1, "x"), {"a": {"b": [None]}}],
)
def test_plain_data_is_accepted(value: object) -> None:
    check_plain_data(value, "values")


@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        ([1, 2, {"x": {1, 2}}], "[2]['x']", "a set"),
        ({"a": [object()]}, "['a'][0]", "a object"),
        (Color.RED, "it", "a Color"),
        ({"a": {3: "x"}}, "the key 3 of ['a']", "a int"),
        # A flat dict of scalars, as params are, with a key that is not a str.
        ({"a": 1.5, 3: "x"}, "the key 3 of it", "a int"),
        ({3: "x"}, "the key 3 of it", "a int"),
    ],
)
def test_not_plain_data_names_the_path_and_type(
    value: object, path: str, type_name: str
) -> None:
    with pytest.raises(NotPlainDataError) as info:
        check_plain_data(value, "values")
    assert str(info.value) == NOT_PLAIN_DATA_MESSAGE.format(
        what="values", path=path, type_name=type_name
    )


def test_dump_refuses_fields_that_are_not_plain_data() -> None:
    @dataclass
    class Holder:
        thing: Any

    with pytest.raises(
        NotPlainDataError, match=r"Holder\.params is not plain data: \['thing'\]"
    ):
        codec_for(Holder).dump(Holder(object()))


@pytest.mark.parametrize(
    "name",
    # The longest names a file system takes: 255 bytes, in ASCII or in UTF-8.
    ["gpt-4o_t0.7", "a b", "café", "x.y", "UPPER", "0", "x" * 255, "é" * 127 + "x"],
)
def test_valid_config_names(name: str) -> None:
    validate_config_name(name)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "it is empty"),
        (".", "it is a special directory name"),
        ("..", "it is a special directory name"),
        ("a/b", "it contains a path separator"),
        ("a\\b", "it contains a path separator"),
        ("a\nb", "it contains a control character"),
        ("a\x00b", "it contains a control character"),
        ("tab\t", "it contains a control character"),
        (" lead", "it starts or ends with whitespace"),
        ("x" * 256, "it is longer than 255 bytes"),
        ("é" * 128, "it is longer than 255 bytes"),
    ],
)
def test_invalid_config_names_are_refused(name: str, reason: str) -> None:
    with pytest.raises(InvalidConfigNameError) as info:
        validate_config_name(name)
    assert str(info.value) == INVALID_CONFIG_NAME_MESSAGE.format(
        name=name, reason=reason
    )
