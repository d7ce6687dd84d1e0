"""Inference counts and times per model and version, kept in memory since the scorer started
(what Triton's ModelStatistics reports). Knows nothing of gRPC."""

from __future__ import annotations

import dataclasses
import threading
import time


@dataclasses.dataclass
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns


@dataclasses.dataclass
class ModelStats:
    name: str
    version: str
    last_inference_ms: int = 0  # since the epoch; 0 = none yet
    inference_count: int = 0  # texts scored
    execution_count: int = 0  # requests scored
    success: Duration = dataclasses.field(default_factory=Duration)  # arrival to response
    fail: Duration = dataclasses.field(default_factory=Duration)
    compute_infer: Duration = dataclasses.field(default_factory=Duration)  # scoring, batching wait included


class InferenceStatistics:
    """Thread-safe counters keyed by (model name as the client gave it, checkpoint id)."""

    def __init__(self, clock_ms=lambda: time.time_ns() // 1_000_000):
        self._lock = threading.Lock()
        self._stats: dict[tuple[str, str], ModelStats] = {}
        self._clock_ms = clock_ms

    def _entry(self, name: str, version: str) -> ModelStats:
        key = (name, version)
        if key not in self._stats:
            self._stats[key] = ModelStats(name, version)
        return self._stats[key]

    def record_success(self, name: str, version: str, *, texts: int, total_ns: int, infer_ns: int) -> None:
        with self._lock:
            entry = self._entry(name, version)
            entry.last_inference_ms = self._clock_ms()
            entry.inference_count += texts
            entry.execution_count += 1
            entry.success.add(total_ns)
            entry.compute_infer.add(infer_ns)

    def record_failure(self, name: str, version: str, *, total_ns: int) -> None:
        with self._lock:
            entry = self._entry(name, version)
            entry.last_inference_ms = self._clock_ms()
            entry.fail.add(total_ns)

    def snapshot(self, name: str = "", version: str = "") -> list[ModelStats]:
        """Copies of the entries for ``name`` (all when empty) and ``version`` (all when empty),
        sorted by name then version. A named model never used yet gets an all-zero entry."""
        with self._lock:
            found = [
                dataclasses.replace(
                    s,
                    success=dataclasses.replace(s.success),
                    fail=dataclasses.replace(s.fail),
                    compute_infer=dataclasses.replace(s.compute_infer),
                )
                for (n, v), s in self._stats.items()
                if (not name or n == name) and (not version or v == version)
            ]
        if name and version and not found:
            found = [ModelStats(name, version)]
        return sorted(found, key=lambda s: (s.name, s.version))
