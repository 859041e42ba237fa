"""The base class of every error pytest-delphyne reports to its users."""

from __future__ import annotations


class DelphyneError(Exception):
    """An error caused by the user's input or environment, with a message naming the
    culprit (a file, a config, a field). Subclasses live where they are raised."""


class EndpointError(DelphyneError):
    """A service the programs need cannot serve this session: it cannot be reached,
    it refuses the key (or none was given), or it does not know the model.

    This is the environment's fault, not a config's: the session stops at once with
    this one-line message (which names the endpoint and what to fix), and the config
    that met it stays `todo`, as do those not started. A program may raise it too,
    for a service of its own.
    """
