"""``lesslabels probe HOST:PORT``: exit 0 when the server answers health SERVING (container health check).

``lesslabels probe http://HOST:PORT/healthz``: exit 0 when that URL answers 200 (the web app).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lesslabels.common.channels import make_channel
from lesslabels.common.config import add_client_tls_flags, client_tls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lesslabels probe", description=__doc__)
    parser.add_argument(
        "address", help="HOST:PORT of a lesslabels server, or the http:// URL of the web app's /healthz"
    )
    parser.add_argument("--service", default="", help="service name to check ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    add_client_tls_flags(parser)  # a server with TLS on (LESSLABELS_TLS_CA ... in its container)
    args = parser.parse_args(argv)
    if args.address.startswith(("http://", "https://")):
        return _probe_http(args.address, args.timeout)
    with make_channel(args.address, tls=client_tls(args)) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
        except grpc.RpcError as exc:
            print(f"{args.address}: {exc.code().name}: {exc.details()}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.address}: {status}")
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


def _probe_http(url: str, timeout: float) -> int:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            status = reply.status
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    print(f"{url}: HTTP {status}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    raise SystemExit(main())
