"""Durations as people write them in YAML and on the command line: ``30s``, ``15m``, ``4h``,
``1d``, ``1h30m``, or a number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_BAD = "{value!r} is not a duration: write e.g. 30s, 15m, 4h, 1d or 1h30m"
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# What parse_duration accepts, as JSON Schema (for editors validating YAML as it is typed).
JSON_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*[smhdwSMHDW]\s*)+$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "A duration: 30s, 15m, 4h, 1d, 2w, 1h30m, or a number of seconds.",
}


def parse_duration(value: Any) -> timedelta:
    """``"90s"``, ``"15m"``, ``"4h"``, ``"1d"``, ``"1h30m"`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip().upper().startswith("P"):
        # ISO 8601 (PT1H30M), as pydantic writes a duration back out in JSON
        try:
            return TypeAdapter(timedelta).validate_python(value.strip())
        except ValidationError:
            raise ValueError(
                f"{value!r} is not a duration: write e.g. 30s, 15m, 4h, 1d or 1h30m"
            ) from None
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower().replace(" ", "")
        parts = _DURATION.findall(text)
        if "".join(n + u for n, u in parts) != text:
            raise ValueError(_BAD.format(value=value))
        seconds = sum(float(n) * _UNIT[u] for n, u in parts)
    else:
        raise ValueError(_BAD.format(value=value))
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)
