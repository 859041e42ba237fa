"""Plain data, what every file of an experiment holds: its check, copy, canonical JSON,
flattening, and the one YAML loader and dumper.

Plain data is `None`, `bool`, `int`, `float`, `str`, and lists, tuples and dicts with
`str` keys of those. A config's params, a program's values, an oracle call's arguments
and answer all must be: they are written to YAML and JSON and read back. Tuples read
back as lists.
"""

from __future__ import annotations

import json
from typing import Any, Final, TypeGuard

import yaml

from pytest_delphyne.errors import DelphyneError

NOT_PLAIN_DATA_MESSAGE: Final = (
    "{what} is not plain data: {path} is {type_name} (expected None, bool, int, "
    "float, str, or a list, tuple or dict with str keys of those)"
)


class NotPlainDataError(DelphyneError):
    """A value that must be plain data (to be written to YAML or JSON) is not.

    Attributes:
        what: what the value is ("the answer of call f", "Config.params").
        path: where in it the culprit is (`['x'][0]`, or `it` for the whole value).
        type_name: the culprit's type.
    """

    def __init__(self, what: str, path: str, culprit: object):
        self.what = what
        self.path = path
        self.type_name = type(culprit).__qualname__
        super().__init__(
            NOT_PLAIN_DATA_MESSAGE.format(
                what=what, path=path, type_name=f"a {self.type_name}"
            )
        )


UNENCODABLE_MESSAGE: Final = (
    "{path} is text that no file can hold: {text!r} has a lone surrogate (bytes "
    "that were not UTF-8?); give valid Unicode text"
)


class UnencodableTextError(DelphyneError):
    """Text with a lone surrogate (`"a\\udc80"`, what `os.fsdecode` makes of bytes
    that are not UTF-8): no UTF-8 file can hold it, so a write would stop half-way.

    Attributes:
        path: where the text is, with what holds it ("Config.params['label']").
        text: the text.
    """

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        super().__init__(UNENCODABLE_MESSAGE.format(path=path, text=text))


def is_encodable(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (ASCII text is decided without
    encoding it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_encodable(text: str, what: str, path: str) -> None:
    if not is_encodable(text):
        where = f"{what}{path}" if path.startswith("[") else f"{what}: {path}"
        raise UnencodableTextError(where, text)


def _key_error(what: str, path: str, key: object) -> NotPlainDataError:
    return NotPlainDataError(what, f"the key {key!r} of {path or 'it'}", key)


def plain_copy(value: Any, what: str, path: str = "") -> Any:
    """A copy of `value` with tuples turned into lists, as it reads back from YAML.

    Arguments:
        value: the data to copy.
        what: what the value is, for the error message ("the answer of call f").
        path: the location of `value` inside the whole, for the error message.

    Raises:
        NotPlainDataError: naming the first non-plain part and its type.
        UnencodableTextError: naming text that no file can hold.
    """
    if isinstance(value, str):
        _check_encodable(value, what, path or "it")
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [plain_copy(item, what, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, dict):
        copy: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _key_error(what, path, key)
            _check_encodable(key, what, f"the key {key!r} of {path or 'it'}")
            copy[key] = plain_copy(item, what, f"{path}[{key!r}]")
        return copy
    raise NotPlainDataError(what, path or "it", value)


_SCALAR_TYPES: Final = frozenset({type(None), bool, int, float, str})


def _is_flat_plain(value: object) -> TypeGuard[dict[str, object]]:
    # The common case, checked 10x faster: a dict of str keys and exact scalars (a
    # config's params). Anything else takes the walk that names the culprit.
    return (
        type(value) is dict
        and all(type(key) is str for key in value)
        and all(type(item) in _SCALAR_TYPES for item in value.values())
    )


def _all_text_encodable(flat: dict[str, object]) -> bool:
    return all(is_encodable(key) for key in flat) and all(
        is_encodable(item) for item in flat.values() if type(item) is str
    )


def check_plain_data(value: object, what: str) -> None:
    """Check that `value` is plain data, recursively, without copying it.

    Arguments:
        value: the value to check.
        what: what the value is, for the error message ("Config.params").

    Raises:
        NotPlainDataError: naming the path of the first offending part (for example
            `[2]['x']`) and its type.
        UnencodableTextError: naming the path of text that no file can hold.
    """
    if _is_flat_plain(value) and _all_text_encodable(value):
        return
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            _check_encodable(item, what, path or "it")
            continue
        if item is None or isinstance(item, bool | int | float):
            continue
        if isinstance(item, list | tuple):
            stack.extend(
                (v, f"{path}[{i}]") for i, v in reversed(list(enumerate(item)))
            )
        elif isinstance(item, dict):
            for key in reversed(list(item)):
                if not isinstance(key, str):
                    raise _key_error(what, path, key)
                _check_encodable(key, what, f"the key {key!r} of {path or 'it'}")
                stack.append((item[key], f"{path}[{key!r}]"))
        else:
            raise NotPlainDataError(what, path or "it", item)


# One encoder for every call: `json.dumps` with options builds a new one each time,
# which costs as much as the encoding of a config.
_CANONICAL_ENCODER: Final = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
)


def canonical_json(data: object) -> str:
    """Sorted-key, compact JSON of plain data: equal data, equal text."""
    return _CANONICAL_ENCODER.encode(data)


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted keys: `{"a": {"b": 1}, "c": [2]}` gives
    `{"a.b": 1, "c": [2]}`. Values stay as they are; an empty mapping gives no key."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# The C loader and dumper are 5-10x faster than the pure-Python ones; both are safe.
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[Any] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_LiteralBlockDumper: type[Any] = type("_LiteralBlockDumper", (_Dumper,), {})


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    # LLM answers are multi-line text: a literal block keeps them readable. The
    # emitter falls back to a quoted style when a block cannot represent the string.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_LiteralBlockDumper.add_representer(str, _represent_str)


def load_yaml(text: str | bytes) -> Any:
    """Safe-load YAML text.

    Raises:
        yaml.YAMLError: not YAML; `yaml_error_line` says where.
    """
    return yaml.load(text, Loader=_Loader)


ALIAS_PROBLEM: Final = (
    "YAML anchors and aliases (&name, *name) are refused here: this file is never "
    "written with them, and nested ones expand beyond any memory; write each value "
    "out in full"
)


def first_alias_line(text: str) -> int | None:
    """The line (from 1) of the first anchor or alias in `text`, if it has any.

    A few lines of nested aliases (`&a [*b, *b, ...]`) expand into billions of
    nodes; a file the project never writes with aliases (the state) refuses them
    before any data is built. Only the parser's events are read, so nothing is
    expanded, and text with neither `&` nor `*` is not parsed at all.

    Raises:
        yaml.YAMLError: the text is not YAML.
    """
    if "&" not in text and "*" not in text:
        return None
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            line: int = mark.line + 1 if mark is not None else 1
            return line
    return None


def yaml_error_line(error: yaml.YAMLError) -> int | None:
    """The line (from 1) a YAML error points at, when it points at one."""
    mark = getattr(error, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def dump_yaml(data: Any, *, width: int = 100, literal_blocks: bool = True) -> str:
    """YAML text of plain data in block style, keys in insertion order.

    Arguments:
        data: plain data.
        width: the line length past which the emitter folds long strings.
        literal_blocks: write multi-line strings as literal blocks (`|`), readable
            for model answers; the state keeps PyYAML's quoted style.
    """
    dumper = _LiteralBlockDumper if literal_blocks else _Dumper
    return yaml.dump(
        data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=width
    )
