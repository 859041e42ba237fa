"""The cost of one cached `env.compute` call, with 10,000 entries in the cache.

    python benchmarks/cache_calls.py [--entries N]

Prints the median microseconds per call when recording (`create` mode: the call is
made, its entry dumped and written) and when replaying (`replay` mode: answered from
the cache), and the time to open (read and index) a cache of N entries.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pytest_delphyne.cache import RequestCache
from pytest_delphyne.environment import Environment


def answer(i: int, model: str) -> dict[str, object]:
    """A small LLM-like answer: some text and token counts."""
    return {"text": f"answer number {i}", "tokens": [i, i + 1, i + 2], "ok": True}


def _never(i: int, model: str) -> dict[str, object]:
    raise AssertionError("replay made a call")


_never.__qualname__ = answer.__qualname__


def _timed_calls(
    env: Environment, entries: int, fn: Callable[[int, str], object]
) -> list[float]:
    compute = env.compute
    times = []
    for i in range(entries):
        start = time.perf_counter_ns()
        compute(fn, i, model="m")
        times.append((time.perf_counter_ns() - start) / 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    entries = parser.parse_args().entries
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "cache.yaml"
        with RequestCache(path, "create") as cache:
            recording = _timed_calls(Environment("bench", cache), entries, answer)
        opening = []
        for _ in range(5):
            start = time.perf_counter()
            RequestCache(path, "replay").close()
            opening.append(time.perf_counter() - start)
        with RequestCache(path, "replay") as cache:
            replaying = _timed_calls(Environment("bench", cache), entries, _never)
        size = path.stat().st_size
    tail = recording[-1000:]  # the calls made with the cache nearly full
    print(f"cache of {entries} entries, {size / 1e6:.2f} MB")
    print(f"record (create), median per call: {statistics.median(recording):8.1f} us")
    print(f"record, last 1000 calls, median:  {statistics.median(tail):8.1f} us")
    print(f"replay, median per call:          {statistics.median(replaying):8.1f} us")
    print(
        f"open for replay, median of 5:     {statistics.median(opening) * 1e3:8.1f} ms"
    )


if __name__ == "__main__":
    main()
