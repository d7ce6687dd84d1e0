"""``ServiceClient``, the base for a client of any lesslabels service: the channel (retries, token,
TLS), deadlines and error mapping that every client shares. The SDK's clients (``PoolClient``,
``ScorerClient``, ``CoordinatorClient``) and the services' internal adapters (the coordinator's
trainer client, the pool's run-store client) subclass it: set ``service`` and a ``_stub`` on the
channel, and wrap each RPC with ``_unary`` / ``_stream``."""

from __future__ import annotations

from typing import Any
from collections.abc import Callable, Generator, Iterator

import grpc

from lesslabels.client.errors import InvalidArgument, rpc_error
from lesslabels.common.channels import DEFAULT_TIMEOUT, make_channel
from lesslabels.common.config import ClientTLS


class ServiceClient:
    """Base for a client of any lesslabels service: owns one channel; a context manager that closes it.

    ``address`` is ``HOST:PORT``. ``token`` is sent as ``authorization: Bearer TOKEN`` when set.
    ``timeout`` is the deadline of each unary call in seconds (each method also takes its own
    ``timeout=``). Give ``root_certificates`` (PEM bytes) to use TLS, and ``private_key`` and
    ``certificate_chain`` for a client certificate; without them the channel is plaintext.
    ``tls`` gives the same as PEM file paths (``ClientTLS(ca=..., cert=..., key=...)``).
    Unary reads and idempotent writes are retried on UNAVAILABLE by the channel's policy.
    """

    #: The service's name in messages and errors ("pool", "scorer", "coordinator").
    service = ""

    def __init__(
        self,
        address: str,
        *,
        token: str = "",
        timeout: float = DEFAULT_TIMEOUT,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        max_message_bytes: int = 64 * 1024 * 1024,
        tls: ClientTLS | None = None,
    ):
        if not address or not isinstance(address, str):
            raise InvalidArgument(f"{self.service} client: address must be 'HOST:PORT', got {address!r}")
        _check_timeout(timeout)
        self.address = address
        self.timeout = float(timeout)
        credentials = None
        if root_certificates or private_key or certificate_chain:
            credentials = grpc.ssl_channel_credentials(root_certificates, private_key, certificate_chain)
        self._channel = make_channel(
            address, token=token, credentials=credentials, tls=tls, max_message_bytes=max_message_bytes
        )

    @property
    def channel(self) -> grpc.Channel:
        """The underlying channel, for calls the SDK does not wrap (use the generated stubs on it)."""
        return self._channel

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"

    def call(self, method: str, request: Any, *, timeout: float | None = None) -> Any:
        """A unary RPC by name (``"GetRun"``) with a protobuf request: the protobuf reply, with this
        client's deadline, token and errors. For what the typed methods do not cover."""
        return self._unary(self._method(method), request, method, timeout)

    def stream(self, method: str, request: Any, *, timeout: float | None = None) -> Iterator[Any]:
        """A server-streaming RPC by name: its protobuf messages (closing the iterator cancels it)."""
        return self._stream(self._method(method), request, method, timeout)

    def _method(self, name: str) -> Callable:
        fn = getattr(getattr(self, "_stub", None), name, None)
        if fn is None or name.startswith("_"):
            raise InvalidArgument(f"the {self.service} service has no method {name!r}")
        return fn

    def _deadline(self, timeout: float | None) -> float:
        if timeout is None:
            return self.timeout
        _check_timeout(timeout)
        return float(timeout)

    def _error(self, exc: grpc.RpcError, what: str):
        return rpc_error(exc, service=self.service, address=self.address, what=what)

    def _unary(self, fn: Callable, request: Any, what: str, timeout: float | None = None) -> Any:
        try:
            return fn(request, timeout=self._deadline(timeout))
        except grpc.RpcError as exc:
            raise self._error(exc, what) from None

    def _stream(self, fn: Callable, request: Any, what: str, timeout: float | None) -> Generator[Any, None, None]:
        """The messages of a server stream; a failure mid-stream raises the domain error. Closing
        the generator early cancels the call."""
        call = fn(request, timeout=self._deadline(timeout))
        try:
            yield from call
        except grpc.RpcError as exc:
            raise self._error(exc, what) from None
        finally:
            call.cancel()


def _check_timeout(timeout: float) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise InvalidArgument(f"timeout must be a positive number of seconds, got {timeout!r}")
