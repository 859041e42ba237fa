"""Asking a real LLM: arithmetic word problems through any OpenAI-compatible endpoint.

Each config asks a chat model a few word problems, with a prompt style and a
temperature, and counts the right answers. Every request goes through the config's
cache, so a finished run replays (`--delphyne-replay`, `--pdb`) without a single call;
tokens and price are spent as the endpoint reports them.

Point it at an endpoint first (nothing is sent anywhere otherwise):

    export OPENAI_BASE_URL=https://api.openai.com/v1   # or any compatible server
    export OPENAI_API_KEY=...                           # never written to any file
    export OPENAI_MODEL=gpt-4o-mini                     # optional
    pytest --delphyne-exp example_project/llm_experiment.py

A model missing from the built-in price table is priced with OPENAI_PRICE_INPUT and
OPENAI_PRICE_OUTPUT (dollars per million tokens; default 0).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Literal

from pytest_delphyne import (
    Budget,
    DelphyneError,
    Environment,
    Experiment,
    ModelPrice,
    OpenAIChatModel,
    Outcome,
    Run,
    path_stem,
)

NO_ENDPOINT_MESSAGE = (
    "no OpenAI-compatible endpoint is configured: set OPENAI_BASE_URL (and "
    "OPENAI_API_KEY if it needs one) to run this experiment; see its docstring"
)

if not os.environ.get("OPENAI_BASE_URL"):
    raise DelphyneError(NO_ENDPOINT_MESSAGE)

MODEL = os.environ.get("OPENAI_MODEL", "gpt-4o-mini")
PROBLEMS = [
    ("A shelf holds 17 books and 25 more are added. How many books are there?", 42),
    ("A train travels 60 km each hour for 3 hours. How many km does it travel?", 180),
    ("Ana has 45 apples and gives away 18. How many apples does she keep?", 27),
]
PROMPTS = {
    "direct": "Answer with the number only.\n\n{problem}",
    "step-by-step": (
        "Think step by step, then give the final answer on the last line as "
        "'Answer: <number>'.\n\n{problem}"
    ),
}


def final_number(text: str) -> int | None:
    numbers = re.findall(r"-?\d+", text.replace(",", ""))
    return int(numbers[-1]) if numbers else None


def custom_price() -> ModelPrice | None:
    if "OPENAI_PRICE_INPUT" not in os.environ:
        return None
    input_price = float(os.environ["OPENAI_PRICE_INPUT"])
    return ModelPrice(
        input=input_price,
        cached_input=input_price,
        output=float(os.environ.get("OPENAI_PRICE_OUTPUT", 0)),
    )


def solve_problems(
    env: Environment, model: str, prompt: str, temperature: float
) -> Outcome:
    chat_model = OpenAIChatModel(
        model,
        base_url=os.environ["OPENAI_BASE_URL"],
        price=custom_price(),
    )
    right = 0
    for problem, expected in PROBLEMS:
        messages = [
            {"role": "user", "content": PROMPTS[prompt].format(problem=problem)}
        ]
        answer = chat_model.chat(env, messages, temperature=temperature)
        guessed = final_number(answer.text)
        env.log("answered", problem=problem, answer=guessed, expected=expected)
        right += guessed == expected
    return Outcome(success=right == len(PROBLEMS), values=[right])


@dataclass
class Config:
    """A prompt style and a temperature for one model."""

    prompt: Literal["direct", "step-by-step"]
    temperature: float
    model: str = MODEL

    def instantiate(self, context: object) -> Run:
        return Run(
            program=solve_problems,
            args={
                "model": self.model,
                "prompt": self.prompt,
                "temperature": self.temperature,
            },
            budget=Budget(price=0.05),
        )


experiment = Experiment(
    config_class=Config,
    output_dir=f"output/{path_stem(__file__)}",
    configs=[
        Config(prompt, temperature)
        for prompt in ("direct", "step-by-step")
        for temperature in (0.0, 0.7)
    ],
    config_naming=lambda config, uuid: (
        f"{config.model}-{config.prompt}-t{config.temperature}"
    ),
    name="word-problems",
    description="Arithmetic word problems, by prompt style and temperature.",
)

if __name__ == "__main__":
    experiment.run_cli()
