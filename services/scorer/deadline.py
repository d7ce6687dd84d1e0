"""How long a handler may still take: the caller's gRPC deadline as a timeout for the model cache."""

from __future__ import annotations

import math

#: Deadlines further away than this (gRPC reports "none" as a huge number) count as none.
_NO_DEADLINE_S = 1e8


def time_left(context) -> float | None:
    """Seconds until the RPC's deadline (at least 1 ms), or None when the caller set none."""
    remaining = context.time_remaining()
    if remaining is None or not math.isfinite(remaining) or remaining > _NO_DEADLINE_S:
        return None
    return max(remaining, 0.001)
