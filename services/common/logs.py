from __future__ import annotations

import logging
import sys
from typing import TextIO

from opentelemetry import trace


class TraceIds(logging.Filter):
    """Gives each record the ids of the span current where it was logged (``trace_id``, ``span_id``,
    hexadecimal as trace viewers show them), or 0 outside any span or with tracing off."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id, record.span_id = f"{context.trace_id:032x}", f"{context.span_id:016x}"
        else:
            record.trace_id = record.span_id = "0"
        return True


def log_handler(service: str = "", stream: TextIO | None = None) -> logging.Handler:
    """The handler of every service's log: time, level, service, logger, trace and span ids, then the
    key=value message, on ``stream`` (standard error)."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.addFilter(TraceIds())
    handler.setFormatter(
        logging.Formatter(
            f"%(asctime)s %(levelname)s service={service or '-'} logger=%(name)s "
            "trace_id=%(trace_id)s span_id=%(span_id)s %(message)s"
        )
    )
    return handler


def setup_logging(level: str = "INFO", service: str = "") -> None:
    """One log format for every service (``log_handler``) on the root logger."""
    logging.basicConfig(level=level.upper(), handlers=[log_handler(service)], force=True)
