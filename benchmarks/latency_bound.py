"""Configs that wait on a model: processes (`-n`) against configs in flight per process
(`--delphyne-concurrency`), at the endpoint's pace (a script, not a test).

    python benchmarks/latency_bound.py                       # N = 1,000, 0.2 s latency
    python benchmarks/latency_bound.py --configs 200 --latency 0.05
    python benchmarks/latency_bound.py --setups "8" "2x32"   # chosen setups only

It starts a local OpenAI-compatible server (a real HTTP/1.1 server on 127.0.0.1 with a
thread per connection, so it serves every request at once) that answers each chat
request after a fixed latency. An experiment of N configs, each asking 5 chat requests
through `OpenAIChatModel` and the config's cache, then runs as whole `python -m pytest`
processes, one per setup: `P` is `-n P` (processes only), `PxK` is `-n P
--delphyne-concurrency=K`. Each setup keeps P x K requests in flight at most: its limit
is N x 5 x latency / (P x K), the wall time of a run that only waits.

For each setup it prints the wall time, the limit, their ratio, the requests the server
answered, the CPU time of the run's processes (user + system, all of them) and of the
server (this script's process), and the peak memory of the run's processes together:
the sum of their proportional set sizes (PSS, from /proc/PID/smaps_rollup: shared
pages are counted once over the processes that share them), sampled every 0.2 s. The
server is not counted in the memory. CPU time over the machine's cores is the least
wall time the machine allows, whatever the concurrency. Targets (issue 19), on a
2-core machine: concurrency 64 at <= 1.3x the limit, concurrency 256 at <= 1.5x, all
processes together <= 600 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REQUESTS_PER_CONFIG = 5
DEFAULT_SETUPS = ("64", "2x32", "2x128")

EXPERIMENT = """
import os
from dataclasses import dataclass

from pytest_delphyne import Experiment, ModelPrice, OpenAIChatModel, Outcome, Run

# One model, so one client and one connection pool per process, shared by the
# configs in flight.
MODEL = OpenAIChatModel(
    "bench-model",
    base_url=os.environ["BENCH_BASE_URL"],
    api_key="not-a-key",
    price=ModelPrice(0.15, 0.075, 0.60),
    max_retries=0,
)


def program(env, x):
    for turn in range({requests}):
        MODEL.chat(env, [{{"role": "user", "content": f"config {{x}}, turn {{turn}}"}}])
    return Outcome(True, [x])


@dataclass
class Config:
    x: int

    def instantiate(self, context):
        return Run(program=program, args={{"x": self.x}})


experiment = Experiment(
    config_class=Config,
    output_dir="out",
    configs=[Config(x) for x in range({configs})],
)
"""


class LatencyServer(ThreadingHTTPServer):
    """Answers each chat completion after `latency` seconds, all at once."""

    daemon_threads = True
    # Hundreds of clients connect at once: the default backlog of 5 would drop
    # their SYNs and make them retry a second later.
    request_queue_size = 4096

    def __init__(self, latency: float) -> None:
        super().__init__(("127.0.0.1", 0), _ChatHandler)
        self.latency = latency
        self.answered = 0
        self._count_lock = threading.Lock()

    def count(self) -> None:
        with self._count_lock:
            self.answered += 1


class _ChatHandler(BaseHTTPRequestHandler):
    # Keep-alive: each client reuses its connections, as with a real endpoint.
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm the body would
    # wait for the client's delayed ACK (40 ms on Linux) on a kept-alive connection.
    disable_nagle_algorithm = True
    server: LatencyServer

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length))
        time.sleep(self.server.latency)
        body = json.dumps(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "created": 0,
                "model": request["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "42"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 1,
                    "total_tokens": 13,
                },
            }
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.count()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass(frozen=True)
class Setup:
    """`-n processes`, each with `concurrency` configs in flight."""

    processes: int
    concurrency: int

    @classmethod
    def parse(cls, text: str) -> Setup:
        processes, _, concurrency = text.partition("x")
        return cls(int(processes), int(concurrency or 1))

    @property
    def in_flight(self) -> int:
        return self.processes * self.concurrency

    def arguments(self) -> list[str]:
        arguments = ["-n", str(self.processes)]
        if self.concurrency > 1:
            arguments.append(f"--delphyne-concurrency={self.concurrency}")
        return arguments

    def describe(self) -> str:
        text = f"-n {self.processes}"
        if self.concurrency > 1:
            text += f" --delphyne-concurrency {self.concurrency}"
        return text


def _children(pid: int) -> list[int]:
    found = [pid]
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command may hold spaces and parentheses: the ppid follows the last ")".
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    index = 0
    while index < len(found):
        found.extend(parents.get(found[index], []))
        index += 1
    return found


def _pss_bytes(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


class MemorySampler:
    """The peak of the summed PSS of a process and its descendants."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.pid = pid
        self.every = every
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            total = sum(_pss_bytes(pid) for pid in _children(self.pid))
            self.peak = max(self.peak, total)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


@dataclass(frozen=True)
class Measure:
    setup: Setup
    wall: float
    limit: float
    answered: int
    peak_memory: int
    returncode: int
    run_cpu: float
    server_cpu: float


def measure(
    setup: Setup, project: Path, server: LatencyServer, configs: int
) -> Measure:
    shutil.rmtree(project / "out", ignore_errors=True)
    before = server.answered
    command = [sys.executable, "-m", "pytest", "--delphyne-exp=exp.py", "-q"]
    command += ["-p", "no:cacheprovider", *setup.arguments()]
    environment = {
        **os.environ,
        "BENCH_BASE_URL": f"http://127.0.0.1:{server.server_address[1]}/v1",
    }
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_before = time.process_time()
    start = time.perf_counter()
    process = subprocess.Popen(
        command,
        cwd=project,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sampler = MemorySampler(process.pid)
    returncode = process.wait()
    wall = time.perf_counter() - start
    peak = sampler.stop()
    server_cpu = time.process_time() - server_before
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    run_cpu = (children.ru_utime - children_before.ru_utime) + (
        children.ru_stime - children_before.ru_stime
    )
    limit = configs * REQUESTS_PER_CONFIG * server.latency / setup.in_flight
    return Measure(
        setup,
        wall,
        limit,
        server.answered - before,
        peak,
        returncode,
        run_cpu,
        server_cpu,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=1_000)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds")
    parser.add_argument("--setups", nargs="+", default=list(DEFAULT_SETUPS))
    arguments = parser.parse_args()
    server = LatencyServer(arguments.latency)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    project = Path(tempfile.mkdtemp(prefix="delphyne-latency-"))
    try:
        (project / "pytest.ini").write_text("[pytest]\n")
        (project / "exp.py").write_text(
            EXPERIMENT.format(configs=arguments.configs, requests=REQUESTS_PER_CONFIG)
        )
        print(
            f"N = {arguments.configs} configs x {REQUESTS_PER_CONFIG} requests, "
            f"latency {arguments.latency * 1000:.0f} ms, {os.cpu_count()} cores"
        )
        print(
            f"{'setup':<36} {'in flight':>9} {'wall s':>8} {'limit s':>8} "
            f"{'ratio':>6} {'answered':>9} {'run cpu s':>9} {'server cpu s':>12} "
            f"{'peak MB':>8}"
        )
        for text in arguments.setups:
            result = measure(Setup.parse(text), project, server, arguments.configs)
            failed = "" if result.returncode == 0 else f"  exit {result.returncode}"
            print(
                f"{result.setup.describe():<36} {result.setup.in_flight:>9} "
                f"{result.wall:>8.2f} {result.limit:>8.2f} "
                f"{result.wall / result.limit:>6.2f} {result.answered:>9} "
                f"{result.run_cpu:>9.1f} {result.server_cpu:>12.1f} "
                f"{result.peak_memory / 1e6:>8.0f}{failed}",
                flush=True,
            )
    finally:
        server.shutdown()
        shutil.rmtree(project, ignore_errors=True)


if __name__ == "__main__":
    main()
