"""The SDK's one exception hierarchy: the domain errors of ``lesslabels.common.errors``.

Every failed call raises a subclass of :class:`LessLabelsError`, chosen by the gRPC status code
(``NOT_FOUND`` -> :class:`NotFound`, ``INVALID_ARGUMENT`` -> :class:`InvalidArgument`, ...), so
callers catch domain errors and never ``grpc.RpcError``. The raised error also carries the
call's ``status`` (a ``grpc.StatusCode``, or None for an error found before any call), the
server's ``details``, and the ``service`` and ``address`` it came from.
"""

from __future__ import annotations

import grpc

from lesslabels.common.channels import from_rpc_error
from lesslabels.common.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    LessLabelsError,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)

__all__ = [
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "LessLabelsError",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "rpc_error",
]


def rpc_error(exc: grpc.RpcError, *, service: str, address: str, what: str) -> LessLabelsError:
    """The domain error for a failed call of ``service`` at ``address``; ``what`` names the call."""
    error = from_rpc_error(exc, f"{service} at {address}: {what}")
    error.status = exc.code()
    error.details = exc.details() or ""
    error.service = service
    error.address = address
    return error
