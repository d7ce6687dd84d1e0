"""``lesslabels web``: the labelling app on uvicorn."""

from __future__ import annotations

import argparse
import logging

from lesslabels.common.config import add_client_tls_flags, add_flag, client_tls, default_address, open_bind_refusal

DEFAULT_PORT = 8080


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lesslabels web", description="The web labelling app (FastAPI on uvicorn).")
    add_flag(
        parser,
        "--host",
        default="127.0.0.1",
        help="interface to listen on (anything but loopback needs --token, or --insecure)",
    )
    add_flag(parser, "--port", default=DEFAULT_PORT, type=int, help="port to listen on")
    for service in ("coordinator", "pool", "scorer"):
        add_flag(parser, f"--{service}-address", default=default_address(service), help=f"{service} service HOST:PORT")
    add_flag(
        parser, "--token", default="", help="the stack's token: the app asks for it once and sends it to the services"
    )
    add_flag(
        parser,
        "--web-secret",
        default="",
        help="key that signs session cookies and CSRF tokens (default: random per start)",
    )
    add_flag(parser, "--secure-cookie", default=False, type=bool, help="mark the session cookie Secure (behind HTTPS)")
    add_flag(
        parser,
        "--session-hours",
        default=12.0,
        type=float,
        help="a session ends this long after login (and at logout, or when the app restarts)",
    )
    add_flag(
        parser,
        "--insecure",
        default=False,
        type=bool,
        help="allow listening on a non-loopback interface without a token (anyone who reaches it gets a session)",
    )
    add_flag(parser, "--timeout", default=30.0, type=float, help="deadline of each call to a service, in seconds")
    add_flag(
        parser,
        "--metrics-port",
        default=0,
        type=int,
        help="serve Prometheus metrics over HTTP at this port, on --host, path /metrics (0 = off)",
    )
    add_client_tls_flags(parser)
    add_flag(parser, "--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    return parser


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from lesslabels.common import metrics, tracing
    from lesslabels.common.logs import setup_logging
    from lesslabels.web.app import WebSettings, create_app
    from lesslabels.web.backend import Addresses, SdkBackend

    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise SystemExit(f"--port {args.port}: must be within 0..65535")
    if not args.session_hours > 0:
        raise SystemExit(f"--session-hours {args.session_hours}: must be positive")
    if not 0 <= args.metrics_port <= 65535:
        raise SystemExit(f"error: --metrics-port {args.metrics_port}: must be within 0..65535 (0 = no metrics)")
    if args.metrics_port and args.metrics_port == args.port:
        raise SystemExit(
            f"error: --metrics-port {args.metrics_port} is --port as well: give the metrics their own port"
        )
    refusal = open_bind_refusal(args.host, args.token, args.insecure)
    if refusal:
        raise SystemExit(f"error: {refusal}")
    setup_logging(args.log_level, "web")  # the services' format: trace and span ids in every line
    tracing.configure("web")  # OTEL_* variables; off when none is set (its calls then carry no trace)
    backend = SdkBackend(
        Addresses(
            args.coordinator_address, args.pool_address, args.scorer_address, args.token, args.timeout, client_tls(args)
        )
    )
    app = create_app(
        backend,
        WebSettings(
            token=args.token,
            secret=args.web_secret.encode(),
            secure_cookie=args.secure_cookie,
            session_seconds=args.session_hours * 3600,
        ),
    )
    logging.getLogger(__name__).info("event=web_starting url=http://%s:%d", args.host, args.port)
    metrics_http = metrics.start_http(args.metrics_port, args.host) if args.metrics_port else None
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    finally:
        if metrics_http is not None:
            metrics.stop_http(metrics_http)
        backend.close()
    return 0
