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
)
from tests.integration.values import CHILD_ENV, VARIABLES

pytestmark = pytest.mark.integration

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("LESSLABELS_")}


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
    assert set(services) == {"pool", "trainer", "scorer", "coordinator", "web"}
    assert {name: s.port for name, s in services.items()} == {
        "pool": 50051,
        "trainer": 50052,
        "scorer": 50053,
        "coordinator": 50054,
        "web": 8080,
    }
    assert {name for name, s in services.items() if s.published} == {"scorer", "coordinator", "web"}
    assert all(
        s.restart == "unless-stopped" and s.environment["LESSLABELS_TOKEN"] == VARIABLES["LESSLABELS_TOKEN"]
        for s in services.values()
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
            "LESSLABELS_DATABASE_URL: ${",
            "LESSLABELS_DATABSE_URL: ${",
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
            "${LESSLABELS_DATABASE_URL:-sqlite:////data/pool.db}",
            "sqlite:////var/pool.db",
            r"pool: LESSLABELS_DATABASE_URL=sqlite:////var/pool.db is not on a volume",
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
    ],
)
def test_a_wiring_mistake_fails_before_anything_starts(tmp_path, old, new, message):
    path = broken_copy(tmp_path, old, new)
    with pytest.raises(ComposeError, match=message):
        topology_of(path, tmp_path)
    assert not (tmp_path / "run" / "logs").exists()  # nothing was started


def test_a_bad_flag_in_a_command_fails_when_the_service_starts(tmp_path):
    path = broken_copy(tmp_path, 'command: ["pool"]', 'command: ["pool", "--prot", "50051"]')
    topology = topology_of(path, tmp_path)
    try:
        with pytest.raises(ComposeError, match=r"service pool exited with code 2 while starting") as info:
            topology.up(["pool"])
    finally:
        topology.down()
    assert "unrecognized arguments: --prot 50051" in str(info.value)  # the end of its log comes with it


def test_a_bad_setting_value_fails_when_the_service_starts(tmp_path):
    path = broken_copy(
        tmp_path, "LESSLABELS_KEEP_CHECKPOINTS: ${LESSLABELS_KEEP_CHECKPOINTS:-3}", 'LESSLABELS_KEEP_CHECKPOINTS: "-1"'
    )
    topology = topology_of(path, tmp_path)
    try:
        with pytest.raises(ComposeError, match=r"service trainer exited with code 2 while starting") as info:
            topology.up(["trainer"])
        assert topology.health("pool")[0]  # its dependency did start
    finally:
        topology.down()
    assert "--keep-checkpoints -1: must not be negative" in str(info.value)


@pytest.mark.parametrize("policy, comes_back", [("unless-stopped", True), ('"no"', False)])
def test_the_restart_policy_of_the_file_decides_whether_a_killed_service_comes_back(tmp_path, policy, comes_back):
    path = broken_copy(tmp_path, "restart: unless-stopped", f"restart: {policy}")
    topology = topology_of(path, tmp_path)
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


def test_the_token_must_be_set():
    with pytest.raises(ComposeError, match=r"required variable LESSLABELS_TOKEN is missing a value"):
        load(COMPOSE_FILE, {"LESSLABELS_INTERNAL_TOKEN": "i"})
    with pytest.raises(ComposeError, match=r"LESSLABELS_TOKEN"):
        load(COMPOSE_FILE, {"LESSLABELS_TOKEN": "", "LESSLABELS_INTERNAL_TOKEN": "i"})


def test_the_internal_token_must_be_set():
    with pytest.raises(ComposeError, match=r"required variable LESSLABELS_INTERNAL_TOKEN is missing a value"):
        load(COMPOSE_FILE, {"LESSLABELS_TOKEN": "t"})


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
        assert pool_env["LESSLABELS_DATABASE_URL"] == f"sqlite:///{tmp_path.resolve()}/volumes/pool-data/pool.db"
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
