from __future__ import annotations

import contextlib
import io

# In-process pytester runs forget the modules a run imported; numpy (under pandas)
# cannot be imported a second time in one process. Importing it here, before any run,
# keeps it loaded.
import pandas  # noqa: F401

pytest_plugins = ["pytester"]


def _load_matplotlib() -> None:
    # The same for matplotlib: a run that imports half of it (a report's figure) after
    # an earlier test imported the other half mixes two copies of its classes
    # ("Invalid arguments to set_clip_path, of type Rectangle"). A figure saved in
    # every format the report and the comparison write loads all they use.
    with contextlib.suppress(ImportError):
        from matplotlib.figure import Figure

        figure = Figure(layout="constrained")
        figure.add_subplot().plot([0, 1], [0, 1])
        for form in ("png", "svg", "pdf"):
            figure.savefig(io.BytesIO(), format=form)


_load_matplotlib()
