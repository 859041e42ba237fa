"""A config's canonical form, equality, default naming and name validation.

A config is a dataclass of hyperparameters. Its canonical form is the dataclass dumped
to plain data, loaded back into its class and dumped again, written as JSON with sorted
keys: `Config(1)` and `Config(1.0)` for a `float` field are one config, because loading
turns the `1` into `1.0`. Loading plain data back into typed dataclasses (nested
dataclasses, tuples, lists, dicts, enums, `Literal`s, optionals) is done by `cattrs`.
"""

from __future__ import annotations

import os
import unicodedata
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError

from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.field_types import check_field_types
from pytest_delphyne.plain_data import canonical_json, check_plain_data, is_encodable

C = TypeVar("C")

CONFIG_PARAMS_MESSAGE = (
    "The stored params of config {config_name!r} do not fit {class_name}: {problems}"
)
INVALID_CONFIG_NAME_MESSAGE = "Invalid config name {name!r}: {reason}"
NOT_A_DATACLASS_MESSAGE = "{class_name} is not a dataclass, so it cannot be a config"

_RESERVED_NAMES = frozenset({".", ".."})
_SEPARATORS = frozenset({"/", "\\", os.sep} | ({os.altsep} if os.altsep else set()))
# Longest file name most file systems accept (bytes of UTF-8).
_MAX_NAME_BYTES = 255


class ConfigParamsError(DelphyneError):
    """Params (stored in a state file or given by code) that do not fit the config
    class. The message names the config and each offending field."""

    def __init__(self, config_name: str | None, class_name: str, problems: list[str]):
        self.config_name = config_name
        self.class_name = class_name
        self.problems = problems
        super().__init__(
            CONFIG_PARAMS_MESSAGE.format(
                config_name=config_name,
                class_name=class_name,
                problems="; ".join(problems),
            )
        )


class InvalidConfigNameError(DelphyneError):
    """A config name that cannot be a directory name or a test id."""

    def __init__(self, name: str, reason: str):
        self.name = name
        self.reason = reason
        super().__init__(INVALID_CONFIG_NAME_MESSAGE.format(name=name, reason=reason))


def _structure_strict(kind: type[Any]) -> Callable[[Any, type[Any]], Any]:
    # cattrs' default hooks call `str(x)`/`int(x)`, which would quietly read the
    # int 3 into a str field as "3" and hide params that no longer fit.
    def hook(value: Any, _: type[Any]) -> Any:
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got bool")
        if kind is float and isinstance(value, int | float):
            return float(value)
        if isinstance(value, kind):
            return value
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")

    return hook


def make_converter() -> cattrs.Converter:
    """A `cattrs` converter for configs: tuples become lists, enums their values,
    extra keys and wrongly typed scalars are refused."""
    converter = cattrs.Converter(
        forbid_extra_keys=True,
        unstruct_collection_overrides={tuple: list},
        detailed_validation=True,
    )
    for kind in (str, int, float, bool):
        converter.register_structure_hook(kind, _structure_strict(kind))
    return converter


def _describe_error(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown fields {sorted(exc.extra_fields)}"
    return str(exc) or type(exc).__name__


class ConfigCodec(Generic[C]):
    """Turns configs of one class into plain data and back.

    Get one with `codec_for(config_class)`, which caches it: the structuring code
    `cattrs` generates for a class is built once.
    """

    def __init__(self, config_class: type[C]):
        if not hasattr(config_class, "__dataclass_fields__"):
            raise DelphyneError(
                NOT_A_DATACLASS_MESSAGE.format(class_name=config_class.__qualname__)
            )
        check_field_types(config_class)
        self.config_class = config_class
        self.converter = make_converter()
        self._structure = self.converter.get_structure_hook(config_class)
        self._unstructure = self.converter.get_unstructure_hook(config_class)

    def dump(self, config: C, *, check: bool = True) -> dict[str, Any]:
        """The config as plain data, every field included (defaults too).

        Arguments:
            config: the config.
            check: check that the result is plain data (a config loaded from plain
                data needs no check).

        Raises:
            NotPlainDataError: a field holds something that is not plain data.
        """
        data: dict[str, Any] = self._unstructure(config)
        if check:
            check_plain_data(data, f"{self.config_class.__qualname__}.params")
        return data

    def load(self, params: object, *, config_name: str | None = None) -> C:
        """Read plain data back into a config; missing fields take their default.

        Raises:
            ConfigParamsError: naming `config_name` and each field that does not fit.
        """
        try:
            config: C = self._structure(params, self.config_class)
        except ClassValidationError as exc:
            problems = cattrs.transform_error(
                exc, path="params", format_exception=_describe_error
            )
            raise ConfigParamsError(
                config_name, self.config_class.__qualname__, problems
            ) from None
        except (TypeError, ValueError, AttributeError) as exc:
            raise ConfigParamsError(
                config_name, self.config_class.__qualname__, [f"{exc} @ params"]
            ) from None
        return config

    def canonical_key(self, config: C) -> str:
        """The config's identity: equal keys mean the same config."""
        return canonical_json(self.dump(self.load(self.dump(config))))


_codecs: dict[type[Any], ConfigCodec[Any]] = {}


def codec_for(config_class: type[C]) -> ConfigCodec[C]:
    """The codec of a config class, built once per class."""
    codec = _codecs.get(config_class)
    if codec is None:
        codec = _codecs[config_class] = ConfigCodec(config_class)
    return codec


def validate_config_name(name: str) -> None:
    """Check that a config name can be a directory name and a test id.

    Raises:
        InvalidConfigNameError: the name is empty, `.` or `..`, has a path separator or
            a control character, starts or ends with whitespace, or is too long.
    """
    reason = _name_problem(name)
    if reason is not None:
        raise InvalidConfigNameError(name, reason)


def _name_problem(name: object) -> str | None:
    if not isinstance(name, str):
        return f"it is a {type(name).__qualname__}, not a str"
    if not name:
        return "it is empty"
    if name in _RESERVED_NAMES:
        return "it is a special directory name"
    if any(sep in name for sep in _SEPARATORS):
        return "it contains a path separator"
    # A printable ASCII name has no control character: skip the per-character
    # lookup, which costs more than everything else here (100,000 names per load).
    if not (name.isascii() and name.isprintable()) and any(
        unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name
    ):
        return "it contains a control character"
    if not is_encodable(name):
        return "it has a lone surrogate, which no file name or file can hold"
    if name != name.strip():
        return "it starts or ends with whitespace"
    if len(name.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        return f"it is longer than {_MAX_NAME_BYTES} bytes"
    return None


def default_config_name(config: object, fresh: uuid.UUID) -> str:
    """The name of a config when the experiment gives no `config_naming`."""
    return str(fresh)
