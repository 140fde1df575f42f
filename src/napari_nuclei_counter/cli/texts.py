"""Small text helpers of the command line's messages."""

from __future__ import annotations

__all__ = ["plural"]

#: irregular plurals of the command line's words
_IRREGULAR = {"nucleus": "nuclei"}


def plural(n: int, word: str) -> str:
    """``'1 image'``, ``'2 images'``, ``'1 nucleus'``, ``'0 nuclei'``.

    Parameters
    ----------
    n : int
        The count.
    word : str
        The singular noun.

    Returns
    -------
    str
        The count and the noun, singular when ``n`` is 1.
    """
    if n == 1:
        return f"{n} {word}"
    return f"{n} {_IRREGULAR.get(word, word + 's')}"
