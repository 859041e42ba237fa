from __future__ import annotations

import pytest

from pytest_delphyne.redaction import REDACTED, add_secret, redact, redact_exception
from pytest_delphyne.spend_cap import (
    BAD_SPEND_CAP_MESSAGE,
    BadSpendCapError,
    check_spend_cap,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("authorization: Bearer abc.def-123", f"authorization: Bearer {REDACTED}"),
        (
            "{'Authorization': 'Bearer tok1'}",
            f"{{'Authorization': 'Bearer {REDACTED}'}}",
        ),
        (
            "Proxy-Authorization: Basic dXNlcjpw",
            f"Proxy-Authorization: Basic {REDACTED}",
        ),
        ("x-api-key: hunter22; host: h", f"x-api-key: {REDACTED}; host: h"),
        ("key sk-proj-0123456789abc rejected", f"key {REDACTED} rejected"),
        ("no credential in 401 Unauthorized", "no credential in 401 Unauthorized"),
        ("a short sk-1 stays", "a short sk-1 stays"),
    ],
)
def test_credentials_are_redacted_by_their_shape(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_values_sent_as_credentials_are_redacted_wherever_they_appear() -> None:
    add_secret("tenant-7f3a9c-secret")
    add_secret("on")  # too short to be a secret: "json" keeps its letters
    assert redact("echoed tenant-7f3a9c-secret, json") == f"echoed {REDACTED}, json"


def test_exception_messages_are_redacted_along_the_chain() -> None:
    class APIError(Exception):
        def __init__(self, message: str):
            super().__init__(message)
            self.message = message

    cause = ValueError("authorization: Bearer first-token")
    error = APIError("refused x-api-key: second-token")
    error.__cause__ = cause
    error.add_note("retried with Bearer third-token")
    redact_exception(error)
    assert str(error) == error.message == f"refused x-api-key: {REDACTED}"
    assert error.__notes__ == [f"retried with Bearer {REDACTED}"]
    assert str(cause) == f"authorization: Bearer {REDACTED}"


@pytest.mark.parametrize("cap", [0.0, 0.5, 100.0])
def test_finite_non_negative_spend_caps_are_accepted(cap: float) -> None:
    check_spend_cap(cap, "--delphyne-max-price")


@pytest.mark.parametrize("cap", [float("nan"), float("inf"), -1.0, -0.01])
def test_spend_caps_no_spending_can_meet_are_refused(cap: float) -> None:
    expected = BAD_SPEND_CAP_MESSAGE.format(where="--delphyne-max-price", cap=cap)
    with pytest.raises(BadSpendCapError) as raised:
        check_spend_cap(cap, "--delphyne-max-price")
    assert str(raised.value) == expected
