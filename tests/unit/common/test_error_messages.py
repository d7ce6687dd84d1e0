"""Errors that quote user input stay short (issue 25, finding F6): a 10 kB name or 2,000 unknown
parameters came back as RESOURCE_EXHAUSTED "metadata size exceeds ..." instead of the error's own
code, because gRPC carries the message in a trailer that clients refuse past 8 KiB."""

from __future__ import annotations

import grpc
import pytest

from lesslabels.common import errors
from lesslabels.common.channels import from_rpc_error
from tests.unit.common.test_server import SERVICE, _raise, server_factory  # noqa: F401 - a fixture


def _call(address: str) -> grpc.RpcError:
    with grpc.insecure_channel(address) as channel:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(f"/{SERVICE}/Unary")(b"x", timeout=10)
    return info.value


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidArgument("dataset " + "d" * 20_000 + " is not valid"),
        errors.NotFound("model " + "é" * 10_000 + " not found"),  # 6 bytes a character once encoded
        errors.FailedPrecondition("a" + "\n" * 9_000),
    ],
    ids=["ascii", "non-ascii", "control"],
)
def test_a_huge_error_message_keeps_its_code_and_is_cut(server_factory, error):  # noqa: F811
    _, address = server_factory(_raise(error))
    failed = _call(address)
    assert failed.code().name == error.code  # not RESOURCE_EXHAUSTED
    details = failed.details()
    assert details.startswith(str(error)[:100]) and len(details.encode()) <= errors.MESSAGE_LIMIT
    assert details.endswith(f"({len(str(error))} characters)")


def test_a_wrapped_downstream_error_is_cut_too(server_factory):  # noqa: F811
    """The coordinator wraps a pool error with its own prefix and sends it on: still bounded."""
    _, address = server_factory(_raise(errors.InvalidArgument("x" * 3_000)))
    wrapped = from_rpc_error(_call(address), "pool: labels for dataset 'd'")
    again = from_rpc_error(_call(address), "y" * 5_000)
    assert isinstance(wrapped, errors.InvalidArgument) and str(wrapped).startswith("pool: labels for dataset 'd': xxx")
    assert len(str(again)) < errors.MESSAGE_LIMIT
    _, relay = server_factory(_raise(again))
    assert _call(relay).code() == grpc.StatusCode.INVALID_ARGUMENT


def test_quote_cuts_long_values_and_long_lists():
    assert errors.quote("short") == "'short'"
    long = errors.quote("n" * 10_000)
    assert len(long) < 120 and long.endswith("... (10000 characters)")
    names = errors.quote([f"param{i}" for i in range(2_000)])
    assert len(names) < 120 and names.startswith("['param0', 'param1'") and names.endswith("(2000 items)")
    assert errors.quote(b"b" * 500).endswith("(500 bytes)")
    assert errors.quote(["a", "b"]) == "['a', 'b']"
    assert errors.bounded("fine") == "fine"
