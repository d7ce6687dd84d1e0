"""``lesslabels pool``: run the pool process: the public pool service and the internal run store, on
one server and one store."""

from __future__ import annotations

import argparse
import logging

from lesslabels.common.config import ServerSettings, add_flag, add_server_flags, server_settings
from lesslabels.common.logs import setup_logging
from lesslabels.common import tracing
from lesslabels.common.server import Server
from lesslabels.pool import importers, run_servicer, servicer
from lesslabels.pool.store import PoolStore

log = logging.getLogger(__name__)

DEFAULT_PORT = 50051
DEFAULT_DATABASE_URL = "sqlite:///.lesslabels/pool.db"


def build_server(settings: ServerSettings, database_url: str, *, max_concurrent_imports: int = 2) -> Server:
    """A pool server (PoolService and RunStore) on a migrated database; call ``start()`` then
    ``set_serving()``. Pages of samples stay under a quarter of the message limit."""
    store = PoolStore(database_url)
    pool = servicer.PoolServicer(
        store,
        page_bytes=min(servicer.PAGE_BYTES, settings.max_message_bytes // 4),
        max_concurrent_imports=max_concurrent_imports,
    )
    runs = run_servicer.RunStoreServicer(store)
    server = Server(settings, [servicer.registration(pool), run_servicer.registration(runs)], name="pool")
    server.on_stop(store.close)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lesslabels pool", description="Run the pool service.")
    add_server_flags(parser, DEFAULT_PORT)
    add_flag(
        parser,
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="SQLAlchemy URL (sqlite:///path.db, postgresql+psycopg://...)",
    )
    args = parser.parse_args(argv)
    settings = server_settings(args)
    setup_logging(settings.log_level, "pool")
    tracing.configure("pool")  # OTEL_* variables; off when none is set
    importers.load_readers()
    # Migrating happens before the port opens; health is SERVING once the store is ready.
    server = build_server(settings, args.database_url)
    server.start()
    server.set_serving()
    server.serve_forever()
    return 0
