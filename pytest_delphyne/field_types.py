"""Which config field types the state can store exactly (SPEC §2, §8).

A config is stored as plain data and loaded back into its class: a field must be of
a type that survives the trip. Plain scalars, enums, `Literal`s, nested dataclasses,
and lists, tuples, dicts and optionals of those do. A `datetime`, a `Path`, a
`Decimal` or any other class would be written as something else, or not at all: the
class is refused when its experiment is loaded, naming the field, rather than when
the first config is written.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Final

from pytest_delphyne.errors import DelphyneError

UNSTORABLE_FIELD_MESSAGE: Final = (
    "{field} is a {type_name}, which the state cannot store exactly: use str, int, "
    "float, bool, None, an Enum, a Literal, a dataclass, or lists, tuples and dicts "
    "of those (a datetime as an ISO string, say)"
)

_SCALARS: Final = frozenset({str, int, float, bool, type(None), Any, object})
_CONTAINERS: Final = frozenset(
    {list, tuple, dict, Sequence, Mapping, typing.Union, types.UnionType}
)


class UnstorableFieldError(DelphyneError):
    """A config field of a type the state cannot store exactly.

    Attributes:
        field: the field, from the config class (`Config.inner.when`).
        field_type: its type, or the part of it that cannot be stored.
    """

    def __init__(self, field: str, field_type: object):
        self.field = field
        self.field_type = field_type
        type_name = getattr(field_type, "__qualname__", None) or repr(field_type)
        super().__init__(
            UNSTORABLE_FIELD_MESSAGE.format(field=field, type_name=type_name)
        )


def check_field_types(config_class: type[Any]) -> None:
    """Check that every field of `config_class` (nested dataclasses included) is of
    a type the state stores exactly. Annotations that cannot be resolved (a name
    defined later, say) are not checked.

    Raises:
        UnstorableFieldError: naming the first field that is not.
    """
    _check_class(config_class, config_class.__qualname__, set())


def _check_class(cls: type[Any], path: str, seen: set[type[Any]]) -> None:
    if cls in seen:
        return
    seen.add(cls)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:
        return
    for field in dataclasses.fields(cls):
        where = f"{path}.{field.name}"
        culprit = _unstorable_part(hints.get(field.name, Any), where, seen)
        if culprit is not None:
            raise UnstorableFieldError(where, culprit)


def _unstorable_part(kind: object, path: str, seen: set[type[Any]]) -> object | None:
    if kind in _SCALARS or kind is Ellipsis or isinstance(kind, typing.TypeVar):
        return None
    origin = typing.get_origin(kind)
    if origin is typing.Literal:
        return None
    if origin is typing.Annotated:
        return _unstorable_part(typing.get_args(kind)[0], path, seen)
    if origin in _CONTAINERS or isinstance(kind, types.UnionType):
        for argument in typing.get_args(kind):
            culprit = _unstorable_part(argument, path, seen)
            if culprit is not None:
                return culprit
        return None
    supertype = getattr(kind, "__supertype__", None)  # a typing.NewType
    if supertype is not None:
        return _unstorable_part(supertype, path, seen)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return None
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        _check_class(kind, path, seen)
        return None
    if isinstance(kind, type) and kind in (list, tuple, dict):
        return None  # unparameterised: its items are checked as plain data
    return kind
