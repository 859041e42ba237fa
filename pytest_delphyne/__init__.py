"""pytest-delphyne: run a grid of oracular-program configurations as pytest items."""

from __future__ import annotations

from pytest_delphyne.layout import path_stem

__all__ = [
    "path_stem",
]
