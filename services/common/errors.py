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
#: Bytes of an error message as gRPC sends it (the grpc-message trailer, percent-encoded) at most:
#: clients refuse trailers past 8 KiB, so a longer message reached the caller as
#: RESOURCE_EXHAUSTED ("metadata size exceeds ...") instead of the error's own code.
MESSAGE_LIMIT = 4096


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` cut to its first ``limit`` characters (with the full length when cut), for
    error messages: a huge bad value must not become a huge message. A sequence or mapping (a list
    of unknown names) is counted in items."""
    if isinstance(value, (str, bytes)):
        text = repr(value[: limit + 1])  # a 10 MB value is not copied whole to be cut
    elif isinstance(value, (list, tuple, set, frozenset, dict)):
        text = repr(value) if len(value) <= limit else repr(list(value)[:limit])
    else:
        text = repr(value)
    if len(text) <= limit and not (isinstance(value, (str, bytes)) and len(value) > limit):
        return text
    if isinstance(value, (str, bytes)):
        size = f"{len(value)} characters" if isinstance(value, str) else f"{len(value)} bytes"
    elif isinstance(value, (list, tuple, set, frozenset, dict)):
        size = f"{len(value)} items"
    else:
        size = f"{len(text)} characters as written"
    return f"{text[:limit]}... ({size})"


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """``message`` cut so that gRPC sends at most ``limit`` bytes of it (printable ASCII goes as
    is, anything else percent-encoded as UTF-8, 3 bytes a byte), with its full length when cut.
    Every error a server sends goes through here: a message that quotes user input without
    :func:`quote` (or wraps another service's error) stays an error of its own code."""
    cost = 0
    for i, ch in enumerate(message):
        cost += 1 if " " <= ch <= "~" and ch != "%" else 3 * len(ch.encode("utf-8", "surrogatepass"))
        if cost > limit - 40:  # room for the note below
            return f"{message[:i]}... ({len(message)} characters)"
    return message
