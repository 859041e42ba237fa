"""An experiment sent to the xdist workers when they cannot find it by name.

Delphyne's users build their `Experiment` where no import finds it: anonymously under
`if __name__ == "__main__":` (`Experiment(...).run_cli()`), or inside a function that
calls `resume()`. The controller then pickles the experiment and sends it down with
the plans; a worker unpickles it once pytest has imported the experiment file, so the
config class, `per_worker` and the other module-level objects the pickle names are
found the way the worker finds the file itself, on this machine or another.

What the controller alone uses stays behind: `config_naming` (the plan carries the
names), `configs` (the plan carries the params), `WorkersSetup.common` (it ran on
the controller) and what it cached (the state store). Objects of the script run as
`__main__` travel by their qualified name and are looked up in the worker's import of
that file. A class or function
defined inside a function, or a lambda, cannot be found by a worker: that, and only
that, is refused before anything runs.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import pickle
import types
from typing import TYPE_CHECKING, Any

from pytest_delphyne.errors import DelphyneError
from pytest_delphyne.experiment import Experiment
from pytest_delphyne.roster import Roster

if TYPE_CHECKING:
    from types import ModuleType

LOCAL_DEFINITION_MESSAGE = (
    "{what} (module {module}) is defined inside a function or is a lambda, so xdist "
    "workers cannot import it; define it at the top level of its module"
)
UNSHIPPABLE_MESSAGE = "the experiment cannot be sent to xdist workers: {error}"

_MAIN = "__main__"


class ShippingError(DelphyneError):
    """An experiment that xdist workers could not receive (the message says why)."""


def _never_called() -> None:
    # Stands for `WorkersSetup.common` on workers, which never call it.
    raise AssertionError("WorkersSetup.common runs on the controller only")


def _is_local(obj: object) -> bool:
    qualname = getattr(obj, "__qualname__", "")
    return "<locals>" in qualname or "<lambda>" in qualname


class _ExperimentPickler(pickle.Pickler):
    def persistent_id(self, obj: Any) -> Any:
        if not isinstance(obj, type | types.FunctionType):
            return None
        if _is_local(obj):
            raise ShippingError(
                LOCAL_DEFINITION_MESSAGE.format(
                    what=obj.__qualname__, module=obj.__module__
                )
            )
        if obj.__module__ == _MAIN:
            return (_MAIN, obj.__qualname__)
        return None


class _ExperimentUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, script: ModuleType):
        super().__init__(io.BytesIO(data))
        self.script = script

    def persistent_load(self, pid: Any) -> Any:
        _, qualname = pid
        found: Any = self.script
        for part in qualname.split("."):
            found = getattr(found, part)
        return found


def dump_experiment(experiment: Experiment[Any]) -> bytes:
    """Pickle what a worker needs of `experiment` (see the module docstring).

    Raises:
        ShippingError: a part of it cannot reach a worker; the message names it.
    """
    shipped = copy.copy(experiment)
    shipped.configs = None
    shipped.config_naming = None
    # What `load()` remembered is the controller's: a worker starts afresh.
    shipped._roster = Roster()
    # What the controller computed and cached (the state store) is rebuilt on demand.
    for name, attribute in vars(Experiment).items():
        if isinstance(attribute, functools.cached_property):
            vars(shipped).pop(name, None)
    if shipped.workers_setup is not None:
        shipped.workers_setup = dataclasses.replace(
            shipped.workers_setup, common=_never_called
        )
    buffer = io.BytesIO()
    try:
        _ExperimentPickler(buffer).dump(shipped)
    except ShippingError:
        raise
    except Exception as error:
        raise ShippingError(UNSHIPPABLE_MESSAGE.format(error=error)) from error
    return buffer.getvalue()


def load_experiment(data: bytes, script: ModuleType) -> Experiment[Any]:
    """The experiment `dump_experiment` pickled, with the objects of the script run
    as `__main__` taken from `script`, the worker's import of the same file."""
    # The bytes were pickled by this session's controller and sent down the execnet
    # channel it opened itself; nothing here was read from disk.
    experiment = _ExperimentUnpickler(data, script).load()
    if not isinstance(experiment, Experiment):
        raise ShippingError(UNSHIPPABLE_MESSAGE.format(error="not an Experiment"))
    return experiment
