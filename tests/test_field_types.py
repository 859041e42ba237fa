from __future__ import annotations

import datetime
import decimal
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NewType

import pytest

from pytest_delphyne.field_types import (
    UNSTORABLE_FIELD_MESSAGE,
    UnstorableFieldError,
    check_field_types,
)
from pytest_delphyne.identity import ConfigCodec


class Color(enum.Enum):
    RED = "red"


Seed = NewType("Seed", int)


@dataclass
class Inner:
    depth: int
    tags: tuple[str, ...] = ()


@dataclass
class Storable:
    model: str
    temperature: float = 0.7
    seed: Seed = Seed(0)
    color: Color = Color.RED
    mode: Literal["fast", "slow"] = "fast"
    inner: Inner | None = None
    layers: list[Inner] = field(default_factory=list)
    options: dict[str, int | float | None] = field(default_factory=dict)
    anything: Any = None


def test_plain_field_types_are_accepted() -> None:
    check_field_types(Storable)


@dataclass
class WithWhen:
    when: datetime.datetime


@dataclass
class WithPaths:
    paths: list[Path]


@dataclass
class WithPrice:
    price: decimal.Decimal | None = None


@dataclass
class Outer:
    inner: WithWhen


@pytest.mark.parametrize(
    ("config_class", "field_name", "culprit"),
    [
        (WithWhen, "WithWhen.when", datetime.datetime),
        (WithPaths, "WithPaths.paths", Path),
        (WithPrice, "WithPrice.price", decimal.Decimal),
        (Outer, "Outer.inner.when", datetime.datetime),
    ],
)
def test_fields_the_state_cannot_store_are_refused_naming_them(
    config_class: type[Any], field_name: str, culprit: type[Any]
) -> None:
    with pytest.raises(UnstorableFieldError) as raised:
        ConfigCodec(config_class)
    assert (raised.value.field, raised.value.field_type) == (field_name, culprit)
    assert str(raised.value) == UNSTORABLE_FIELD_MESSAGE.format(
        field=field_name, type_name=culprit.__qualname__
    )
