"""Checks of single config values, shared by the validation and the kinds."""

from __future__ import annotations

from typing import Any

from runners.errors import ConfigError


def as_int(value: Any, key: str, minimum: int) -> int:
    """Return ``value`` as an int ≥ ``minimum`` or raise a one-line ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{key}={value!r} is not a whole number; give an integer >= {minimum}")
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(
            f"{key}={value!r} is not a whole number; give an integer >= {minimum}, "
            f"e.g. {key}={max(minimum, 2)}") from None
    if number < minimum:
        raise ConfigError(f"{key}={number} is too small; give an integer >= {minimum}")
    return number
