"""Numbers rtsctl reads from its environment (RTSCTL_*_SECONDS, RTSCTL_ENV_KEEP_DAYS): bounded, and a bad value
is the default."""

from __future__ import annotations

import math
import os


def env_number(name: str, default: float, low: float, high: float) -> float:
    """`$name` as a number within [low, high]; unset, unparsable or NaN gives `default`."""
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return default if math.isnan(value) else min(max(value, low), high)
