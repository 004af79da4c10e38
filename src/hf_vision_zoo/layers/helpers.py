"""Small helpers shared by the layers and models."""

from collections.abc import Iterable


def to_2tuple(value) -> tuple:
    """`7 -> (7, 7)`; a pair stays a pair."""
    if isinstance(value, Iterable) and not isinstance(value, str):
        value = tuple(value)
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair, got {value}")
        return value
    return (value, value)
