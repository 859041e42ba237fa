from __future__ import annotations

# In-process pytester runs forget the modules a run imported; numpy (under pandas)
# cannot be imported a second time in one process. Importing it here, before any run,
# keeps it loaded.
import pandas  # noqa: F401

pytest_plugins = ["pytester"]
