"""The traceback a failed config's item shows: the frames of the user's program.

pytest shows a test's frames, its own hidden; a config's failure passes through
pytest's runner, pluggy's hook calls and this plugin before it reaches the program,
and through the model client's library after it: none of those frames is the user's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy
import pytest

from pytest_delphyne.tracebacks import PACKAGE_DIR, is_hidden_file

if TYPE_CHECKING:
    from _pytest._code.code import Traceback, TracebackEntry

_MODEL_CLIENT_FILE = Path(PACKAGE_DIR) / "models.py"
_RUNNER_DIRS = (
    PACKAGE_DIR,
    str(Path(pytest.__file__).resolve().parent.parent / "_pytest") + os.sep,
    str(Path(pluggy.__file__).resolve().parent) + os.sep,
)


def _is_runner_frame(entry: TracebackEntry) -> bool:
    return is_hidden_file(str(entry.path), _RUNNER_DIRS)


def _is_model_client_frame(entry: TracebackEntry) -> bool:
    return Path(entry.path).resolve() == _MODEL_CLIENT_FILE


def program_traceback(traceback: Traceback) -> Traceback:
    """The frames of the user's code: without this plugin's, pytest's and pluggy's
    (those between the program and a function it gave `env.compute` included), and
    none from the model client's call on (the client library's frames hold the
    request's credentials as arguments).

    The user debugs their program, not pytest's runner, this plugin or the client.
    """
    for index, entry in enumerate(traceback):
        if _is_model_client_frame(entry):
            # The program's frame that asked the model is the last one shown.
            traceback = traceback[:index] or traceback
            break
    return traceback.filter(lambda entry: not _is_runner_frame(entry)) or traceback
