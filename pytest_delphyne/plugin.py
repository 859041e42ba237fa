"""The `pytest11` entry point of pytest-delphyne."""

from __future__ import annotations
