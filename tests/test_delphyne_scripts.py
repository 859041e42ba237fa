"""Experiments written the way Delphyne users write them (SPEC §2, §7).

Delphyne's examples end with an anonymous `Experiment(...).run_cli()` under
`if __name__ == "__main__":`, with the config class in a sibling module; its launcher
test builds the `Experiment` inside a test function and calls `resume(max_workers=2)`.
Both run here unchanged, with and without workers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pytest_delphyne import layout
from pytest_delphyne.shipping import LOCAL_DEFINITION_MESSAGE

# Delphyne's `code2inv_experiments.py`, with its strategy rewritten as a program that
# answers offline.
CODE2INV = """
from __future__ import annotations

import os
from dataclasses import dataclass

from pytest_delphyne import Outcome, Run


def prove_program(env, bench_name, model_cycle):
    env.spend(num_requests=1, num_completions=4, price=0.001)
    if bench_name == "3" and not os.environ.get("FIXED"):
        raise ValueError("no invariant found for " + bench_name)
    # Through the cache: a replay gives back the process that ran it.
    pid = env.compute(os.getpid)
    return Outcome(success=True, values=[f"{bench_name}:{pid}"])


@dataclass
class AbductionConfig:
    bench_name: str
    model_cycle: list[tuple[str, int]]
    temperature: float
    num_completions: int
    max_requests_per_attempt: int
    max_dollar_budget: float
    seed: int

    def instantiate(self, context: object):
        return Run(
            program=prove_program,
            args={"bench_name": self.bench_name, "model_cycle": self.model_cycle},
        )
"""

# Delphyne's `test_abduction_experiment.py`, with `dp` for `pytest_delphyne`.
ABDUCTION = """
import code2inv_experiments as c2i

import pytest_delphyne as dp

configs = [
    c2i.AbductionConfig(
        bench_name=bench,
        model_cycle=[("gpt-4.1-nano", 2), ("gpt-4.1-mini", 1)],
        temperature=1.5,
        num_completions=4,
        max_requests_per_attempt=4,
        max_dollar_budget=0.1,
        seed=0,
    )
    for bench in ["1", "3", "7"]
]

if __name__ == "__main__":
    dp.Experiment(
        config_class=c2i.AbductionConfig,
        configs=configs,
        output_dir=f"test-output/{dp.path_stem(__file__)}",
    ).run_cli()
"""


@pytest.fixture
def abduction(tmp_path: Path) -> Path:
    """The ported example: `code2inv_experiments.py` and the experiment script."""
    (tmp_path / "code2inv_experiments.py").write_text(CODE2INV)
    (tmp_path / "test_abduction_experiment.py").write_text(ABDUCTION)
    return tmp_path


def output_dir(path: Path) -> Path:
    return path / "test-output" / "test_abduction_experiment"


def script(
    path: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "test_abduction_experiment.py", *args],
        cwd=path,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def recorded(path: Path) -> dict[str, tuple[str, str | None]]:
    """Each config's bench, its status and the value its result file holds."""
    out = output_dir(path)
    state = yaml.safe_load((out / layout.STATE_FILE).read_text())
    found: dict[str, tuple[str, str | None]] = {}
    for name, info in state["configs"].items():
        result_file = layout.result_file_path(out, name)
        value = None
        if result_file.exists():
            result = yaml.safe_load(result_file.read_text())["outcome"]["result"]
            value = result["values"][0] if result["values"] else None
        found[info["params"]["bench_name"]] = (info["status"], value)
    return found


@pytest.mark.parametrize("workers", [[], ["--max_workers=2"]], ids=["1", "2"])
def test_anonymous_experiment_under_main_runs_with_run_cli(
    abduction: Path, workers: list[str]
) -> None:
    result = script(abduction, "run", *workers)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 2 passed" in result.stdout
    runs = recorded(abduction)
    assert {bench: status for bench, (status, _) in runs.items()} == {
        "1": "done",
        "3": "failed",
        "7": "done",
    }
    pids = {value.split(":")[1] for _, value in runs.values() if value}
    assert str(os.getpid()) not in pids
    if workers:
        assert "created: 2/2 workers" in result.stdout


def test_anonymous_experiment_retries_and_replays_by_name(abduction: Path) -> None:
    assert script(abduction, "run").returncode == 1
    retried = script(abduction, "run", "--retry_errors=True", env={"FIXED": "1"})
    assert retried.returncode == 0, retried.stdout + retried.stderr
    assert "1 passed, 2 deselected" in retried.stdout
    assert {status for status, _ in recorded(abduction).values()} == {"done"}
    state = yaml.safe_load((output_dir(abduction) / layout.STATE_FILE).read_text())
    name = next(iter(state["configs"]))
    replayed = script(abduction, "replay", name)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert replayed.stdout == f"{name}: replayed, same outcome as recorded\n"


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["1", "2"])
def test_pytest_finds_the_anonymous_experiment_of_a_script(
    pytester: pytest.Pytester, abduction: Path, workers: list[str]
) -> None:
    pytester.chdir()
    result = pytester.runpytest_subprocess(
        f"--delphyne-exp={abduction / 'test_abduction_experiment.py'}",
        f"--rootdir={abduction}",
        "-p",
        "no:cacheprovider",
        *workers,
    )
    result.assert_outcomes(passed=2, failed=1)
    assert sorted(status for status, _ in recorded(abduction).values()) == [
        "done",
        "done",
        "failed",
    ]


# Delphyne's `tests/test_experiment_launcher.py`, its strategies become programs.
LAUNCHER_TEST = """
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import pytest_delphyne as dp


def make_sum(env, allowed, goal):
    env.spend(num_requests=1, price=0.01)
    chosen = []
    for number in sorted(allowed, reverse=True):
        if sum(chosen) + number <= goal:
            chosen.append(number)
    return dp.Outcome(success=sum(chosen) == goal, values=[chosen])


def cached_computations(env, n):
    return [env.compute(pow, 2, i) for i in range(n)]


#####
##### Experiment Examples
#####


@dataclass
class MakeSumConfig:
    allowed: list[int]
    goal: int

    def instantiate(self, context: object):
        return dp.Run(
            program=make_sum,
            args={"allowed": self.allowed, "goal": self.goal},
            budget=dp.Budget(price=0.05),  # Small budget for testing
        )


@dataclass
class CachedComputationsConfig:
    def instantiate(self, context: object):
        return dp.Run(
            program=cached_computations,
            args={"n": 3},
            budget=dp.Budget(price=0),
        )


#####
##### Harness
#####


def _init_worker(msg: str):
    import os

    print(f"Initialized worker ({os.getpid()}): {msg}")


@pytest.mark.parametrize(
    "name,config_class,configs",
    [
        (
            "test_make_sum_experiment",
            MakeSumConfig,
            [
                MakeSumConfig(allowed=[1, 2, 3, 4, 5], goal=5),
                MakeSumConfig(allowed=[9, 6, 2], goal=11),
            ],
        ),
        (
            "test_cached_computation_experiment",
            CachedComputationsConfig,
            [CachedComputationsConfig()],
        ),
    ],
)
def test_experiment_launcher(
    name: str,
    config_class,
    configs: Sequence,
):
    root = Path(__file__).parent
    experiment = dp.Experiment(
        config_class=config_class,
        configs=configs,
        name=name,
        output_dir=f"output/{name}",
        workers_setup=dp.WorkersSetup(
            common=lambda: "Hello World", per_worker=_init_worker
        ),
    )
    experiment.load()
    experiment.get_status()
    if experiment.is_done():
        print("Experiment already completed, replaying all configs...")
        experiment.replay_all_configs()
    else:
        print("Running experiment...")
        experiment.resume(max_workers=2, log_progress=False)
        print("Experiment completed successfully.")
    experiment.get_status()
    assert experiment.is_done()
    experiment.replay_all_configs()
"""


def test_delphynes_launcher_test_passes_twice(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_experiment_launcher=LAUNCHER_TEST)
    first = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    first.assert_outcomes(passed=2)
    out = pytester.path / "output"
    for name, count in [
        ("test_make_sum_experiment", 2),
        ("test_cached_computation_experiment", 1),
    ]:
        state = yaml.safe_load((out / name / layout.STATE_FILE).read_text())
        assert [info["status"] for info in state["configs"].values()] == [
            "done"
        ] * count
    # The second time, every config is done: the test replays them from their caches.
    second = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["*Experiment already completed, replaying*"])


LOCAL_CLASS_SCRIPT = """
from dataclasses import dataclass

from pytest_delphyne import Experiment, Run


def program(env, x):
    return x


def main() -> int:
    @dataclass
    class Config:
        x: int

        def instantiate(self, context):
            return Run(program=program, args={"x": self.x})

    return Experiment(
        config_class=Config, output_dir="out", configs=[Config(1)]
    ).resume(max_workers=2)


if __name__ == "__main__":
    raise SystemExit(main())
"""


def test_config_class_defined_in_a_function_is_refused_when_workers_are_used(
    tmp_path: Path,
) -> None:
    (tmp_path / "exp.py").write_text(LOCAL_CLASS_SCRIPT)
    result = subprocess.run(
        [sys.executable, "exp.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    expected = LOCAL_DEFINITION_MESSAGE.format(
        what="main.<locals>.Config", module="__main__"
    )
    assert expected in result.stdout + result.stderr
    assert not (tmp_path / "out" / layout.CONFIGS_DIR).exists()
