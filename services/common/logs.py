from __future__ import annotations

import logging
import sys


def setup_logging(level: str = "INFO", service: str = "") -> None:
    """One log format for every service: time, level, service, logger, key=value message."""
    fmt = f"%(asctime)s %(levelname)s service={service or '-'} logger=%(name)s %(message)s"
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
