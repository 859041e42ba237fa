"""PyYAML's block layout, written directly (`block_yaml`).

The state (`experiment.yaml`) and each config's `result.yaml` are written for people
and read back by PyYAML. `yaml.dump` costs about 10 times more than writing its layout
by hand, which matters at 100,000 configs (the fold) and once per config (the result).
This writer covers the data they hold; anything else (other types, long keys, lines
PyYAML would fold) is left to `yaml.dump`, and the tests hold both to the same text.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, cast

import yaml


def block_yaml(
    data: Mapping[str, Any], *, max_line: int | None = None, multiline: bool = True
) -> str | None:
    """YAML text of plain data (and datetimes) in PyYAML's block layout, written
    directly: what `yaml.dump(data, sort_keys=False, allow_unicode=True)` writes for
    ordinary data, without its 10x cost.

    Arguments:
        data: the mapping to write.
        max_line: give up when a line would be longer (PyYAML folds long lines).
        multiline: whether strings with line breaks may be written (double-quoted);
            with `False`, give up on them, for callers whose dumper writes them as
            literal blocks.

    Returns:
        The text, or `None` for data it leaves to `yaml.dump`: other types, keys that
        are not short strings, and the cases above.
    """
    try:
        text = _BlockWriter(multiline).document(data)
    except _NotWritable:
        return None
    if max_line is not None and any(len(line) > max_line for line in text.split("\n")):
        return None
    return text


class _NotWritable(Exception):
    pass


# Strings written without quotes: a conservative subset of YAML's plain scalars,
# further checked against the resolver (so `yes`, `12` or `null` get quotes).
_PLAIN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.+/=(),-]| (?=[A-Za-z0-9_.+/=(),-]))*")
# PyYAML's resolver is untyped; this is the signature it has.
_resolve = cast(
    "Callable[[type[yaml.Node], str, tuple[bool, bool]], str]",
    yaml.resolver.Resolver().resolve,
)


def _resolved_tag(text: str) -> str:
    # The tag PyYAML's loader gives `text` written as a plain scalar.
    return _resolve(yaml.ScalarNode, text, (True, False))


_STR_TAG = "tag:yaml.org,2002:str"
# PyYAML's simple keys are at most 128 characters; longer ones need `? key`.
_MAX_SIMPLE_KEY = 128


_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _double_quoted(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in '"\\':
            out.append("\\" + char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code < 0x100:
            out.append(f"\\x{code:02X}")
        elif code < 0x10000:
            out.append(f"\\u{code:04X}")
        else:
            out.append(f"\\U{code:08X}")
    out.append('"')
    return "".join(out)


# Keys and common values (field names, model names) recur in every file written:
# their quoting is decided once per process.
@functools.lru_cache(maxsize=4096)
def _written_string(text: str) -> str | None:
    """`text` as a plain or single-quoted scalar; None when it needs double quotes."""
    if _PLAIN.fullmatch(text) and (_resolved_tag(text) == _STR_TAG):
        return text
    if text.isprintable():
        return "'" + text.replace("'", "''") + "'"
    return None


class _BlockWriter:
    """Writes plain data as PyYAML's block style would, with one indent of 2."""

    def __init__(self, multiline: bool = True) -> None:
        self.lines: list[str] = []
        self.strings: dict[str, str] = {}
        self.multiline = multiline

    def document(self, data: Mapping[str, Any]) -> str:
        self.mapping(data, "")
        self.lines.append("")
        return "\n".join(self.lines)

    def string(self, text: str) -> str:
        written = self.strings.get(text)
        if written is None:
            written = _written_string(text)
            if written is None:
                if not self.multiline and ("\n" in text or "\r" in text):
                    raise _NotWritable
                written = _double_quoted(text)
            self.strings[text] = written
        return written

    def scalar(self, value: object) -> str | None:
        # The text of a scalar or empty collection; None for a non-empty collection.
        # Exact types only: subclasses (enums, say) are left to PyYAML.
        kind = type(value)
        if kind is str:
            return self.string(cast("str", value))
        if value is None:
            return "null"
        if kind is bool:
            return "true" if value else "false"
        if kind is int:
            return str(value)
        if kind is float:
            number = cast("float", value)
            if number != number:
                return ".nan"
            if number in (math.inf, -math.inf):
                return ".inf" if number > 0 else "-.inf"
            # As PyYAML's representer: YAML 1.1 floats need a dot (1e+20 is a str).
            text = repr(number).lower()
            if "." not in text and "e" in text:
                text = text.replace("e", ".0e", 1)
            return text
        if kind is dict or kind is list or kind is tuple:
            return None if value else ("{}" if kind is dict else "[]")
        if kind is datetime:
            # As PyYAML's representer: a timestamp.
            return cast("datetime", value).isoformat(" ")
        raise _NotWritable

    def mapping(self, data: Mapping[Any, Any], indent: str) -> None:
        lines = self.lines
        for key, value in data.items():
            if type(key) is not str or len(key) >= _MAX_SIMPLE_KEY:
                raise _NotWritable
            head = f"{indent}{self.string(key)}:"
            text = self.scalar(value)
            if text is not None:
                lines.append(f"{head} {text}")
            elif type(value) is dict:
                lines.append(head)
                self.mapping(value, indent + "  ")
            else:
                lines.append(head)
                # PyYAML does not indent a sequence that is a mapping's value.
                self.sequence(value, indent)

    def sequence(self, items: list[Any] | tuple[Any, ...], indent: str) -> None:
        lines = self.lines
        for value in items:
            text = self.scalar(value)
            if text is not None:
                lines.append(f"{indent}- {text}")
                continue
            first = len(lines)
            if type(value) is dict:
                self.mapping(value, indent + "  ")
            else:
                self.sequence(value, indent + "  ")
            # The first line of the nested block goes on the dash's line.
            lines[first] = f"{indent}- {lines[first][len(indent) + 2 :]}"
