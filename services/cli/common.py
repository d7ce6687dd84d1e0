"""What every user-facing command shares: addresses, the token, clean errors instead of tracebacks."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable

import grpc

from lesslabels.common.config import ClientTLS, add_client_tls_flags, add_flag, client_tls, default_address

SERVICES = ("pool", "trainer", "scorer", "coordinator")


class CliError(Exception):
    """An error the user can act on; printed as one line, no traceback."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises CliError (exit code 2) instead of exiting, so commands stay testable."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise CliError(f"{message}\n{self.format_usage().strip()}", exit_code=2)


def add_client_flags(parser: argparse.ArgumentParser, *services: str) -> None:
    """``--<service>-address`` for each service (env LESSLABELS_<SERVICE>_ADDRESS), ``--token``, ``--timeout``,
    and TLS: ``--tls-ca``, ``--tls-client-cert``, ``--tls-client-key`` (read with ``tls_of``)."""
    for service in services:
        add_flag(parser, f"--{service}-address", default=default_address(service), help=f"{service} service HOST:PORT")
    add_flag(parser, "--token", default="", help="bearer token the services require")
    add_flag(parser, "--timeout", default=30.0, type=float, help="deadline of each call, in seconds")
    add_client_tls_flags(parser)


def tls_of(args: argparse.Namespace) -> ClientTLS:
    """The TLS settings of parsed client flags; an unreadable file or a certificate without its key
    is a CliError."""
    try:
        return client_tls(args)
    except SystemExit as exc:
        raise CliError(str(exc.code).removeprefix("error: "), exit_code=2) from None


def sdk_error_message(exc: Exception, service: str, address: str) -> str:
    """One line for a failed call of the SDK (``lesslabels.client``): what to do when the service is
    unreachable or refuses the token, else the service's own message and status."""
    code = getattr(exc, "status", None)
    details = getattr(exc, "details", None) or str(exc)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) and (
        code is grpc.StatusCode.DEADLINE_EXCEEDED
        or "connect" in details.lower()
        or "unavailable" in details.lower()
        or "dns" in details.lower()
    ):
        env = f"LESSLABELS_{service.upper()}_ADDRESS"
        return (
            f"cannot reach the {service} service at {address} ({code.name}). "
            f"Is it running ('lesslabels up')? Set --{service}-address or {env}."
        )
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return f"the {service} service at {address} refused the token: set LESSLABELS_TOKEN or --token"
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return f"the {service} service at {address}: {details}"
    name = code.name if code is not None else "ERROR"
    return f"{service} service: {details} ({name})"


def command(func: Callable[[list[str]], int]) -> Callable[[list[str] | None], int]:
    """Run a command, turning CliError, gRPC errors and Ctrl-C into a one-line message and an exit code."""

    @functools.wraps(func)
    def wrapper(argv: list[str] | None = None) -> int:
        prog = "lesslabels " + func.__name__.removesuffix("_main").replace("_", "-")
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
        try:
            return int(func(list(sys.argv[1:] if argv is None else argv)) or 0)
        except CliError as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print(f"{prog}: interrupted", file=sys.stderr)
            return 130

    return wrapper


class ServiceCallError(CliError):
    """A call to a service failed; the message says which service, where, and why."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None):
        super().__init__(message)
        self.code = code
