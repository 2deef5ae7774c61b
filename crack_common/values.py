"""Reading numbers out of data someone else wrote (JSON records, model cards, gpsd)."""

from __future__ import annotations

import math
from typing import Any, Optional


def finite_number(value: Any) -> Optional[float]:
    """`value` as a float when it is a finite int or float (not a bool), else None."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else None
