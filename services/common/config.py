"""Settings: command-line flags with ``LESSLABELS_*`` environment fallbacks.

Parsed in each service's ``main()``, never at import time. A flag given on the command line
wins over the environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import os
import pathlib
import socket

ENV_PREFIX = "LESSLABELS_"
MiB = 1024 * 1024

#: Default ports of ``lesslabels up`` and the addresses clients (the CLI, the web app) use when none
#: is configured.
DEFAULT_PORTS = {"pool": 50051, "trainer": 50052, "scorer": 50053, "coordinator": 50054}


def default_address(service: str) -> str:
    """``localhost`` at the service's default port: ``default_address("pool")`` is ``localhost:50051``."""
    return f"localhost:{DEFAULT_PORTS[service]}"


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
class ClientTLS:
    """TLS of a client channel, as PEM file paths: ``ca`` (the roots that sign the servers'
    certificates) turns TLS on; ``cert`` and ``key`` add a client certificate (mutual TLS)."""

    ca: str = ""
    cert: str = ""
    key: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.ca or self.cert or self.key)

    def sdk_options(self) -> dict[str, bytes | None]:
        """The SDK clients' keyword arguments (``root_certificates``, ``private_key``,
        ``certificate_chain``) read from the files; empty when TLS is off."""
        if not self.enabled:
            return {}
        return {
            "root_certificates": _read_pem(self.ca, "--tls-ca") if self.ca else None,
            "private_key": _read_pem(self.key, "--tls-client-key") if self.key else None,
            "certificate_chain": _read_pem(self.cert, "--tls-client-cert") if self.cert else None,
        }


def _read_pem(path: str, flag: str) -> bytes:
    try:
        return pathlib.Path(path).read_bytes()
    except OSError as exc:
        raise SystemExit(f"error: {flag} {path}: cannot read it ({exc.strerror or exc})") from None


def add_client_tls_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--tls-ca``, ``--tls-client-cert``, ``--tls-client-key``: TLS of the channels to services."""
    add_flag(parser, "--tls-ca", default="", help="PEM roots that sign the services' certificates (turns TLS on)")
    add_flag(parser, "--tls-client-cert", default="", help="PEM client certificate, for servers that require one")
    add_flag(parser, "--tls-client-key", default="", help="PEM private key of --tls-client-cert")


def client_tls(args: argparse.Namespace) -> ClientTLS:
    """The ClientTLS of parsed ``add_client_tls_flags``; a certificate without its key is refused."""
    tls = ClientTLS(ca=args.tls_ca, cert=args.tls_client_cert, key=args.tls_client_key)
    if bool(tls.cert) != bool(tls.key):
        raise SystemExit("error: --tls-client-cert and --tls-client-key go together: give both or neither")
    for path, flag in ((tls.ca, "--tls-ca"), (tls.cert, "--tls-client-cert"), (tls.key, "--tls-client-key")):
        if path:
            _read_pem(path, flag)
    return tls


def add_model_dir_flag(parser: argparse.ArgumentParser) -> None:
    """``--model-dir`` (repeatable; env LESSLABELS_MODEL_DIR, folders separated by os.pathsep)."""
    var = env_name("--model-dir")
    parser.add_argument(
        "--model-dir",
        action="append",
        default=None,
        help="a folder of base models that runs and Score may name (repeatable); besides it only the bundled "
        f"model and the checkpoint store are allowed (env {var}, folders separated by {os.pathsep!r})",
    )


def model_dirs(args: argparse.Namespace) -> tuple[str, ...]:
    """The ``--model-dir`` folders, else those of LESSLABELS_MODEL_DIR; each must be a folder."""
    given = args.model_dir
    if given is None:
        given = os.environ.get(env_name("--model-dir"), "").split(os.pathsep)
    dirs = tuple(d for d in given if d.strip())
    for folder in dirs:
        if not os.path.isdir(folder):
            raise SystemExit(f"error: --model-dir {folder}: not a folder")
    return dirs


def is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address: ``localhost``, ``127.1``,
    ``::1``... The socket layer decides, as the bind will: '' (every interface), ``0``,
    ``0.0.0.0`` and ``::`` are not loopback, and neither is a name that does not resolve."""
    host = host.strip().strip("[]")
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(_loopback_address(str(entry[4][0])) for entry in found)


def _loopback_address(text: str) -> bool:
    address = ipaddress.ip_address(text.partition("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def open_bind_refusal(host: str, token: str, insecure: bool = False, offer_insecure: bool = True) -> str:
    """Why a server must not listen on ``host`` ('' when it may): an interface beyond loopback
    without a token lets anyone who reaches it call everything. ``insecure`` says the network is
    private. The one check of every server, the web app and ``lesslabels up``."""
    if token or insecure or is_loopback(host):
        return ""
    escape = " or pass --insecure (LESSLABELS_INSECURE=true) if the network is private," if offer_insecure else ""
    return (
        f"refusing to listen on {host!r} (not loopback) without a token: anyone who reaches it could call "
        f"every method. Set --token (LESSLABELS_TOKEN),{escape} or listen on 127.0.0.1."
    )


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """What every server needs, whatever it serves."""

    host: str = "127.0.0.1"
    port: int = 0
    #: Bearer token of public callers (users, the CLI, the web app). '' = none required.
    token: str = ""
    #: Bearer token of the services' calls to each other; accepted as well as ``token``, and the
    #: one a service sends to the services it calls (``token`` when this is empty).
    internal_token: str = ""
    #: PEM files: this server's certificate and key (TLS on); ``tls_client_ca`` also requires
    #: every client to present a certificate it signs (mutual TLS).
    tls_cert: str = ""
    tls_key: str = ""
    tls_client_ca: str = ""
    #: TLS of the channels this service opens to other services.
    client_tls: ClientTLS = ClientTLS()
    max_message_bytes: int = 64 * MiB
    grace_seconds: float = 10.0
    log_level: str = "INFO"
    workers: int = 16
    #: Response streams (WatchRun, WatchJob, ListSamples, ScorePool...) served at once; each holds
    #: a thread of its own, apart from the ``workers`` that unary calls always have. Past it a new
    #: stream gets RESOURCE_EXHAUSTED. Health Watch streams hold no thread (grpc's non-blocking
    #: health servicer) and have a budget of the same size.
    max_streams: int = 512
    #: Port of the Prometheus ``/metrics`` HTTP endpoint, on ``host``; 0 = none.
    metrics_port: int = 0

    @property
    def outbound_token(self) -> str:
        """The token this service sends to the services it calls."""
        return self.internal_token or self.token

    @property
    def bind_address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host and not self.host.startswith("[") else self.host
        return f"{host}:{self.port}"


def add_server_flags(parser: argparse.ArgumentParser, default_port: int) -> None:
    add_flag(
        parser,
        "--host",
        default="127.0.0.1",
        help="interface to listen on (anything but loopback needs --token, or --insecure)",
    )
    add_flag(parser, "--port", default=default_port, type=int, help="port to listen on (0 = any free port)")
    add_flag(
        parser,
        "--token",
        default="",
        help="public token: require 'authorization: Bearer TOKEN' on every call but health",
    )
    add_flag(
        parser,
        "--internal-token",
        default="",
        help="service-to-service token: accepted as well as --token, and sent on this service's calls to others",
    )
    add_flag(
        parser,
        "--insecure",
        default=False,
        type=bool,
        help="allow listening on a non-loopback interface without a token",
    )
    add_flag(parser, "--tls-cert", default="", help="PEM certificate of this server (with --tls-key: TLS on)")
    add_flag(parser, "--tls-key", default="", help="PEM private key of --tls-cert")
    add_flag(parser, "--tls-client-ca", default="", help="PEM roots; clients must present a certificate they sign")
    add_client_tls_flags(parser)
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
    add_flag(
        parser,
        "--metrics-port",
        default=0,
        type=int,
        help="serve Prometheus metrics over HTTP at this port, on --host, path /metrics (0 = off)",
    )


def server_settings(args: argparse.Namespace) -> ServerSettings:
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"--port {args.port}: must be within 0..65535")
    if args.max_message_mb <= 0:
        raise SystemExit(f"--max-message-mb {args.max_message_mb}: must be positive")
    if args.workers <= 0 or args.max_streams <= 0:
        raise SystemExit(f"--workers {args.workers} / --max-streams {args.max_streams}: must be positive")
    if not 0 <= args.metrics_port <= 65535:
        raise SystemExit(f"error: --metrics-port {args.metrics_port}: must be within 0..65535 (0 = no metrics)")
    if args.metrics_port and args.metrics_port == args.port:
        raise SystemExit(
            f"error: --metrics-port {args.metrics_port} is --port as well: give the metrics their own port"
        )
    refusal = open_bind_refusal(args.host, args.token or args.internal_token, args.insecure)
    if refusal:
        raise SystemExit(f"error: {refusal}")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise SystemExit("error: --tls-cert and --tls-key go together: give both or neither")
    if args.tls_client_ca and not args.tls_cert:
        raise SystemExit("error: --tls-client-ca (mutual TLS) needs TLS on: give --tls-cert and --tls-key too")
    for path, flag in (
        (args.tls_cert, "--tls-cert"),
        (args.tls_key, "--tls-key"),
        (args.tls_client_ca, "--tls-client-ca"),
    ):
        if path:
            _read_pem(path, flag)
    return ServerSettings(
        host=args.host,
        port=args.port,
        token=args.token,
        internal_token=args.internal_token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        client_tls=client_tls(args),
        max_message_bytes=args.max_message_mb * MiB,
        grace_seconds=args.grace_seconds,
        log_level=args.log_level,
        workers=args.workers,
        max_streams=args.max_streams,
        metrics_port=args.metrics_port,
    )
