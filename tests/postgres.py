"""Start a throwaway PostgreSQL cluster for tests, when the server binaries are installed."""

from __future__ import annotations

import glob
import os
import pathlib
import shutil
import socket
import subprocess
import tempfile
import time


def find_bin() -> pathlib.Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if candidates:
        return pathlib.Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return pathlib.Path(initdb).parent if initdb else None


def as_postgres_user() -> list[str]:
    """The prefix that runs a server binary as the postgres user when we are root (initdb and
    postgres refuse to run as root); empty otherwise."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def initdb(bindir: pathlib.Path, data: pathlib.Path, *, user: str = "postgres", password: str = "") -> None:
    """A new cluster in ``data`` with superuser ``user``: TCP logins need ``password`` when one is given
    (scram-sha-256), any login is trusted otherwise."""
    auth = ["--auth=trust"]
    with tempfile.TemporaryDirectory(prefix="lesslabels-pw-") as folder:
        if password:
            pwfile = pathlib.Path(folder) / "pw"
            pwfile.write_text(password + "\n")
            if as_postgres_user():
                shutil.chown(folder, "postgres")
                shutil.chown(pwfile, "postgres")
            auth = ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        subprocess.run(
            [*as_postgres_user(), str(bindir / "initdb"), "-D", str(data), "-U", user, *auth, "-E", "UTF8"],
            check=True,
            capture_output=True,
        )


class PostgresCluster:
    """initdb + postgres on a free loopback port in a temporary folder; stopped on close()."""

    def __init__(self, bindir: pathlib.Path):
        self.bindir = bindir
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="lesslabels-pg-"))
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self._as = as_postgres_user()
        if self._as:
            shutil.chown(self.dir, "postgres")
        data = self.dir / "data"
        initdb(bindir, data)
        self.proc = subprocess.Popen(
            [
                *self._as,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        else:
            self.close()
            raise RuntimeError("postgres did not start")
        self._databases = 0

    def new_database(self) -> str:
        import psycopg

        self._databases += 1
        name = f"pool{self._databases}"
        for _ in range(50):
            try:
                with psycopg.connect(
                    f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
                ) as conn:
                    conn.execute(f"CREATE DATABASE {name}")
                break
            except psycopg.OperationalError:
                time.sleep(0.2)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        if getattr(self, "proc", None) and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)
