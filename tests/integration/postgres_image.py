"""A local stand-in for the official ``postgres`` image, run by ``LocalTopology`` in its place.

It does what the image's entrypoint does with the service's environment, on this machine's
PostgreSQL binaries (``tests.postgres``): on the first start (``PGDATA`` empty) a cluster whose
superuser is ``POSTGRES_USER`` with password ``POSTGRES_PASSWORD`` (required, as the image requires
it; TCP logins must give it) and the database ``POSTGRES_DB``; then the server, in the foreground, on
127.0.0.1 and ``--port``. A restart finds its data in ``PGDATA`` (a volume folder) again.

    python -m tests.integration.postgres_image --port 5432
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shutil
import subprocess
import sys

from tests.postgres import as_postgres_user, find_bin, initdb


def _reachable_by_postgres(path: pathlib.Path) -> None:
    """As root the server runs as the postgres user: it owns ``path`` and may pass through its parents
    (pytest's temporary folders are private to root)."""
    shutil.chown(path, "postgres")
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5432)
    args = parser.parse_args(argv)
    bindir = find_bin()
    if bindir is None:
        print("PostgreSQL server binaries not installed (apt-get install postgresql)", file=sys.stderr)
        return 2
    password = os.environ.get("POSTGRES_PASSWORD", "")
    if not password:
        print("POSTGRES_PASSWORD is required (the official image refuses to start without it)", file=sys.stderr)
        return 1
    user = os.environ.get("POSTGRES_USER") or "postgres"
    database = os.environ.get("POSTGRES_DB") or user
    data = pathlib.Path(os.environ.get("PGDATA") or "/var/lib/postgresql/data")
    data.parent.mkdir(parents=True, exist_ok=True)
    if as_postgres_user():
        _reachable_by_postgres(data.parent)
    if not (data / "PG_VERSION").exists():
        initdb(bindir, data, user=user, password=password)
        if database != "postgres":
            # Single-user mode creates the database before any client can connect, as the image does.
            subprocess.run(
                [*as_postgres_user(), str(bindir / "postgres"), "--single", "-D", str(data), "postgres"],
                input='CREATE DATABASE "{}"\n'.format(database.replace('"', '""')),
                text=True,
                check=True,
                capture_output=True,
            )
    server = [
        *as_postgres_user(),
        str(bindir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(args.port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        "-c",
        "fsync=off",
    ]
    os.execvp(server[0], server)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
