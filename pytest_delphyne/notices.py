"""What a running config says before it ends, shown as it happens.

A config may wait a long time on something outside it (a request retried again and
again); `env.notice` says so at once. On the controller each notice is one line on the
terminal, under `-q` too. An xdist worker's own output never reaches the terminal: its
notices go up a channel of their own that the controller opens for each worker
(`workers.py`) and written by the controller, one line each.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any, Final

import pytest

NOTICE_LINE: Final = "delphyne: {config}: {message}"

Notify = Callable[[str, str], None]
"""Takes a config's name and its notice."""

notices_key = pytest.StashKey[Notify]()
"""Where this process's notices go: `env.notice` of each config it runs."""


class TerminalNotices:
    """The controller's notices, written on its terminal.

    Configs run in threads (`--delphyne-concurrency`), and a worker's notices arrive
    in execnet's receiving thread: one line is written at a time.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self._lock = threading.Lock()

    def show(self, config_name: str, message: str) -> None:
        """Write the notice of `config_name`, as one line."""
        reporter: Any = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        capture: Any = self.config.pluginmanager.get_plugin("capturemanager")
        # A config running in this process has its output captured: the line is
        # for the terminal, not for the config's captured output.
        suspended = (
            capture.global_and_fixture_disabled()
            if capture is not None
            else contextlib.nullcontext()
        )
        line = NOTICE_LINE.format(config=config_name, message=message)
        with self._lock, suspended:
            reporter.write_line(line)


def channel_notices(channel: Any) -> Notify:
    """A worker's notices, sent up `channel` (an execnet channel the controller
    opened) to the controller's `TerminalNotices`."""

    def send(config_name: str, message: str) -> None:
        # The controller may be gone: the config goes on, its log records the rest.
        with contextlib.suppress(OSError):
            channel.send((config_name, message))

    return send
