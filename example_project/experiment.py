"""Propose and check: the shape of most oracular programs, offline.

A proposer stands in for an LLM: seeded and stochastic, it proposes candidate prime
factors of a number, each proposal costing tokens and money as a model call would. An
expensive checker, called through `env.compute` so that its verdicts are recorded and
replayed, proves by trial division whether a candidate is a prime factor, within a time
limit. On the large problem the proof takes longer than the limit: those configs fail
with `CheckerTimeout`, a real reason. Raise the limit and retry only them:

    CHECKER_TIME_LIMIT=2 pytest --delphyne-exp example_project/experiment.py --lf

The grid: problem size x proposer x temperature x seed, 24 configs.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from typing import Literal

from pytest_delphyne import (
    Budget,
    Environment,
    Experiment,
    Outcome,
    Run,
    path_stem,
)

# Two primes per problem, and candidates that look plausible but are not prime factors.
PROBLEMS: dict[str, tuple[int, int, list[int]]] = {
    "small": (1009, 1013, [1007, 1011, 1021, 1019, 1001]),
    "medium": (
        1_000_000_007,
        1_000_000_009,
        [999_999_999, 1_000_000_001, 1_000_000_011, 999_999_937 * 3],
    ),
    "large": (
        20_000_000_000_021,
        30_000_000_000_011,
        [20_000_000_000_023, 29_999_999_999_999, 25_000_000_000_001],
    ),
}
DEFAULT_TIME_LIMIT = 0.05  # seconds per proof; CHECKER_TIME_LIMIT overrides it
PRICE_PER_MILLION = {"input": 2.5, "output": 10.0}


class CheckerTimeout(Exception):
    """The checker ran out of time before finishing its proof."""


def check_prime_factor(n: int, candidate: int) -> bool:
    """Whether `candidate` is a prime factor of `n`, proved by trial division within
    the checker's time limit (a setting of the tool, not part of the question: it is
    not in the call's arguments, so a retry with more time replays the same calls)."""
    if candidate < 2 or n % candidate:
        return False
    time_limit = float(os.environ.get("CHECKER_TIME_LIMIT", DEFAULT_TIME_LIMIT))
    deadline = time.perf_counter() + time_limit
    if candidate % 2 == 0:
        return candidate == 2
    for divisor in range(3, math.isqrt(candidate) + 1, 2):
        if candidate % divisor == 0:
            return False
        if divisor % 65_536 == 1 and time.perf_counter() > deadline:
            raise CheckerTimeout(
                f"proving that {candidate} is prime took more than {time_limit} s"
            )
    return True


def propose(
    rng: random.Random, candidates: list[int], factors: set[int], temperature: float
) -> int:
    """A candidate, as a model would: decoys look likelier than the true factors, and
    a higher temperature explores more."""
    weights = [
        math.exp((0.5 if candidate in factors else 1.0) / temperature)
        for candidate in candidates
    ]
    return rng.choices(candidates, weights)[0]


def find_factor(
    env: Environment,
    problem: str,
    proposer: str,
    temperature: float,
    seed: int,
) -> Outcome:
    p, q, decoys = PROBLEMS[problem]
    n = p * q
    candidates = [*decoys, p, q]
    if proposer == "narrow":
        # A narrow proposer only ever considers its four favourite candidates.
        candidates = [*decoys[:3], q]
    rng = random.Random(seed)
    attempt = 0
    while True:
        attempt += 1
        candidate = propose(rng, candidates, {p, q}, temperature)
        input_tokens, output_tokens = 180 + 40 * attempt, 12
        env.spend(
            num_requests=1,
            num_completions=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            price=(
                input_tokens * PRICE_PER_MILLION["input"]
                + output_tokens * PRICE_PER_MILLION["output"]
            )
            / 1e6,
        )
        env.log("proposal", attempt=attempt, candidate=candidate)
        if env.compute(check_prime_factor, n, candidate):
            env.log("found a prime factor", candidate=candidate)
            return Outcome(success=True, values=[candidate, attempt])


@dataclass
class Config:
    """One point of the grid."""

    problem: Literal["small", "medium", "large"]
    proposer: Literal["narrow", "wide"]
    temperature: float
    seed: int
    max_proposals: int = 8

    def instantiate(self, context: object) -> Run:
        return Run(
            program=find_factor,
            args={
                "problem": self.problem,
                "proposer": self.proposer,
                "temperature": self.temperature,
                "seed": self.seed,
            },
            # Out of proposals: the run ends unsuccessfully, it does not fail.
            budget=Budget(num_requests=self.max_proposals),
        )


def config_name(config: Config, uuid: object) -> str:
    return f"{config.problem}-{config.proposer}-t{config.temperature}-s{config.seed}"


experiment = Experiment(
    config_class=Config,
    output_dir=f"output/{path_stem(__file__)}",
    configs=[
        Config(problem, proposer, temperature, seed)
        for problem in ("small", "medium", "large")
        for proposer in ("narrow", "wide")
        for temperature in (0.3, 1.0)
        for seed in (0, 1)
    ],
    config_naming=config_name,
    name="factor-search",
    description="Propose-and-check search for prime factors, over proposers, "
    "temperatures and seeds.",
)

if __name__ == "__main__":
    experiment.run_cli()
