"""Reading numbers out of data someone else wrote (JSON records, model cards, gpsd)."""

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
