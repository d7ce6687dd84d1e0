"""``lesslabels coordinator``: runs active-learning rounds over the pool, trainer and scorer."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

from lesslabels.common import errors, tracing
from lesslabels.common.channels import wait_until_serving
from lesslabels.common.config import ClientTLS, ServerSettings, add_flag, add_server_flags, server_settings
from lesslabels.common.logs import setup_logging
from lesslabels.common.server import Server
from lesslabels.contract.shards import MAX_SHARDS
from lesslabels.client import PoolClient, ScorerClient
from lesslabels.coordinator.trainer_client import TrainerClient
from lesslabels.coordinator.orchestrator import Coordinator
from lesslabels.coordinator.servicer import CoordinatorServicer, registration
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.coordinator.sharding import DEFAULT_ATTEMPTS, ScorerReplicas

log = logging.getLogger(__name__)

DEFAULT_PORT = 50054
POOL_SERVICE = "lesslabels.v1.PoolService"
TRAINER_SERVICE = "lesslabels.v1.TrainerService"
SCORER_SERVICE = "lesslabels.v1.ScorerService"


class CoordinatorServer(Server):
    """The coordinator's server: its core for in-process use and ``ready()`` (see build_server)."""

    coordinator: Coordinator
    ready: Callable[[], list[int]]


def build_server(
    settings: ServerSettings,
    pool_address: str,
    trainer_address: str,
    scorer_address: str | Sequence[str],
    *,
    score_shards: int = 0,
    score_attempts: int = DEFAULT_ATTEMPTS,
    token: str = "",
    tls: ClientTLS | None = None,
    rpc_timeout: float = 30.0,
    retry_backoff: float = 2.0,
    outage_seconds: float = 300.0,
    supervise_seconds: float = 5.0,
) -> CoordinatorServer:
    """A coordinator server (not started). Call ``start()``, then ``ready()``: it resumes the runs
    left in progress and reports SERVING. ``server.coordinator`` is the core, for in-process use;
    ``stop()`` stops its run workers (runs stay as recorded) and closes the channels.

    ``scorer_address``: one address, or several (scorer replicas, a round's scoring sharded over
    them); ``score_shards``: the parts a round is cut into (0 = one per address; with one address
    that resolves to several replicas, e.g. ``dns:///scorer:50053``, as many as there are replicas);
    ``score_attempts``: replicas tried per shard before the round fails."""
    pool = PoolClient(pool_address, token=token, timeout=rpc_timeout, tls=tls)
    runs = RunStoreClient(pool_address, token=token, timeout=rpc_timeout, tls=tls)
    trainer = TrainerClient(trainer_address, token=token, timeout=rpc_timeout, tls=tls)
    addresses = [scorer_address] if isinstance(scorer_address, str) else list(scorer_address)
    scorer = ScorerReplicas(
        [ScorerClient(address, token=token, tls=tls) for address in addresses],
        names=[f"scorer at {address}" for address in addresses],
        shards=score_shards,
        attempts=score_attempts,
    )
    core = Coordinator(
        pool,
        runs,
        trainer,
        scorer,
        retry_backoff=retry_backoff,
        outage_seconds=outage_seconds,
        supervise_seconds=supervise_seconds,
    )
    server = CoordinatorServer(settings, [registration(CoordinatorServicer(core))], name="coordinator")
    server.coordinator = core

    def ready() -> list[int]:
        resumed = core.recover()
        server.set_serving()
        return resumed

    server.ready = ready
    for client in (scorer, trainer, runs, pool):
        server.on_stop(client.close)
    server.on_stop(core.close)
    return server


def scorer_address_list(value: str) -> list[str]:
    """The scorer addresses of ``--scorer-address`` (comma-separated, blanks ignored)."""
    return [address.strip() for address in value.split(",") if address.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lesslabels coordinator", description="Run the coordinator service.")
    add_server_flags(parser, DEFAULT_PORT)
    add_flag(parser, "--pool-address", default="127.0.0.1:50051", help="pool service HOST:PORT")
    add_flag(parser, "--trainer-address", default="127.0.0.1:50052", help="trainer service HOST:PORT")
    add_flag(
        parser,
        "--scorer-address",
        default="127.0.0.1:50053",
        help="scorer service HOST:PORT; several scorer replicas as a comma-separated list (a round is scored in "
        "shards over them), or one DNS name that resolves to all of them (dns:///scorer:50053, spread by "
        "round_robin: give --score-shards)",
    )
    add_flag(
        parser,
        "--score-shards",
        default=0,
        type=int,
        help="parts a round's scoring is cut into, scored concurrently (0 = one per --scorer-address; with one "
        "DNS name of several replicas, their number)",
    )
    add_flag(
        parser,
        "--score-attempts",
        default=DEFAULT_ATTEMPTS,
        type=int,
        help="scorer replicas a shard is tried on (UNAVAILABLE, DEADLINE_EXCEEDED, a dropped stream) before the "
        "round fails and is retried as in an outage",
    )
    add_flag(
        parser,
        "--dependency-timeout",
        default=300.0,
        type=float,
        help="seconds to wait for pool, trainer and scorer to be serving at start-up",
    )
    add_flag(parser, "--rpc-timeout", default=30.0, type=float, help="deadline of each unary call to another service")
    add_flag(
        parser,
        "--outage-seconds",
        default=300.0,
        type=float,
        help="how long a run rides out an unreachable (or timing-out) pool, trainer or scorer before it fails",
    )
    args = parser.parse_args(argv)
    settings = server_settings(args)
    if args.rpc_timeout <= 0:
        parser.error("--rpc-timeout must be positive")
    if args.outage_seconds < 0:
        parser.error("--outage-seconds must not be negative")
    scorer_addresses = scorer_address_list(args.scorer_address)
    if not scorer_addresses:
        parser.error("--scorer-address must name at least one scorer")
    if not 0 <= args.score_shards <= MAX_SHARDS:
        parser.error(f"--score-shards must be in 0..{MAX_SHARDS} (0 = one per --scorer-address)")
    if args.score_attempts < 1:
        parser.error("--score-attempts must be at least 1")
    setup_logging(settings.log_level, "coordinator")
    tracing.configure("coordinator")  # OTEL_* variables; off when none is set
    server = build_server(
        settings,
        args.pool_address,
        args.trainer_address,
        scorer_addresses,
        score_shards=args.score_shards,
        score_attempts=args.score_attempts,
        token=settings.outbound_token,
        tls=settings.client_tls,
        rpc_timeout=args.rpc_timeout,
        outage_seconds=args.outage_seconds,
    )
    # Health answers NOT_SERVING while we wait for the dependencies, instead of crashing.
    server.start()
    try:
        # One scorer replica serving is enough: a round's shards go to the replicas that answer.
        for address, service in (
            (args.pool_address, POOL_SERVICE),
            (args.trainer_address, TRAINER_SERVICE),
            (scorer_addresses, SCORER_SERVICE),
        ):
            wait_until_serving(
                address,
                service=service,
                timeout=args.dependency_timeout,
                token=settings.outbound_token,
                tls=settings.client_tls,
            )
    except errors.Unavailable as exc:
        log.error("event=dependency_unavailable error=%r", str(exc))
        server.stop(0)
        return 1
    resumed = server.ready()
    log.info("event=ready resumed_runs=%s", resumed)
    server.serve_forever()
    return 0
