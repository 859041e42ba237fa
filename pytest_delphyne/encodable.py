"""Text that can be written to a file (SPEC §8).

A Python `str` may hold a lone surrogate (`"a\\udc80"`, what `os.fsdecode` makes of
bytes that are not UTF-8): no UTF-8 file can hold it, so a name, a param or a value
holding one would stop a write half-way. Such text is refused before anything is
written, naming where it was found.
"""

from __future__ import annotations

from typing import Final

from pytest_delphyne.errors import DelphyneError

UNENCODABLE_MESSAGE: Final = (
    "{path} is text that no file can hold: {text!r} has a lone surrogate (bytes "
    "that were not UTF-8?); give valid Unicode text"
)


class UnencodableTextError(DelphyneError):
    """Text with a lone surrogate, where it must be written to a file."""

    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        super().__init__(UNENCODABLE_MESSAGE.format(path=path, text=text))


def is_encodable(text: str) -> bool:
    """Whether `text` can be written as UTF-8 (ASCII text is decided without
    encoding it)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_encodable(text: str, path: str) -> None:
    """Raises:
    UnencodableTextError: `text` cannot be written as UTF-8; the message names
        `path`.
    """
    if not is_encodable(text):
        raise UnencodableTextError(path, text)
