"""Settings: command-line flags with ``LESSLABELS_*`` environment fallbacks.

Parsed in each service's ``main()``, never at import time. A flag given on the command line
wins over the environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

ENV_PREFIX = "LESSLABELS_"
MiB = 1024 * 1024


def env_name(flag: str) -> str:
    """``--checkpoint-dir`` -> ``LESSLABELS_CHECKPOINT_DIR``."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def add_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *,
    default=None,
    type=str,
    help: str = "",
    **kw,
):
    """Add ``flag`` whose default comes from its ``LESSLABELS_*`` variable when set."""
    var = env_name(flag)
    raw = os.environ.get(var)
    if raw is not None and raw != "":
        try:
            value = type(raw) if type is not bool else raw.strip().lower() in {"1", "true", "yes", "on"}
        except ValueError as exc:
            if isinstance(parser, argparse.ArgumentParser):
                parser.error(f"{var}={raw!r}: {exc}")
            raise SystemExit(f"error: {var}={raw!r}: {exc}") from exc  # a group has no parser.error
        default = value
    suffix = f" (env {var}; default {default!r})"
    if type is bool:
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help + suffix, **kw)
    else:
        parser.add_argument(flag, default=default, type=type, help=help + suffix, **kw)


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """What every server needs, whatever it serves."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str = ""
    max_message_bytes: int = 64 * MiB
    grace_seconds: float = 10.0
    log_level: str = "INFO"
    workers: int = 16
    #: Response streams (WatchRun, WatchJob, ListSamples, ScorePool...) served at once; each holds
    #: a thread of its own, apart from the ``workers`` that unary calls always have. Past it a new
    #: stream gets RESOURCE_EXHAUSTED. Health Watch streams hold no thread (grpc's non-blocking
    #: health servicer) and have a budget of the same size.
    max_streams: int = 512

    @property
    def bind_address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def add_server_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    add_flag(parser, "--host", default="0.0.0.0", help="interface to listen on")
    add_flag(parser, "--port", default=default_port, type=int, help="port to listen on (0 = any free port)")
    add_flag(parser, "--token", default="", help="require 'authorization: Bearer TOKEN' on every call but health")
    add_flag(parser, "--max-message-mb", default=64, type=int, help="largest request/response message")
    add_flag(parser, "--grace-seconds", default=10.0, type=float, help="time in-flight calls get on shutdown")
    add_flag(parser, "--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    add_flag(parser, "--workers", default=16, type=int, help="threads serving unary calls")
    add_flag(
        parser,
        "--max-streams",
        default=512,
        type=int,
        help="response streams served at once (each its own thread); more get RESOURCE_EXHAUSTED",
    )


def server_settings(args: argparse.Namespace) -> ServerSettings:
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"--port {args.port}: must be within 0..65535")
    if args.max_message_mb <= 0:
        raise SystemExit(f"--max-message-mb {args.max_message_mb}: must be positive")
    if args.workers <= 0 or args.max_streams <= 0:
        raise SystemExit(f"--workers {args.workers} / --max-streams {args.max_streams}: must be positive")
    return ServerSettings(
        host=args.host,
        port=args.port,
        token=args.token,
        max_message_bytes=args.max_message_mb * MiB,
        grace_seconds=args.grace_seconds,
        log_level=args.log_level,
        workers=args.workers,
        max_streams=args.max_streams,
    )
