"""Foundation checks: stubs up to date, architecture boundaries (no torch where none belongs, the
import graph between packages), migrations, the CLI-started pool."""

from __future__ import annotations

import ast
import filecmp
import os
import pathlib
import socket
import subprocess
import sys
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.helpers import ROOT


def test_committed_stubs_are_up_to_date(tmp_path):
    pytest.importorskip("grpc_tools")
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from gen_protos import GENERATED, PACKAGE_DIR, generate
    finally:
        sys.path.pop(0)
    generate(tmp_path)
    generated = tmp_path / "lesslabels"
    fresh = sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file())
    existing = sorted(
        p.relative_to(PACKAGE_DIR)
        for name in GENERATED
        for p in (PACKAGE_DIR / name).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    assert fresh == existing, "stub files differ from protos/: run `make proto`"
    stale = [str(p) for p in fresh if not filecmp.cmp(generated / p, PACKAGE_DIR / p, shallow=False)]
    assert stale == [], f"stale stubs (run `make proto`): {stale}"


#: Modules whose import must not load the heavy or wire-level packages named beside them.
TORCH = ("torch", "transformers")
#: DataFrames and Parquet are imported when asked for (a frame, a Parquet file), never on import.
TABLES = ("pandas", "pyarrow")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("lesslabels.pool.main", (*TORCH, *TABLES)),
        ("lesslabels.coordinator.main", TORCH),
        ("lesslabels.cli.main", (*TORCH, *TABLES)),
        ("lesslabels.common.channels", TORCH),
        ("lesslabels.client", (*TORCH, *TABLES)),
        ("lesslabels.web.app", TORCH),
        # The shared types carry no protobuf: only lesslabels.contract.wire does.
        ("lesslabels.contract", (*TORCH, "google.protobuf")),
    ],
)
def test_torch_free_packages_do_not_import_torch(package, forbidden):
    code = (
        f"import sys, importlib; importlib.import_module({package!r}); "
        f"print(' '.join(m for m in {forbidden!r} if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, timeout=120
    )
    assert out.stdout.split() == [], f"importing {package} loads {out.stdout.strip()}"


#: The intended import graph between the top-level packages of lesslabels (services/__init__.py
#: says why): package -> the packages it may import. The generated v1/ and inference/ are not drawn.
ALLOWED_IMPORTS = {
    "__main__": {"cli"},
    "common": set(),
    "contract": {"common", "v1"},
    "client": {"common", "contract", "v1"},
    "pool": {"common", "contract", "v1", "client"},
    "modeling": {"common", "contract"},
    "trainer": {"common", "contract", "v1", "client", "modeling", "pool"},
    "scorer": {"common", "contract", "v1", "client", "modeling", "inference"},
    "coordinator": {"common", "contract", "v1", "client", "pool"},
    "demo": {"common"},
    "cli": {"common", "contract", "client", "demo", "modeling"},
    "web": {"common", "contract", "client"},
}
#: Edges allowed from these modules only: the adapters that sit on them.
ONLY_FROM = {
    ("contract", "v1"): {"contract/wire.py"},
    ("pool", "client"): {"pool/run_store_client.py"},
    ("coordinator", "pool"): {"coordinator/main.py"},
    ("trainer", "pool"): {"trainer/label_source.py"},
    # export-model reads a checkpoint on this machine (torch, imported when the command runs).
    ("cli", "modeling"): {"cli/export_model.py"},
}
GENERATED = {"v1", "inference"}


def import_edges(services: pathlib.Path) -> dict[tuple[str, str], set[str]]:
    """(package, package it imports) -> the files (relative to services/) with such an import, for
    every .py under ``services`` but the generated stubs; a top-level module is its own "package"."""
    edges: dict[tuple[str, str], set[str]] = {}
    for path in sorted(services.rglob("*.py")):
        rel = path.relative_to(services)
        if rel.parts[0] in GENERATED:
            continue
        source = rel.parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level:  # relative: resolve against the file
                base = ["lesslabels", *rel.parts[:-1]][: len(rel.parts) - node.level + 1]
                names = [".".join([*base, *([node.module] if node.module else [])])]
                if not node.module:
                    names = [f"{names[0]}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module == "lesslabels":
                names = [f"lesslabels.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                parts = name.split(".")
                if parts[0] == "lesslabels" and len(parts) > 1 and parts[1] != source:
                    edges.setdefault((source, parts[1]), set()).add(rel.as_posix())
    return edges


def test_packages_import_only_along_the_intended_graph():
    edges = import_edges(ROOT / "services")
    assert ("coordinator", "contract") in edges and ("cli", "client") in edges  # the walk sees imports at all
    packages = {p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists()} - GENERATED
    assert packages <= set(ALLOWED_IMPORTS), f"packages with no place in the graph: {packages - set(ALLOWED_IMPORTS)}"
    outside = sorted(
        f"{source} -> {target} ({', '.join(sorted(files))})"
        for (source, target), files in edges.items()
        if target not in ALLOWED_IMPORTS.get(source, set())
    )
    assert outside == [], "imports outside the graph of services/__init__.py:\n" + "\n".join(outside)
    misplaced = sorted(
        f"{source} -> {target} from {', '.join(sorted(files - ONLY_FROM[source, target]))}"
        for (source, target), files in edges.items()
        if (source, target) in ONLY_FROM and files - ONLY_FROM[source, target]
    )
    assert misplaced == [], "edges allowed only from their adapter module:\n" + "\n".join(misplaced)


def test_migration_from_empty_to_head_matches_models(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, inspect

    from lesslabels.pool.db import alembic_config, migrate
    from lesslabels.pool.tables import Base

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        assert context.get_current_revision() == head
        assert set(inspect(conn).get_table_names()) >= {
            "datasets",
            "samples",
            "label_events",
            "current_labels",
            "runs",
            "rounds",
            "acquisitions",
        }
        # The migrations create exactly what the models declare.
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()
    migrate(url)  # idempotent at head


def test_upgrading_a_database_of_the_first_schema_keeps_its_runs(tmp_path):
    """A pool database made before runs.request_id existed upgrades in place: its run is still
    there (no key), and new runs can take keys."""
    from sqlalchemy import create_engine, text

    from lesslabels.pool.db import migrate
    from lesslabels.pool.store import PoolStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0001")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                "VALUES (1, 'old', '', '[]', 0, '2026-11-23 20:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, dataset_id, config_json, state, step, round, error, stop_reason, "
                "created_at, updated_at) VALUES (7, 1, '{}', 'RUNNING', 'TRAIN', 2, '', '', "
                "'2026-11-23 20:00:00', '2026-11-23 20:00:00')"
            )
        )
    engine.dispose()
    store = PoolStore(url)  # migrates to head on open
    old = store.get_run(7)
    assert (old.dataset, old.state, old.step, old.round) == ("old", "RUNNING", "TRAIN", 2)
    first = store.create_run("old", "{}", request_id="k1")
    assert store.create_run("old", "{}", request_id="k1").id == first.id != 7
    assert store.create_run("old", "{}").id not in (7, first.id)


def test_upgrading_rounds_recorded_before_validation_metrics_keeps_them(tmp_path):
    """Migration 0004 adds the rounds' validation metrics: a round recorded before keeps its test
    metrics and has none (so its run keeps the latest round)."""
    from sqlalchemy import create_engine, text

    from lesslabels.pool.db import migrate
    from lesslabels.pool.store import PoolStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0003")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                "VALUES (1, 'old', '', '[]', 0, '2026-11-23 20:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, dataset_id, config_json, state, step, round, error, stop_reason, "
                "created_at, updated_at) VALUES (7, 1, '{}', 'COMPLETED', 'DONE', 1, '', '', "
                "'2026-11-23 20:00:00', '2026-11-23 20:00:00')"
            )
        )
        conn.execute(
            text(
                'INSERT INTO rounds (run_id, "index", labelled_count, train_job_id, checkpoint_id, '
                "test_metrics_json, agreement, selected_count, train_seconds, score_seconds) VALUES "
                "(7, 0, 20, 'j0', 'c0', '{\"accuracy\": 0.9, \"count\": 10}', 0, 5, 1.0, 2.0)"
            )
        )
    engine.dispose()
    (kept,) = PoolStore(url).list_rounds(7)
    assert (kept.checkpoint_id, kept.test.accuracy, kept.test.count, kept.validation) == ("c0", 0.9, 10, None)


def test_upgrading_rounds_recorded_before_comparisons_keeps_them_without_one(tmp_path):
    """Migration 0009 adds the rounds' paired comparison: a round recorded before keeps its metrics
    and has none (the kept-model rule falls back to validation accuracies); a new one stores it, and
    the downgrade drops the column and keeps the round."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from lesslabels.contract import Comparison, Round
    from lesslabels.pool.db import alembic_config, migrate
    from lesslabels.pool.store import PoolStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0008")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                "VALUES (1, 'old', '', '[]', 0, '2026-11-23 20:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, dataset_id, config_json, state, step, round, error, stop_reason, "
                "created_at, updated_at) VALUES (7, 1, '{}', 'COMPLETED', 'DONE', 1, '', '', "
                "'2026-11-23 20:00:00', '2026-11-23 20:00:00')"
            )
        )
        conn.execute(
            text(
                'INSERT INTO rounds (run_id, "index", labelled_count, train_job_id, checkpoint_id, '
                "test_metrics_json, validation_metrics_json, agreement, selected_count, train_seconds, "
                "score_seconds) VALUES (7, 0, 20, 'j0', 'c0', '{}', '{\"accuracy\": 0.9, \"count\": 10}', "
                "0, 5, 1.0, 2.0)"
            )
        )
    engine.dispose()
    store = PoolStore(url)  # migrates to head on open
    (old,) = store.list_rounds(7)
    assert (old.checkpoint_id, old.validation.accuracy, old.comparison) == ("c0", 0.9, None)
    comparison = Comparison(against="c0", count=10, new_only=3, kept_only=1)
    store.put_round(Round(run_id=7, index=1, checkpoint_id="c1", comparison=comparison))
    assert store.list_rounds(7)[1].comparison == comparison
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.downgrade(config, "0008")
    with engine.connect() as conn:
        assert conn.execute(text('SELECT checkpoint_id FROM rounds ORDER BY "index"')).scalars().all() == ["c0", "c1"]
    engine.dispose()


def test_runs_stored_before_asynchronous_rounds_keep_their_synchronous_rounds(tmp_path):
    """Migration 0011 writes "asynchronous": false into every stored run configuration without the
    field (a human run stored before would otherwise become asynchronous on resume); one that has it
    is left alone; the downgrade removes the field."""
    import json

    from alembic import command
    from sqlalchemy import create_engine, text

    from lesslabels.pool.db import alembic_config, migrate
    from lesslabels.pool.store import PoolStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0010")
    engine = create_engine(url)
    configs = {
        7: {"dataset": "old", "oracle": "ORACLE_MODE_HUMAN"},
        8: {"dataset": "old", "oracle": "ORACLE_MODE_HUMAN", "asynchronous": True, "refill_every": 5},
    }
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                "VALUES (1, 'old', '', '[]', 0, '2026-11-23 20:00:00')"
            )
        )
        for run_id, config in configs.items():
            conn.execute(
                text(
                    "INSERT INTO runs (id, dataset_id, config_json, state, step, round, error, stop_reason, "
                    "created_at, updated_at) VALUES (:id, 1, :config, 'WAITING_FOR_LABELS', 'LABEL', 0, '', '', "
                    "'2026-11-23 20:00:00', '2026-11-23 20:00:00')"
                ),
                {"id": run_id, "config": json.dumps(config)},
            )
    engine.dispose()
    store = PoolStore(url)  # migrates to head on open
    stored = {run_id: json.loads(store.get_run(run_id).config_json) for run_id in configs}
    store.close()
    assert stored[7]["asynchronous"] is False and stored[8] == configs[8]
    engine = create_engine(url)
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.downgrade(config, "0010")
    with engine.connect() as conn:
        back = [json.loads(t) for t in conn.execute(text("SELECT config_json FROM runs ORDER BY id")).scalars()]
    engine.dispose()
    assert all("asynchronous" not in c for c in back) and back[1]["refill_every"] == 5


def test_upgrading_acquisitions_stored_with_enum_names_gives_them_the_strategy_names(tmp_path):
    """Migration 0008 rewrites the strategy of each stored acquisition from the protobuf enum name
    ("STRATEGY_ENTROPY") to the contract's name ("entropy"), the one the run store reads and writes;
    its downgrade writes the enum names back."""
    from alembic import command
    from sqlalchemy import create_engine, text

    from lesslabels.pool.db import alembic_config, migrate
    from lesslabels.pool.store import PoolStore

    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0007")
    engine = create_engine(url)
    stored = ["STRATEGY_ENTROPY", "STRATEGY_LEAST_CONFIDENCE", "STRATEGY_RANDOM", "STRATEGY_UNSPECIFIED"]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                "VALUES (1, 'old', '', '[\"greet\"]', 0, '2026-11-23 20:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO runs (id, dataset_id, config_json, state, step, round, error, stop_reason, "
                "created_at, updated_at) VALUES (7, 1, '{}', 'RUNNING', 'LABEL', 1, '', '', "
                "'2026-11-23 20:00:00', '2026-11-23 20:00:00')"
            )
        )
        for sid, strategy in enumerate(stored, start=1):
            conn.execute(
                text(
                    "INSERT INTO samples (id, dataset_id, row, text, split, gold_label, text_hash) "
                    "VALUES (:id, 1, :row, :t, 'train', 'greet', :h)"
                ),
                {"id": sid, "row": sid - 1, "t": f"text {sid}", "h": sid},
            )
            conn.execute(
                text(
                    "INSERT INTO acquisitions (run_id, sample_id, round, strategy, score, created_at) "
                    "VALUES (7, :sid, :round, :strategy, 0.5, '2026-11-23 20:00:00')"
                ),
                {"sid": sid, "round": sid // 3, "strategy": strategy},
            )
    engine.dispose()
    store = PoolStore(url)  # migrates to head on open
    assert [a.strategy for a in store.list_acquisitions(7)] == ["entropy", "least_confidence", "random", ""]
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:
        config = alembic_config(url)
        config.attributes["connection"] = conn
        command.downgrade(config, "0007")
    with engine.connect() as conn:
        back = conn.execute(text("SELECT strategy FROM acquisitions ORDER BY sample_id")).scalars().all()
    engine.dispose()
    assert back == stored


def test_upgrading_samples_stored_before_the_text_hash_fills_it_in(tmp_path):
    """Migration 0006 adds samples.text_hash and computes it for every stored row, so the indexed
    duplicate check of later imports sees the old texts."""
    from sqlalchemy import create_engine, text

    from lesslabels.pool.db import migrate
    from lesslabels.pool.store import PoolStore
    from lesslabels.pool.texthash import text_hash

    url = f"sqlite:///{tmp_path / 'old.db'}"
    migrate(url, "0005")
    engine = create_engine(url)
    texts = [f"text {i} ünïcode" for i in range(12)]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO datasets (id, name, description, labels_json, labels_fixed, created_at) "
                "VALUES (1, 'old', '', '[\"greet\"]', 0, '2026-11-23 20:00:00')"
            )
        )
        for sid, body in enumerate(texts, start=1):
            conn.execute(
                text(
                    "INSERT INTO samples (id, dataset_id, row, text, split, gold_label) VALUES (:id, 1, :row, :t, 'train', 'greet')"
                ),
                {"id": sid, "row": sid - 1, "t": body},
            )
    engine.dispose()
    store = PoolStore(url)  # migrates to head on open
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT text, text_hash FROM samples ORDER BY id")).all()
    engine.dispose()
    assert [(t, h) for t, h in stored] == [(t, text_hash(t)) for t in texts]
    result = store.import_samples("old", f"greet,{texts[3]}\ngreet,brand new\n".encode())
    assert [(d.text, d.first_row) for d in result.duplicates] == [(texts[3], -1)]


def test_sqlite_pragmas(tmp_path):
    from lesslabels.pool.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_pool_started_from_cli_serves_health_and_reflection(tmp_path):
    port = _free_port()
    env = dict(
        os.environ,
        LESSLABELS_PORT=str(port),
        LESSLABELS_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}",
        LESSLABELS_HOST="127.0.0.1",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "lesslabels", "pool"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            probe = subprocess.run(
                [sys.executable, "-m", "lesslabels", "probe", address, "--timeout", "1"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                break
            assert proc.poll() is None, proc.stdout.read()
            assert time.monotonic() < deadline, "pool did not become SERVING"
            time.sleep(0.3)
        assert "SERVING" in probe.stdout
        with grpc.insecure_channel(address) as channel:
            status = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="lesslabels.v1.PoolService"), timeout=5
            )
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            replies = reflection_pb2_grpc.ServerReflectionStub(channel).ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
            names = {s.name for r in replies for s in r.list_services_response.service}
        assert {"lesslabels.v1.PoolService", "grpc.health.v1.Health"} <= names
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "event=stopped server=pool" in out


def test_cli_usage_and_unknown_command(capsys):
    from lesslabels.cli.main import main

    assert main([]) == 0 and "pool" in capsys.readouterr().out
    assert main(["frobnicate"]) == 2 and "unknown command 'frobnicate'" in capsys.readouterr().err
