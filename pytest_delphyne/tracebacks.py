"""The frames of a traceback that belong to the user's code.

A user debugs their program, not this plugin, pytest's runner or the import
machinery: a failure, `exception.txt`, a broken experiment file and Ctrl-C show the
user's frames only (as pytest hides its own with `__tracebackhide__`).
"""

from __future__ import annotations

import os
import traceback
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

PACKAGE_DIR = str(Path(__file__).resolve().parent) + os.sep
"""The directory of this plugin's modules: no frame in it is the user's."""


def is_hidden_file(filename: str, hidden_dirs: Iterable[str]) -> bool:
    """Whether a frame of `filename` is one of `hidden_dirs`' (or Python's frozen
    import machinery)."""
    if filename.startswith("<frozen "):
        return True
    resolved = os.path.realpath(filename)
    return any(resolved.startswith(directory) for directory in hidden_dirs)


def format_user_frames(
    error: BaseException, hidden_dirs: Iterable[str] = (PACKAGE_DIR,)
) -> str:
    """`error`, formatted as Python does, without the frames of `hidden_dirs` (in
    the chained exceptions too). A syntax error keeps its file and line."""
    hidden = tuple(hidden_dirs)
    formatted = traceback.TracebackException.from_exception(error)
    seen: set[int] = set()
    pending: list[traceback.TracebackException | None] = [formatted]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.stack = traceback.StackSummary.from_list(
            [
                frame
                for frame in current.stack
                if not is_hidden_file(frame.filename, hidden)
            ]
        )
        pending.extend((current.__cause__, current.__context__))
    return "".join(formatted.format())


def without_plugin_frames(tb: TracebackType | None) -> TracebackType | None:
    """`tb` rebuilt without this plugin's frames, each frame with a line number (a
    frame interrupted mid-instruction may have none, which pytest's report of a
    Ctrl-C cannot take)."""
    kept: list[tuple[TracebackType, int]] = []
    while tb is not None:
        if not is_hidden_file(tb.tb_frame.f_code.co_filename, (PACKAGE_DIR,)):
            lineno = tb.tb_lineno
            if lineno is None:
                lineno = tb.tb_frame.f_lineno or tb.tb_frame.f_code.co_firstlineno
            kept.append((tb, lineno))
        tb = tb.tb_next
    rebuilt: TracebackType | None = None
    for entry, lineno in reversed(kept):
        rebuilt = TracebackType(rebuilt, entry.tb_frame, entry.tb_lasti, lineno)
    return rebuilt
