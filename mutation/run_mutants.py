"""Mutation testing of the modules where a bug costs money or results, with cosmic-ray.

cosmic-ray writes each mutant into the module's file on disk and runs a test command,
so the mutant is what every process of a test imports: pytester's in-process runs,
`runpytest_subprocess`, xdist workers and `python exp.py` alike. It does that in a
scratch copy of the project, put first on `PYTHONPATH`, never in the working tree.

Each module runs only the test files `scope.toml` maps it to, with the operators
`scope.toml` keeps. Surviving mutants listed in `equivalent.toml` (no test can tell
them from the original) are left out of the score. The command exits 1 when a
non-equivalent mutant survives or the score is under `--min-score`.

    python mutation/run_mutants.py --jobs 2                   # every module, 2 at once
    python mutation/run_mutants.py --module pytest_delphyne/lock.py
    python mutation/run_mutants.py --changed-since origin/main --min-score 90
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCOPE_FILE = HERE / "scope.toml"
EQUIVALENT_FILE = HERE / "equivalent.toml"
UNKNOWN_MODULE_MESSAGE = "{module} is not in {scope}: add it there with its test files"
BASELINE_FAILED_MESSAGE = "the tests of {module} fail without any mutant:\n{output}"


@dataclass(frozen=True)
class Mutant:
    """One mutant's place, operator and what its tests made of it."""

    module: str
    line: int
    source_line: str
    operator: str
    occurrence: int
    outcome: str
    diff: str

    def describe(self) -> str:
        return f"{self.module}:{self.line} {self.operator} #{self.occurrence}"


@dataclass
class ModuleReport:
    """The mutants of one module, by outcome."""

    module: str
    killed: list[Mutant] = field(default_factory=list)
    survived: list[Mutant] = field(default_factory=list)
    equivalent: list[tuple[Mutant, str]] = field(default_factory=list)
    minutes: float = 0.0


def load_equivalents() -> list[dict[str, str]]:
    if not EQUIVALENT_FILE.exists():
        return []
    entries: list[dict[str, str]] = tomllib.loads(EQUIVALENT_FILE.read_text()).get(
        "mutant", []
    )
    return entries


def equivalence_reason(mutant: Mutant, equivalents: list[dict[str, str]]) -> str | None:
    # Matched by the line's text, not its number: unrelated edits above it move it.
    for entry in equivalents:
        if (
            entry["module"] in ("*", mutant.module)
            and entry["operator"] == mutant.operator
            and entry["line"].strip() == mutant.source_line
            and entry.get("occurrence", mutant.occurrence) == mutant.occurrence
        ):
            return entry["reason"]
    return None


def copy_project(destination: Path) -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def mutant_timeout(baseline_seconds: float, scope: dict[str, Any]) -> float:
    # A mutant that loops forever would hold the run for the whole of scope's
    # timeout: ten times the unmutated tests' time is past any slowdown a busy
    # machine causes, and a minute is past pytest's start on one.
    limit = float(scope["run"]["timeout"])
    return min(limit, max(60.0, 10.0 * baseline_seconds))


def cosmic_ray_config(
    module: str, tests: list[str], scope: dict[str, Any], timeout: float
) -> str:
    test_command = " ".join(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    )
    exclude = ", ".join(json.dumps(regex) for regex in scope["operators"]["exclude"])
    return (
        "[cosmic-ray]\n"
        f"module-path = {json.dumps(module)}\n"
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f"test-command = {json.dumps(test_command)}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = [{exclude}]\n"
    )


def run_module(
    module: str, tests: list[str], scope: dict[str, Any], work: Path
) -> ModuleReport:
    begun = time.monotonic()
    project = work / "project"
    copy_project(project)
    temporary = work / "tmp"
    temporary.mkdir()
    # TMPDIR: the tests' own files (pytest's basetemp) go beside the scratch copy.
    env = {**os.environ, "PYTHONPATH": str(project), "TMPDIR": str(temporary)}
    # The tests must import the scratch copy (the one being mutated), in every
    # process they start, not the installed working tree.
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import pytest_delphyne; print(pytest_delphyne.__file__)",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not imported.startswith(str(project)):
        raise SystemExit(f"the scratch copy is not what imports: {imported}")
    started = time.monotonic()
    baseline = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    if baseline.returncode != 0:
        raise SystemExit(
            BASELINE_FAILED_MESSAGE.format(
                module=module, output=baseline.stdout[-3000:]
            )
        )
    config = work / "cosmic-ray.toml"
    timeout = mutant_timeout(time.monotonic() - started, scope)
    config.write_text(cosmic_ray_config(module, tests, scope, timeout))
    session = work / "session.sqlite"
    for command in (
        ["cosmic-ray", "init", str(config), str(session)],
        ["cr-filter-operators", str(session), str(config)],
        ["cosmic-ray", "exec", str(config), str(session)],
    ):
        subprocess.run(command, cwd=project, env=env, check=True)
    dump = subprocess.run(
        ["cosmic-ray", "dump", str(session)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = classify(module, dump, load_equivalents())
    report.minutes = (time.monotonic() - begun) / 60
    return report


def classify(module: str, dump: str, equivalents: list[dict[str, str]]) -> ModuleReport:
    source_lines = (ROOT / module).read_text().splitlines()
    report = ModuleReport(module)
    for line in dump.splitlines():
        item, result = json.loads(line)
        if result is None or result["worker_outcome"] == "skipped":
            continue
        (mutation,) = item["mutations"]
        line_number = mutation["start_pos"][0]
        mutant = Mutant(
            module=module,
            line=line_number,
            source_line=source_lines[line_number - 1].strip(),
            operator=mutation["operator_name"],
            occurrence=mutation["occurrence"],
            outcome=result["test_outcome"] or result["worker_outcome"],
            diff=result.get("diff") or "",
        )
        if mutant.outcome != "survived":
            # Killed, incompetent (does not import) or timed out: the tests noticed.
            report.killed.append(mutant)
        elif (reason := equivalence_reason(mutant, equivalents)) is not None:
            report.equivalent.append((mutant, reason))
        else:
            report.survived.append(mutant)
    return report


def scratch_root() -> str | None:
    # The tests fsync every state write: on a disk shared with other work, each
    # mutant's run waits on the disk far longer than it computes. In memory, an
    # fsync costs nothing, and the tests do not depend on durability.
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


def changed_modules(modules: list[str], since: str) -> list[str]:
    """The modules whose working-tree text differs from their text at `since`.

    Raises:
        SystemExit: `since` is not a commit of this clone (a shallow CI clone may
            lack the base branch), with git's own one-line reason.
    """
    diff = subprocess.run(
        ["git", "diff", "--name-only", since, "--", *modules],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if diff.returncode != 0:
        reason = (diff.stderr.strip().splitlines() or ["git diff failed"])[0]
        raise SystemExit(f"--changed-since {since}: {reason}")
    changed = diff.stdout.split()
    return [module for module in modules if module in changed]


def score(killed: int, survived: int) -> float:
    total = killed + survived
    return 100.0 if total == 0 else 100.0 * killed / total


def print_reports(reports: list[ModuleReport]) -> float:
    print(
        f"{'module':40} {'mutants':>7} {'killed':>6} {'survived':>8} {'equiv':>5} "
        f"{'minutes':>7}"
    )
    for report in reports:
        total = len(report.killed) + len(report.survived) + len(report.equivalent)
        print(
            f"{report.module:40} {total:7} {len(report.killed):6} "
            f"{len(report.survived):8} {len(report.equivalent):5} "
            f"{report.minutes:7.1f}"
        )
    killed = sum(len(report.killed) for report in reports)
    survived = sum(len(report.survived) for report in reports)
    result = score(killed, survived)
    print(
        f"score: {result:.1f}% ({killed} killed of {killed + survived} non-equivalent)"
    )
    for report in reports:
        for mutant in report.survived:
            print(f"\nSURVIVED {mutant.describe()}: {mutant.source_line}")
            print(mutant.diff.strip())
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--module", action="append", help="A module of scope.toml (default: all)"
    )
    parser.add_argument(
        "--changed-since", metavar="REF", help="Only the modules changed since REF"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="Modules mutated at once (default 1)"
    )
    parser.add_argument(
        "--min-score", type=float, default=0.0, help="Fail under this score (percent)"
    )
    args = parser.parse_args(argv)
    scope = tomllib.loads(SCOPE_FILE.read_text())
    mapping: dict[str, list[str]] = scope["modules"]
    modules = args.module or list(mapping)
    for module in modules:
        if module not in mapping:
            parser.error(UNKNOWN_MODULE_MESSAGE.format(module=module, scope=SCOPE_FILE))
    if args.changed_since:
        modules = changed_modules(modules, args.changed_since)
        if not modules:
            print(f"no module of {SCOPE_FILE.name} changed since {args.changed_since}")
            return 0
    started = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="mutants-", dir=scratch_root()) as scratch,
        concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool,
    ):
        futures = [
            pool.submit(
                run_module, module, mapping[module], scope, Path(scratch, str(i))
            )
            for i, module in enumerate(modules)
        ]
        reports = [future.result() for future in futures]
    result = print_reports(reports)
    minutes = (time.monotonic() - started) / 60
    print(f"\n{len(reports)} modules in {minutes:.1f} minutes")
    survived = any(report.survived for report in reports)
    return 1 if survived or result < args.min_score else 0


if __name__ == "__main__":
    sys.exit(main())
