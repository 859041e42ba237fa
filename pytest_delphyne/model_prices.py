"""What a chat model's requests cost: `ModelPrice`, the table of OpenAI's models'
prices (`DEFAULT_PRICES`) and the lookup of a model's entry (`find_price`).

`OpenAIChatModel` (`models.py`) prices each request's usage with its model's entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pytest_delphyne.errors import DelphyneError

UNKNOWN_PRICE_MESSAGE: Final = (
    "no price for model {model!r}: pass OpenAIChatModel(..., price=ModelPrice(...)) "
    "or prices={{{model!r}: ModelPrice(...)}} (known: {known})"
)


class UnknownModelPriceError(DelphyneError):
    """A model with no entry in the price table."""


@dataclass(frozen=True)
class ModelPrice:
    """Dollars per million tokens.

    Attributes:
        input: uncached prompt tokens.
        cached_input: prompt tokens the provider had cached.
        output: completion tokens (reasoning tokens included).
    """

    input: float
    cached_input: float
    output: float

    def cost(
        self, input_tokens: int, cached_input_tokens: int, output_tokens: int
    ) -> float:
        """The price of a request's usage (`input_tokens` includes the cached ones)."""
        uncached = input_tokens - cached_input_tokens
        return (
            uncached * self.input
            + cached_input_tokens * self.cached_input
            + output_tokens * self.output
        ) / 1_000_000


DEFAULT_PRICES: Final[Mapping[str, ModelPrice]] = {
    # OpenAI's published standard-tier prices; extend or override with `prices=`.
    "gpt-4o": ModelPrice(2.50, 1.25, 10.00),
    "gpt-4o-mini": ModelPrice(0.15, 0.075, 0.60),
    "gpt-4.1": ModelPrice(2.00, 0.50, 8.00),
    "gpt-4.1-mini": ModelPrice(0.40, 0.10, 1.60),
    "gpt-4.1-nano": ModelPrice(0.10, 0.025, 0.40),
    "gpt-5": ModelPrice(1.25, 0.125, 10.00),
    "gpt-5-mini": ModelPrice(0.25, 0.025, 2.00),
    "gpt-5-nano": ModelPrice(0.05, 0.005, 0.40),
    "o3": ModelPrice(2.00, 0.50, 8.00),
    "o3-mini": ModelPrice(1.10, 0.55, 4.40),
    "o4-mini": ModelPrice(1.10, 0.275, 4.40),
}


def find_price(model: str, prices: Mapping[str, ModelPrice]) -> ModelPrice:
    """The price of `model`: its own entry, else the longest entry it starts with
    (`gpt-4o-2024-08-06` is priced as `gpt-4o`).

    Raises:
        UnknownModelPriceError: no entry fits.
    """
    if model in prices:
        return prices[model]
    fits = [name for name in prices if model.startswith(name + "-")]
    if not fits:
        raise UnknownModelPriceError(
            UNKNOWN_PRICE_MESSAGE.format(model=model, known=", ".join(sorted(prices)))
        )
    return prices[max(fits, key=len)]
