"""Domain errors. Cores raise these; one interceptor maps them to gRPC status codes."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import grpc


class LessLabelsError(Exception):
    """Base of all domain errors. Unexpected exceptions become INTERNAL instead."""

    #: Name of the grpc.StatusCode this error maps to.
    code = "INTERNAL"
    # Set by the client SDK on an error that came back from a call (lesslabels.client.errors.rpc_error):
    # the call's grpc.StatusCode, the server's message, and which service at which address answered.
    status: grpc.StatusCode | None = None
    details = ""
    service = ""
    address = ""


class InvalidArgument(LessLabelsError):
    """The request itself is wrong (bad text, unknown label, malformed row)."""

    code = "INVALID_ARGUMENT"


class NotFound(LessLabelsError):
    """A named thing (dataset, run, job, checkpoint) does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(LessLabelsError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(LessLabelsError):
    """The request is valid but the system is not in a state to do it (e.g. too few labels)."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(LessLabelsError):
    """A size or rate limit was hit; the message names the limit."""

    code = "RESOURCE_EXHAUSTED"


class Unavailable(LessLabelsError):
    """A dependency is not reachable; retrying later may work."""

    code = "UNAVAILABLE"


class DeadlineExceeded(Unavailable):
    """A call's deadline passed before the answer came; retrying (later, or with a longer deadline) may work."""


class Unauthenticated(LessLabelsError):
    """The service refused the bearer token (missing or wrong)."""

    code = "UNAUTHENTICATED"


class PermissionDenied(LessLabelsError):
    """The token is valid but not for this method: a service-to-service method called with the
    public token."""

    code = "PERMISSION_DENIED"


class Cancelled(LessLabelsError):
    code = "CANCELLED"


#: Characters of an offending value an error message quotes at most.
QUOTE_LIMIT = 80


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to its first ``limit`` characters (with the full length when cut), for
    error messages: a huge bad value must not become a huge message."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value)} characters" if isinstance(value, (str, bytes)) else f"{len(text)} characters as written"
    return f"{text[:limit]}... ({size})"
