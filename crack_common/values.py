"""Reading numbers out of data someone else wrote (JSON records, model cards, gpsd,
commands), and sizing such data before a parser recurses on it."""

from __future__ import annotations

import math
from typing import Any, Optional


def finite_number(value: Any) -> Optional[float]:
    """`value` as a float when it is a finite int or float (not a bool), else None (an int
    too large for a float, such as JSON's 10**400, included)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def bracket_depth(text: str) -> int:
    """The deepest nesting of [ and { in a JSON or YAML text, found without parsing it
    (parsers recurse on nesting; brackets inside strings count too: a conservative bound)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
