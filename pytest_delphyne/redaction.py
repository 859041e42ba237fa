"""Credentials kept out of every file, report and terminal line (SPEC §3, §4).

A server that refuses a request may echo it back, headers and all, in its error
message; that message then reaches `exception.txt`, the item's failure text, junit
properties and logs. Two nets catch a credential before any of those is written:
the values this process sent as credentials (`add_secret`: the API key, the
`extra_headers` and `extra_query` values), replaced wherever they appear, and the
shapes credentials take in text (`Authorization: Bearer ...`, `sk-...` keys).
"""

from __future__ import annotations

import re
from typing import Final

REDACTED: Final = "[redacted]"
"""What a credential is replaced with."""

# Shorter values would redact ordinary words ("on", "1") in every message.
_MIN_SECRET_LENGTH: Final = 6
_SECRET_SHAPES: Final = re.compile(
    r"(?i)(?P<label>\b(?:proxy-)?authorization\b\W{1,4}(?:(?:bearer|basic)\s+)?"
    r"|\b(?:bearer|basic)\s+|\bx-api-key\b\W{1,4}|\bapi[-_]?key\b\W{1,4})"
    r"(?P<secret>[^\s'\",;}]+)"
    r"|(?P<key>\bsk-[A-Za-z0-9_\-]{8,})"
)
_known: set[str] = set()


def add_secret(value: object) -> None:
    """Remember a value this process sends as a credential, so that `redact`
    removes it from any text (values shorter than 6 characters are not secrets)."""
    if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
        _known.add(value)


def _replace_shape(match: re.Match[str]) -> str:
    label = match.group("label")
    return REDACTED if label is None else label + REDACTED


def redact(text: str) -> str:
    """`text` without any known secret or any text shaped like a credential."""
    for secret in sorted(_known, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SECRET_SHAPES.sub(_replace_shape, text)


def redact_exception(error: BaseException) -> None:
    """Redact, in place, the message of `error` and of the exceptions it chains
    (what a traceback prints of them), so that no later formatting shows a secret.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(
            redact(arg) if isinstance(arg, str) else arg for arg in current.args
        )
        message = vars(current).get("message")
        if isinstance(message, str):
            # openai's APIError keeps its text in `message` too.
            vars(current)["message"] = redact(message)
        notes = getattr(current, "__notes__", None)
        if isinstance(notes, list):
            current.__notes__ = [redact(str(note)) for note in notes]
        current = current.__cause__ or current.__context__
