"""Limits on YAML a person may have edited (SPEC §8): a file of a few lines can
nest aliases (`&a [*b, *b, ...]`) that expand into billions of nodes, and a state
file may be any size. Both are refused, naming the file, before any data is built.

The project never writes an anchor or an alias, so the state refuses them outright.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Final

import yaml

if TYPE_CHECKING:
    from pathlib import Path

ALIAS_PROBLEM: Final = (
    "YAML anchors and aliases (&name, *name) are refused here: this file is never "
    "written with them, and nested ones expand beyond any memory; write each value "
    "out in full"
)
MAX_STATE_BYTES: Final = 2 * 1024**3
"""The largest state file read: about 20 times a state of 1,000,000 configs."""
TOO_LARGE_PROBLEM: Final = (
    "{size} bytes, more than the {limit} bytes a state file may hold"
)
_Parser: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def first_alias_line(text: str) -> int | None:
    """The line (1-based) of the first anchor or alias in `text`, if it has any.

    Only the parser's events are read, so nothing is expanded. Text with neither `&`
    nor `*` (every state the project writes, unless a value holds one) skips the
    parse.

    Raises:
        yaml.YAMLError: the text is not YAML.
    """
    if "&" not in text and "*" not in text:
        return None
    for event in yaml.parse(text, Loader=_Parser):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            mark = event.start_mark
            line: int = mark.line + 1 if mark is not None else 1
            return line
    return None


def size_problem(path: Path) -> str | None:
    """Why the file at `path` is too large to read as a state, if it is."""
    try:
        size = os.stat(path).st_size
    except OSError:
        return None  # reading it will say what is wrong
    if size > MAX_STATE_BYTES:
        return TOO_LARGE_PROBLEM.format(size=size, limit=MAX_STATE_BYTES)
    return None
