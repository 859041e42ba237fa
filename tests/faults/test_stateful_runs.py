"""Random sequences of runs, kills, stalls, Ctrl-C, deleted locks and hand edits on
one experiment, checked after every step (SPEC §3 and §4): no finished config lost,
no recorded call paid twice, the paid totals equal to the side file that counts every
real paid call, and every command still working.

hypothesis's rule-based state machine draws the sequences and shrinks a failing one
to its shortest form. The quick profile runs a few short sequences; the slow one
(`-m slow`) many longer ones. Real processes, real signals.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from faults.harness import (
    cached_calls,
    kill_group,
    process_exists,
    run,
    start,
    statuses,
    wait_for,
)
from faults.ledger_harness import paid_calls, paying_experiment
from pytest_delphyne import layout
from pytest_delphyne.ledger import read_payments, total_paid
from pytest_delphyne.runtime import ResultFileError, read_result

CONFIGS = 8
# A person adds configs to the experiment file, a few at a time, up to this many.
MOST_CONFIGS = 40
MORE_CONFIGS = 4
DELAY = 0.05
QUICK = settings(
    max_examples=2,
    stateful_step_count=3,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
LONG = settings(QUICK, max_examples=8, stateful_step_count=6, derandomize=False)

# What the machines measured, for the README's figures (see the faults' conftest).
measured: Counter[str] = Counter()

WORKERS = st.sampled_from([(), ("-n", "2")])
MOMENT = st.integers(min_value=1, max_value=CONFIGS)


def python_command(
    directory: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "exp.py", *args],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class RunsAndMistakes(RuleBasedStateMachine):
    """One experiment in a fresh directory, and what a person and a machine do to it."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="delphyne-stateful-"))
        self.configs = CONFIGS
        (self.directory / "exp.py").write_text(paying_experiment(self.configs, DELAY))
        self.out = self.directory / "out"
        # Calls recorded in a cache: none may be paid again.
        self.recorded: set[str] = set()
        self.paid_before: Counter[str] = Counter()
        measured["sequences"] += 1

    def teardown(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)

    def _start(self, workers: tuple[str, ...]) -> subprocess.Popen[str]:
        """A run to interrupt, with configs to pay for: once every call is paid, a
        person adds configs to the grid, as between two sessions of an experiment
        (else most sequences would soon have nothing left to interrupt)."""
        if self._unpaid() == 0 and self.configs < MOST_CONFIGS:
            added = min(MORE_CONFIGS, MOST_CONFIGS - self.configs)
            self.configs += added
            (self.directory / "exp.py").write_text(
                paying_experiment(self.configs, DELAY)
            )
            measured["configs added"] += added
        return start(self.directory, *workers, "-p", "no:cacheprovider")

    def _unpaid(self) -> int:
        return self.configs - len(cached_calls(self.out))

    def _moment(self, after: int) -> int:
        """The drawn moment, as a payment that will come: a run pays only for the
        calls no cache holds, and a moment past the last of them would find the
        run ended (a kill, a stall or a Ctrl-C drawn there would try nothing)."""
        unpaid = self._unpaid()
        return 1 + (after - 1) % unpaid if unpaid > 0 else after

    def _wait_for_payments(self, process: subprocess.Popen[str], count: int) -> None:
        # Moments are counted in payments the ledger holds, not in the side file's
        # lines: a kill timed on the side file lands in the instant between a paid
        # answer and its ledger line, which no record written after the answer
        # can cover (README, Reliability).
        before = len(read_payments(self.out))
        count = self._moment(count)
        wait_for(
            lambda: (
                len(read_payments(self.out)) >= before + count
                or process.poll() is not None
            )
        )

    def _end(self, process: subprocess.Popen[str]) -> None:
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            kill_group(process)
            pytest.fail("a run did not end")

    @rule(workers=WORKERS, option=st.sampled_from(["", "--lf", "--delphyne-replay"]))
    def run_to_the_end(self, workers: tuple[str, ...], option: str) -> None:
        done = run(self.directory, *workers, *([option] if option else []))
        measured["runs"] += 1
        # A replay whose outcome differs would fail (exit 1): none may differ.
        assert done.returncode in (0, 5), done.stdout + done.stderr

    @rule(workers=WORKERS, after=MOMENT)
    def kill_at_a_random_moment(self, workers: tuple[str, ...], after: int) -> None:
        process = self._start(workers)
        self._wait_for_payments(process, after)
        if process.poll() is None:
            kill_group(process)
            measured["kills"] += 1

    @rule(after=st.integers(min_value=1, max_value=3), stall=st.floats(0.2, 1.5))
    def stall_then_kill(self, after: int, stall: float) -> None:
        process = self._start(("-n", "2"))
        self._wait_for_payments(process, after)
        if process.poll() is not None:
            return  # the run finished first: nothing left to stall
        # The controller stops (a laptop lid, a debugger); its workers go on.
        os.kill(process.pid, signal.SIGSTOP)
        time.sleep(stall)
        kill_group(process)
        measured["stalls"] += 1

    @rule(workers=WORKERS, after=MOMENT)
    def ctrl_c(self, workers: tuple[str, ...], after: int) -> None:
        process = self._start(workers)
        self._wait_for_payments(process, after)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        self._end(process)
        measured["ctrl-c"] += 1

    @rule(after=MOMENT)
    def delete_the_lock_during_a_run(self, after: int) -> None:
        process = self._start(())
        self._wait_for_payments(process, after)
        # A person tidying up the hidden files, where older versions kept the lock.
        for hidden in self.out.glob(".*"):
            hidden.unlink(missing_ok=True)
        second = run(self.directory)
        if process.poll() is None:
            # Still running, so the second run must have been refused.
            assert second.returncode == pytest.ExitCode.USAGE_ERROR, second.stdout
        self._end(process)
        measured["locks deleted"] += 1

    @rule(
        edit=st.sampled_from(["delete a config", "done to todo", "describe"]),
        after=MOMENT,
    )
    def hand_edit_during_a_run(self, edit: str, after: int) -> None:
        process = self._start(())
        self._wait_for_payments(process, after)
        state_file = self.out / layout.STATE_FILE
        state = yaml.safe_load(state_file.read_text())
        configs = state["configs"]
        if edit == "delete a config" and configs:
            del configs[sorted(configs)[after % len(configs)]]
        elif edit == "done to todo":
            for info in configs.values():
                if info["status"] == "done":
                    info["status"] = "todo"
                    break
        else:
            state["description"] = f"edited after {after} payments"
        state_file.write_text(yaml.safe_dump(state, sort_keys=False))
        self._end(process)
        measured["hand edits"] += 1

    @invariant()
    def nothing_lost_nothing_paid_twice_every_cent_counted(self) -> None:
        wait_for(lambda: not any(map(process_exists, self._program_pids())), 60)
        status = python_command(self.directory, "status")
        assert status.returncode == 0, status.stdout + status.stderr
        plan = run(self.directory, "--co", "-q")
        assert plan.returncode in (0, 5), plan.stdout + plan.stderr

        paid = paid_calls(self.directory)
        paid_twice = [name for name in self.recorded if paid[name] > 1]
        measured["calls paid twice"] += len(paid_twice)
        assert paid_twice == []
        cached = cached_calls(self.out)
        self.recorded |= cached

        ledger = total_paid(read_payments(self.out))
        measured["totals off"] += int(abs(ledger.get("num_requests", 0) - paid.total()))
        assert ledger.get("num_requests", 0) == paid.total()

        found = statuses(self.out)
        on_disk = self._results_on_disk()
        lost = [name for name in on_disk if found[name] != "done"]
        measured["configs lost"] += len(lost)
        assert lost == []
        # A finished config's paid call is in its cache: the check of calls paid
        # twice above has every finished config to watch.
        assert set(on_disk) <= cached, sorted(set(on_disk) - cached)

    def _program_pids(self) -> list[int]:
        path = self.directory / "pids.txt"
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def _results_on_disk(self) -> list[str]:
        configs = self.out / layout.CONFIGS_DIR
        found = []
        for directory in configs.iterdir() if configs.exists() else []:
            try:
                result = read_result(directory)
            except ResultFileError:
                continue
            found.append((directory.name, result.params))
        state = yaml.safe_load((self.out / layout.STATE_FILE).read_text())["configs"]
        # A result whose params are not the state's (a config deleted by hand, and
        # added again) is not this config's.
        return [
            name
            for name, params in found
            if name in state and state[name]["params"] == params
        ]


def test_random_runs_and_mistakes_lose_nothing_and_count_every_cent(
    figures: Counter[str],
) -> None:
    measured.clear()
    run_state_machine_as_test(RunsAndMistakes, settings=QUICK)
    figures.update(measured)


@pytest.mark.slow
# Eight sequences of up to six real runs each: about 3 minutes on an idle machine,
# past the suite's default limit on a busy one.
@pytest.mark.timeout(1200)
def test_many_long_sequences_of_runs_and_mistakes(figures: Counter[str]) -> None:
    measured.clear()
    run_state_machine_as_test(RunsAndMistakes, settings=LONG)
    figures.update(measured)
