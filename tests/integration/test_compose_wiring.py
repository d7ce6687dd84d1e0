"""The harness checks the compose file's wiring: a copy of docker-compose.yml with one mistake
(a wrong command, variable, value or dependency) makes it fail, naming the mistake.

Plus ``docker compose config`` on the real file where the Compose client is installed, and the
Dockerfile's contract with the harness (its ENTRYPOINT is the console script, a non-root user).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import tomllib

import pytest

from tests.integration.compose import (
    COMPOSE_FILE,
    CPU_OVERRIDE,
    ROOT,
    ComposeError,
    LocalTopology,
    check_wiring,
    interpolate,
    load,
    parse,
    stand_in_unavailable_reason,
)
from tests.integration.values import CHILD_ENV, POSTGRES_PASSWORD, VARIABLES

pytestmark = pytest.mark.integration

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("LESSLABELS_")}


def needs_stand_ins(topology: LocalTopology) -> None:
    """Skip, saying why, where an image-only service (postgres) cannot run here."""
    reason = stand_in_unavailable_reason(topology.services)
    if reason is not None:
        topology.down()
        pytest.skip(reason)


def broken_copy(tmp_path, old: str, new: str, *, count: int = 1):
    """docker-compose.yml (and its Dockerfile) copied to ``tmp_path`` with ``old`` replaced by ``new``."""
    text = COMPOSE_FILE.read_text()
    assert text.count(old) == count, f"{old!r} occurs {text.count(old)} times in docker-compose.yml"
    (tmp_path / "docker-compose.yml").write_text(text.replace(old, new))
    shutil.copy(ROOT / "Dockerfile", tmp_path / "Dockerfile")
    return tmp_path / "docker-compose.yml"


def topology_of(path, tmp_path, **kw) -> LocalTopology:
    kw.setdefault("variables", VARIABLES)
    return LocalTopology(tmp_path / "run", compose_file=path, env=CHILD_ENV, startup_timeout=60, **kw)


def test_the_real_file_passes_every_check():
    services = parse(load(COMPOSE_FILE, VARIABLES))
    assert set(services) == {"postgres", "pool", "trainer", "scorer", "coordinator", "web"}
    assert {name: s.port for name, s in services.items()} == {
        "postgres": 5432,
        "pool": 50051,
        "trainer": 50052,
        "scorer": 50053,
        "coordinator": 50054,
        "web": 8080,
    }
    assert {name for name, s in services.items() if s.published} == {"scorer", "coordinator", "web"}
    assert all(s.restart == "unless-stopped" for s in services.values())
    assert all(
        s.environment["LESSLABELS_TOKEN"] == VARIABLES["LESSLABELS_TOKEN"]
        for name, s in services.items()
        if name != "postgres"
    )
    # The servers also take the internal token (the web app is a public caller: it has none).
    assert {name for name, s in services.items() if "LESSLABELS_INTERNAL_TOKEN" in s.environment} == {
        "pool",
        "trainer",
        "scorer",
        "coordinator",
    }
    assert services["pool"].environment["LESSLABELS_INTERNAL_TOKEN"] == VARIABLES["LESSLABELS_INTERNAL_TOKEN"]
    # TLS is off unless its variables are set.
    assert (
        services["scorer"].environment["LESSLABELS_TLS_CERT"] == services["web"].environment["LESSLABELS_TLS_CA"] == ""
    )
    check_wiring(services)


@pytest.mark.parametrize(
    "old, new, message",
    [
        # A command the image does not have.
        ('command: ["trainer"]', 'command: ["trainr"]', r"trainer: `lesslabels trainr --help` failed"),
        # A misspelt variable: the service would silently use its default.
        (
            "LESSLABELS_DATABASE_URL: postgresql",
            "LESSLABELS_DATABSE_URL: postgresql",
            r"pool: LESSLABELS_DATABSE_URL is not a setting of `lesslabels pool`",
        ),
        (
            "LESSLABELS_SCORER_ADDRESS: scorer:50053",
            "LESSLABELS_SCORER_ADRESS: scorer:50053",
            r"coordinator: LESSLABELS_SCORER_ADRESS is not a setting",
        ),
        # A value pointing at the wrong port of a service.
        (
            "LESSLABELS_TRAINER_ADDRESS: trainer:50052",
            "LESSLABELS_TRAINER_ADDRESS: trainer:50051",
            r"coordinator refers to trainer:50051, but trainer listens on 50052",
        ),
        # A call without the dependency that orders the start-up.
        (
            "      scorer:\n        condition: service_healthy\n",
            "",
            r"coordinator calls scorer but has no depends_on scorer",
        ),
        (
            '      pool:\n        condition: service_healthy\n    healthcheck:\n      test: ["CMD", "lesslabels", '
            '"probe", "127.0.0.1:50052"]',
            '    healthcheck:\n      test: ["CMD", "lesslabels", "probe", "127.0.0.1:50052"]',
            r"trainer calls pool but has no depends_on pool",
        ),
        # A dependency on nothing, and a cycle.
        (
            '      trainer:\n        condition: service_healthy\n    healthcheck:\n      test: ["CMD", "lesslabels", '
            '"probe", "127.0.0.1:50053"]',
            '      trainr:\n        condition: service_healthy\n    healthcheck:\n      test: ["CMD", "lesslabels", '
            '"probe", "127.0.0.1:50053"]',
            r"scorer depends on 'trainr', which is not a service",
        ),
        (
            '    depends_on:\n      pool:\n        condition: service_healthy\n    healthcheck:\n      test: ["CMD", '
            '"lesslabels", "probe", "127.0.0.1:50052"]',
            "    depends_on:\n      pool:\n        condition: service_healthy\n      coordinator:\n        condition: "
            'service_healthy\n    healthcheck:\n      test: ["CMD", "lesslabels", "probe", "127.0.0.1:50052"]',
            r"dependency cycle: .*trainer -> coordinator -> .*trainer|dependency cycle: .*coordinator -> .*trainer",
        ),
        # A health check that probes another service, and a port setting that contradicts expose.
        (
            'test: ["CMD", "lesslabels", "probe", "127.0.0.1:50054"]',
            'test: ["CMD", "lesslabels", "probe", "pool:50051"]',
            r"coordinator: healthcheck lesslabels probe pool:50051 does not probe its own port 50054",
        ),
        ('LESSLABELS_PORT: "50053"', 'LESSLABELS_PORT: "50055"', r"scorer: LESSLABELS_PORT=50055 but it exposes 50053"),
        # State written outside the volumes: lost whenever the container is recreated.
        (
            "LESSLABELS_CHECKPOINT_DIR: /checkpoints\n      LESSLABELS_KEEP",
            "LESSLABELS_CHECKPOINT_DIR: /checkpoint\n      LESSLABELS_KEEP",
            r"trainer: LESSLABELS_CHECKPOINT_DIR=/checkpoint is not on a volume",
        ),
        (
            "PGDATA: /var/lib/postgresql/data/pgdata",
            "PGDATA: /var/lib/postgresql/pgdata",
            r"postgres: PGDATA=/var/lib/postgresql/pgdata is not on a volume",
        ),
        # The pool's database: its address, its dependency, its health check.
        ("@postgres:5432/", "@postgres:5433/", r"pool refers to postgres:5433, but postgres listens on 5432"),
        (
            "    depends_on:\n      postgres:\n        condition: service_healthy\n",
            "",
            r"pool calls postgres but has no depends_on postgres",
        ),
        (
            "@127.0.0.1:5432/",
            "@127.0.0.1:5433/",
            r"postgres: healthcheck pg_isready .* does not probe its own port 5432",
        ),
        (
            "image: ${LESSLABELS_POSTGRES_IMAGE:-docker.io/library/postgres}:",
            "image: ${LESSLABELS_POSTGRES_IMAGE:-mysql}:",
            r"service postgres runs image mysql:16, which has no local stand-in",
        ),
    ],
    ids=[
        "command",
        "variable-name",
        "variable-name-2",
        "address-port",
        "missing-dependency",
        "missing-dependency-2",
        "unknown-dependency",
        "cycle",
        "healthcheck",
        "port",
        "checkpoints-off-volume",
        "database-off-volume",
        "database-port",
        "database-dependency",
        "database-healthcheck",
        "database-image",
    ],
)
def test_a_wiring_mistake_fails_before_anything_starts(tmp_path, old, new, message):
    path = broken_copy(tmp_path, old, new)
    with pytest.raises(ComposeError, match=message):
        topology_of(path, tmp_path)
    assert not (tmp_path / "run" / "logs").exists()  # nothing was started


@pytest.mark.slow  # 8 s: starts the file's services to see one fail (make test-slow, CI)
def test_a_bad_flag_in_a_command_fails_when_the_service_starts(tmp_path):
    path = broken_copy(tmp_path, 'command: ["pool"]', 'command: ["pool", "--prot", "50051"]')
    topology = topology_of(path, tmp_path)
    needs_stand_ins(topology)
    try:
        with pytest.raises(ComposeError, match=r"service pool exited with code 2 while starting") as info:
            topology.up(["pool"])
    finally:
        topology.down()
    assert "unrecognized arguments: --prot 50051" in str(info.value)  # the end of its log comes with it


@pytest.mark.slow  # 12 s: starts the file's services to see one fail (make test-slow, CI)
def test_a_bad_setting_value_fails_when_the_service_starts(tmp_path):
    path = broken_copy(
        tmp_path, "LESSLABELS_KEEP_CHECKPOINTS: ${LESSLABELS_KEEP_CHECKPOINTS:-3}", 'LESSLABELS_KEEP_CHECKPOINTS: "-1"'
    )
    topology = topology_of(path, tmp_path)
    needs_stand_ins(topology)
    try:
        with pytest.raises(ComposeError, match=r"service trainer exited with code 2 while starting") as info:
            topology.up(["trainer"])
        assert topology.health("pool")[0]  # its dependency did start
    finally:
        topology.down()
    assert "--keep-checkpoints -1: must not be negative" in str(info.value)


@pytest.mark.slow  # 10 s each: kills a service and waits out the restart (make test-slow, CI)
@pytest.mark.parametrize("policy, comes_back", [("unless-stopped", True), ('"no"', False)])
def test_the_restart_policy_of_the_file_decides_whether_a_killed_service_comes_back(tmp_path, policy, comes_back):
    path = broken_copy(tmp_path, "restart: unless-stopped", f"restart: {policy}", count=5)
    topology = topology_of(path, tmp_path)
    needs_stand_ins(topology)
    try:
        topology.up(["pool"])
        topology.kill("pool")
        deadline = time.monotonic() + (30 if comes_back else 3)  # the supervisor looks every 0.2 s
        while time.monotonic() < deadline and topology.restarts("pool") == 0:
            time.sleep(0.2)
        if comes_back:
            topology.wait_healthy("pool", timeout=30)
            assert topology.restarts("pool") == 1
        else:
            assert topology.restarts("pool") == 0 and not topology.is_running("pool")
    finally:
        topology.down()


def test_the_pool_does_not_come_up_with_a_wrong_database_password(tmp_path):
    """The local postgres takes passwords seriously: a pool given another password than the one the
    postgres service was created with fails at its start, naming the cause."""
    path = broken_copy(
        tmp_path,
        "PGPASSWORD: ${LESSLABELS_POSTGRES_PASSWORD:?set LESSLABELS_POSTGRES_PASSWORD, the password of the pool's PostgreSQL}",
        "PGPASSWORD: not-the-password",
    )
    topology = topology_of(path, tmp_path)
    needs_stand_ins(topology)
    try:
        with pytest.raises(ComposeError, match=r"service pool exited with code \d+ while starting") as info:
            topology.up(["pool"])
        assert topology.health("postgres")[0]
    finally:
        topology.down()
    assert "password authentication failed" in str(info.value)


def test_the_token_must_be_set():
    with pytest.raises(ComposeError, match=r"required variable LESSLABELS_TOKEN is missing a value"):
        load(COMPOSE_FILE, {"LESSLABELS_INTERNAL_TOKEN": "i"})
    with pytest.raises(ComposeError, match=r"LESSLABELS_TOKEN"):
        load(COMPOSE_FILE, {"LESSLABELS_TOKEN": "", "LESSLABELS_INTERNAL_TOKEN": "i"})


def test_the_internal_token_must_be_set():
    with pytest.raises(ComposeError, match=r"required variable LESSLABELS_INTERNAL_TOKEN is missing a value"):
        load(COMPOSE_FILE, {"LESSLABELS_TOKEN": "t", "LESSLABELS_POSTGRES_PASSWORD": "p"})


def test_the_postgres_password_must_be_set():
    with pytest.raises(ComposeError, match=r"required variable LESSLABELS_POSTGRES_PASSWORD is missing a value"):
        load(COMPOSE_FILE, {"LESSLABELS_TOKEN": "t", "LESSLABELS_INTERNAL_TOKEN": "i"})


def test_the_pool_runs_on_the_postgres_service_with_its_credentials():
    """The pool's URL names the postgres service's port, user and database; its password is the one
    the postgres service is created with; all from variables that .env.example documents."""
    from sqlalchemy.engine import make_url

    variables = dict(VARIABLES, LESSLABELS_POSTGRES_USER="alice", LESSLABELS_POSTGRES_DB="pooldb")
    document = load(COMPOSE_FILE, variables)
    services = parse(document)
    postgres, pool = services["postgres"], services["pool"]
    # The official image by default, a pinned major version (deploy/base-images.sh's stand-in otherwise).
    assert re.fullmatch(r"docker\.io/library/postgres:\d+", postgres.image) and postgres.image_name == "postgres"
    assert postgres.environment["POSTGRES_USER"] == "alice" and postgres.environment["POSTGRES_DB"] == "pooldb"
    assert pool.environment["PGPASSWORD"] == postgres.environment["POSTGRES_PASSWORD"] == POSTGRES_PASSWORD
    url = make_url(pool.environment["LESSLABELS_DATABASE_URL"])
    assert (url.drivername, url.host, url.port, url.username, url.database, url.password) == (
        "postgresql+psycopg",
        "postgres",
        postgres.port,
        "alice",
        "pooldb",
        None,  # the secret stays out of the URL (PGPASSWORD)
    )
    assert pool.depends_on["postgres"] == "service_healthy"
    # Its data on a named volume; its health check pg_isready on its own port, as the pool's user.
    (mount,) = postgres.mounts
    assert mount.named and mount.volume in document["volumes"] and not mount.read_only
    assert postgres.environment["PGDATA"].startswith(mount.target.rstrip("/") + "/")
    assert postgres.healthcheck[0] == "pg_isready"
    assert "postgresql://alice@127.0.0.1:5432/pooldb" in postgres.healthcheck[-1]
    # The defaults.
    defaults = parse(load(COMPOSE_FILE, VARIABLES))
    assert make_url(defaults["pool"].environment["LESSLABELS_DATABASE_URL"]).database == "lesslabels"
    # Every variable the file reads is in .env.example, the secrets without a value.
    template = (ROOT / ".env.example").read_text()
    documented = dict(re.findall(r"^#?(LESSLABELS_[A-Z0-9_]+)=(.*)$", template, re.M))
    used = set(re.findall(r"\$\{(LESSLABELS_[A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    assert used - set(documented) == set()
    required = set(re.findall(r"\$\{(LESSLABELS_[A-Z0-9_]+):\?", COMPOSE_FILE.read_text()))
    assert required == {"LESSLABELS_TOKEN", "LESSLABELS_INTERNAL_TOKEN", "LESSLABELS_POSTGRES_PASSWORD"}
    assert all(documented[name] == "" for name in required)
    assert "/.env" in (ROOT / ".gitignore").read_text().splitlines()  # the filled-in copy is never committed


@pytest.mark.parametrize(
    "text, expected",
    [
        ("${A}", "a"),
        ("$A/x", "a/x"),
        ("${B:-d}", "d"),
        ("${E:-d}", "d"),
        ("${E-d}", ""),
        ("${A:+yes}", "yes"),
        ("${B:+yes}", ""),
        ("$$A", "$A"),
        ("${B}", ""),
        ("x${A}y${A}", "xaya"),
    ],
)
def test_interpolation_follows_compose(text, expected):
    assert interpolate(text, {"A": "a", "E": ""}) == expected


def test_paths_and_addresses_are_rewritten_for_local_processes(tmp_path):
    topology = LocalTopology(tmp_path, variables=VARIABLES, check_variables=False)
    try:
        pool_env, coordinator_env = topology.environment("pool"), topology.environment("coordinator")
        assert (
            pool_env["LESSLABELS_DATABASE_URL"]
            == f"postgresql+psycopg://lesslabels@{topology.address('postgres')}/lesslabels"
        )
        assert topology.environment("postgres")["PGDATA"] == str(tmp_path.resolve() / "volumes/postgres-data/pgdata")
        assert topology.command("postgres")[-2:] == ["--port", str(topology.ports["postgres"])]
        assert topology.health_command("postgres")[-1].endswith(f"@{topology.address('postgres')}/lesslabels")
        assert pool_env["LESSLABELS_PORT"] == str(topology.ports["pool"]) and pool_env["LESSLABELS_HOST"] == "127.0.0.1"
        assert coordinator_env["LESSLABELS_SCORER_ADDRESS"] == topology.address("scorer")
        assert (
            topology.environment("scorer")["LESSLABELS_CHECKPOINT_DIR"]
            == topology.environment("trainer")["LESSLABELS_CHECKPOINT_DIR"]
            == str(tmp_path.resolve() / "volumes/checkpoints")
        )
        assert topology.health_command("trainer")[-1] == topology.address("trainer")
    finally:
        topology.down()


def test_dockerfile_entrypoint_is_the_console_script_and_the_user_is_not_root():
    dockerfile = (ROOT / "Dockerfile").read_text()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert re.search(r'^ENTRYPOINT \["lesslabels"\]$', dockerfile, re.M) and "lesslabels" in scripts
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", dockerfile, re.M)


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose client is not installed",
)
@pytest.mark.parametrize("files", [[COMPOSE_FILE], [COMPOSE_FILE, CPU_OVERRIDE]], ids=["gpu", "cpu"])
def test_docker_compose_config_accepts_the_file(files):
    argv = ["docker", "compose"] + [a for f in files for a in ("-f", str(f))]
    ok = subprocess.run(
        argv + ["config", "--quiet"],
        capture_output=True,
        text=True,
        env=dict(CLEAN_ENV, LESSLABELS_TOKEN="t", LESSLABELS_INTERNAL_TOKEN="i"),
    )
    assert ok.returncode == 0, ok.stderr
    missing = subprocess.run(argv + ["config", "--quiet"], capture_output=True, text=True, env=CLEAN_ENV)
    assert missing.returncode != 0 and "LESSLABELS_TOKEN" in missing.stderr
