"""The base class of every error pytest-delphyne reports to its users."""

from __future__ import annotations


class DelphyneError(Exception):
    """An error caused by the user's input or environment, with a message naming the
    culprit (a file, a config, a field). Subclasses live where they are raised."""
