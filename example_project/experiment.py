"""Propose and check: the shape of most oracular programs, offline and without a key.

A local proposer stands in for an LLM. Seeded and stochastic, it proposes candidate
prime factors of a number; each proposal goes through the config's cache (as a model
client's requests do), takes a model's latency, and spends tokens and money. It is
overconfident: plausible decoys look likelier to it than the true factors, and a
higher temperature makes it explore. A `narrow` proposer only ever considers its four
favourite candidates and ignores feedback; a `wide` one considers every candidate and
is told which ones were rejected.

An expensive checker, called through `env.compute` so that its verdicts are recorded
and replayed, proves by trial division whether a candidate is a prime factor, within a
time limit (0.05 s by default). Proving that the large problem's factors are prime
takes longer: the configs that propose one fail with `CheckerTimeout`, a real reason.
Give the checker more time and retry only those, replaying the proposals they already
paid for:

    CHECKER_TIME_LIMIT=5 pytest --delphyne-exp example_project/experiment.py \\
        --lf --delphyne-reuse-cache

The time limit is a setting of the tool, not a hyperparameter: it is read from the
environment, not from the config, so raising it retries the same configs (a changed
config field would make new ones) and replays the calls already made.

The grid: problem x proposer x temperature x seed, 36 configs, at most 4 proposals
each; under 10 s on two workers (`-n 2`), about 13 s on one.
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

# Two primes per problem, and decoys that look like factors but are not.
PROBLEMS: dict[str, tuple[int, int, list[int]]] = {
    "small": (1009, 1013, [1007, 1011, 1021, 1019, 1001]),
    "medium": (
        1_000_000_007,
        1_000_000_009,
        [999_999_999, 1_000_000_001, 1_000_000_011, 999_999_937 * 3],
    ),
    "large": (
        100_000_000_000_031,
        200_000_000_000_027,
        [100_000_000_000_029, 199_999_999_999_999, 150_000_000_000_001],
    ),
}
DEFAULT_TIME_LIMIT = 0.05  # seconds per proof; CHECKER_TIME_LIMIT overrides it
PROPOSER_LATENCY = 0.1  # seconds per proposal, as a small model would take
PRICE_PER_MILLION_TOKENS = {"input": 2.5, "output": 10.0}


class CheckerTimeout(Exception):
    """The checker ran out of time before finishing its proof."""


# The time limit is read here, not passed as an argument: it is not part of the
# question, so a retry with more time finds the calls already made in the cache.
def check_prime_factor(n: int, candidate: int) -> bool:
    """Whether `candidate` is a prime factor of `n`; CheckerTimeout past the limit."""
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


@dataclass(frozen=True)
class LocalProposer:
    """A stand-in for an LLM client: a seeded sampler behind the config's cache.

    Like `OpenAIChatModel.chat`, `propose` checks the budget before paying, sends its
    request through `env.cached_call` (a replay answers from the cache, without the
    latency), and spends tokens for it (not paid again when replayed).
    """

    width: Literal["narrow", "wide"]
    temperature: float
    seed: int

    def propose(
        self, env: Environment, n: int, candidates: list[int], rejected: list[int]
    ) -> int:
        env.check_budget()
        request = {
            "model": f"local-{self.width}",
            "n": n,
            "candidates": candidates,
            "rejected": rejected,
            "temperature": self.temperature,
            "seed": self.seed,
        }
        call = env.cached_call(
            "local_proposer", request, lambda: self._sample(n, candidates, rejected)
        )
        # The prompt lists the rejected candidates: it grows with every attempt.
        input_tokens, output_tokens = 180 + 40 * len(rejected), 12
        env.spend(
            num_requests=1,
            num_completions=1,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            price=(
                input_tokens * PRICE_PER_MILLION_TOKENS["input"]
                + output_tokens * PRICE_PER_MILLION_TOKENS["output"]
            )
            / 1e6,
            replayed=call.hit,
        )
        proposal: int = call.value
        return proposal

    def _sample(self, n: int, candidates: list[int], rejected: list[int]) -> int:
        time.sleep(PROPOSER_LATENCY)
        # Seeded by the whole request: the same question gets the same answer.
        rng = random.Random(f"{n}/{self.seed}/{self.temperature}/{len(rejected)}")
        if self.width == "wide":
            candidates = [c for c in candidates if c not in rejected]
        # Decoys look twice as likely as true factors (log-odds 1.0 against 0.5).
        weights = [
            math.exp((0.5 if n % c == 0 else 1.0) / self.temperature)
            for c in candidates
        ]
        return rng.choices(candidates, weights)[0]


def find_factor(
    env: Environment,
    problem: str,
    proposer: str,
    temperature: float,
    seed: int,
) -> Outcome:
    """Propose until the checker accepts a candidate (or the budget runs out)."""
    p, q, decoys = PROBLEMS[problem]
    n = p * q
    if proposer == "narrow":
        model = LocalProposer("narrow", temperature, seed)
        candidates = [*decoys[:3], q]
    else:
        model = LocalProposer("wide", temperature, seed)
        candidates = [*decoys, p, q]
    rejected: list[int] = []
    while True:
        candidate = model.propose(env, n, candidates, rejected)
        env.log("proposal", attempt=len(rejected) + 1, candidate=candidate)
        if env.compute(check_prime_factor, n, candidate):
            env.log("found a prime factor", candidate=candidate)
            return Outcome(success=True, values=[candidate, len(rejected) + 1])
        rejected.append(candidate)


@dataclass
class Config:
    """One point of the grid.

    Attributes:
        problem: which number to factor.
        proposer: `narrow` (four favourite candidates, no feedback) or `wide`.
        temperature: the proposer's sampling temperature.
        seed: the proposer's seed.
        max_proposals: the budget; out of proposals, a run ends without success.
    """

    problem: Literal["small", "medium", "large"]
    proposer: Literal["narrow", "wide"]
    temperature: float
    seed: int
    max_proposals: int = 4

    def instantiate(self, context: object) -> Run:
        return Run(
            program=find_factor,
            args={
                "problem": self.problem,
                "proposer": self.proposer,
                "temperature": self.temperature,
                "seed": self.seed,
            },
            # Reaching the limit ends the run unsuccessfully; it does not fail it.
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
        for seed in (0, 1, 2)
    ],
    config_naming=config_name,
    name="factor-search",
    description="Propose-and-check search for prime factors, over proposers, "
    "temperatures and seeds.",
)

if __name__ == "__main__":
    experiment.run_cli()
