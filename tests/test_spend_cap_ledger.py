"""The spend cap reads the ledger of paid calls (SPEC §3: one record of what was
paid): a worker counts what a config in flight on another worker already paid."""

from __future__ import annotations

import pytest
import yaml
from test_workers import _can_unshare_mounts, hidden_output_python

from pytest_delphyne import layout
from pytest_delphyne.ledger import read_payments

# x1 pays the whole cap, then goes on for three seconds; every other config waits
# until x1 has paid (at most 30 s), then pays 0.1 and ends.
EXPERIMENT = """
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_delphyne import Experiment, Outcome, Run

HERE = Path(__file__).parent


def program(env, x):
    with (HERE / "ran.txt").open("a") as ran:
        ran.write(f"x{x}\\n")
    if x == 1:
        env.spend(price=1.0)
        (HERE / "x1-paid.txt").touch()
        time.sleep(3)
    else:
        deadline = time.monotonic() + 30
        while not (HERE / "x1-paid.txt").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        env.spend(price=0.1)
    return Outcome(success=True, values=[x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={"x": self.x})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range(1, 9)],
    config_naming=lambda config, uuid: f"x{config.x}",
)
"""


def test_worker_counts_what_a_config_in_flight_on_another_worker_paid(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py", "--delphyne-max-price=1.0", "-n", "2", "-rs"
    )
    ran = (pytester.path / "ran.txt").read_text().split()
    # x1 paid the cap while in flight: the other worker ends the config it had
    # started (waiting for x1's payment), if any, and starts no other, although
    # x1 goes on for seconds and the worker itself paid 0.1 at most.
    assert "x1" in ran
    assert len(ran) <= 2, ran
    result.stdout.fnmatch_lines(["*session spend cap of 1.0 reached*"])
    state = yaml.safe_load((pytester.path / "out" / layout.STATE_FILE).read_text())
    statuses = {name: info["status"] for name, info in state["configs"].items()}
    assert statuses == {
        f"x{x}": "done" if f"x{x}" in ran else "todo" for x in range(1, 9)
    }
    # The ledger the cap read is the experiment's: every payment, once.
    payments = read_payments(pytester.path / "out")
    assert sorted(payment.config for payment in payments) == sorted(ran)
    assert len({payment.session for payment in payments}) == 1


@pytest.mark.skipif(
    not _can_unshare_mounts(), reason="needs `unshare -m` (root, mount namespaces)"
)
def test_worker_that_cannot_see_the_ledger_counts_what_it_paid_itself(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(exp=EXPERIMENT)
    (pytester.path / "x1-paid.txt").touch()  # the others need not wait for x1
    hidden_python = hidden_output_python(pytester.path, pytester.path / "out")
    result = pytester.runpytest_subprocess(
        "--delphyne-exp=exp.py",
        "--delphyne-max-price=1.0",
        "-d",
        "--tx",
        f"popen//python={hidden_python}",
        "-rs",
    )
    # One worker, in order: x1 pays the cap, and the worker starts nothing after.
    assert (pytester.path / "ran.txt").read_text().split() == ["x1"]
    result.stdout.fnmatch_lines(["*session spend cap of 1.0 reached*"])
    # Its ledger lines travelled back with x1's files.
    payments = read_payments(pytester.path / "out")
    assert [(payment.config, payment.spent) for payment in payments] == [
        ("x1", {"price": 1.0})
    ]
