"""deploy/observability against the code and the compose file: the Grafana dashboard's queries name
only metrics the services export (counters read through rate/increase), the Prometheus scrape
config names every lesslabels service at its metrics port, and the compose file's
``observability`` profile mounts these files and stays out of a plain ``up``."""

from __future__ import annotations

import json
import pathlib
import re

import yaml
from prometheus_client import REGISTRY

from lesslabels.common import metrics
from tests.integration.compose import COMPOSE_FILE, LocalTopology, load, parse
from tests.integration.values import VARIABLES

ROOT = pathlib.Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "deploy" / "observability"
DASHBOARD = OBSERVABILITY / "grafana" / "dashboards" / "lesslabels.json"
METRIC = re.compile(r"\blesslabels_[a-z0-9_]+\b")
#: The services the compose file runs from this repository's image (postgres is not one).
LESSLABELS_SERVICES = {"pool", "trainer", "scorer", "coordinator", "web"}


def exported() -> dict[str, str]:
    """Every sample name the services' metrics give, with its kind (counter, gauge, histogram...)."""
    assert metrics.GRPC_HANDLED  # the catalogue is imported, so registered
    names: dict[str, str] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("lesslabels_"):
            continue
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(family.type, ("",))
        for suffix in suffixes:
            names[family.name + suffix] = family.type
    return names


def dashboard_queries() -> list[tuple[str, str]]:
    board = json.loads(DASHBOARD.read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] if p["type"] != "row" for t in p["targets"]]


def test_the_dashboard_queries_only_exported_metrics():
    names = exported()
    assert "lesslabels_web_labels_total" in names and "lesslabels_trainer_jobs" in names
    queries = dashboard_queries()
    assert len(queries) >= 30
    unknown = sorted({(title, name) for title, expr in queries for name in METRIC.findall(expr) if name not in names})
    assert unknown == []
    # A counter or a histogram's series only means something as a rate or increase.
    for title, expr in queries:
        for name in METRIC.findall(expr):
            if names[name] in ("counter", "histogram"):
                assert re.search(rf"\b(rate|increase)\(\s*{name}\b", expr), (title, expr)


def test_the_dashboard_shows_each_area_item_1_names():
    used = {name for _, expr in dashboard_queries() for name in METRIC.findall(expr)}
    for name in (
        "lesslabels_grpc_server_handled_total",
        "lesslabels_grpc_server_handling_seconds_bucket",
        "lesslabels_grpc_server_in_flight",
        "lesslabels_scorer_batch_size_bucket",
        "lesslabels_scorer_tokens_total",
        "lesslabels_scorer_queue_wait_seconds_bucket",
        "lesslabels_scorer_texts_total",
        "lesslabels_scorer_model_cache_lookups_total",
        "lesslabels_scorer_model_cache_evictions_total",
        "lesslabels_scorer_inflight_bytes",
        "lesslabels_trainer_samples_total",
        "lesslabels_trainer_steps_total",
        "lesslabels_trainer_jobs",
        "lesslabels_trainer_training_seconds_bucket",
        "lesslabels_trainer_threads",
        "lesslabels_coordinator_step_seconds_bucket",
        "lesslabels_coordinator_runs",
        "lesslabels_coordinator_rounds_total",
        "lesslabels_coordinator_labels_acquired_total",
        "lesslabels_coordinator_label_wait_seconds_bucket",
        "lesslabels_pool_imported_rows_total",
        "lesslabels_pool_imported_bytes_total",
        "lesslabels_pool_labels_total",
        "lesslabels_pool_db_transaction_seconds_bucket",
        "lesslabels_web_labels_total",
        "lesslabels_web_label_seconds_bucket",
    ):
        assert name in used, name


def test_every_panel_says_what_it_answers_and_uses_the_provisioned_datasource():
    board = json.loads(DASHBOARD.read_text())
    source = yaml.safe_load((OBSERVABILITY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert all(p["description"] and p["datasource"]["uid"] == uid for p in panels)
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])


def test_the_scrape_config_names_every_service_at_its_metrics_port():
    services = parse(load(COMPOSE_FILE, VARIABLES))
    assert {name for name, s in services.items() if not s.image} == LESSLABELS_SERVICES
    port = services["pool"].environment["LESSLABELS_METRICS_PORT"]
    assert all(services[name].environment["LESSLABELS_METRICS_PORT"] == port == "9464" for name in LESSLABELS_SERVICES)
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    targets = {
        target: group["labels"]["service"]
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    assert targets == {f"{name}:{port}": name for name in LESSLABELS_SERVICES}


def test_the_kubernetes_scrape_config_follows_the_pod_annotations():
    config = yaml.safe_load((OBSERVABILITY / "prometheus-kubernetes.yml").read_text())
    relabel = config["scrape_configs"][0]["relabel_configs"]
    sources = {tuple(r["source_labels"]): r for r in relabel}
    assert sources[("__meta_kubernetes_pod_annotation_prometheus_io_scrape",)]["action"] == "keep"
    address = sources[("__meta_kubernetes_pod_ip", "__meta_kubernetes_pod_annotation_prometheus_io_port")]
    assert address["target_label"] == "__address__"
    assert sources[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)]["target_label"] == "service"


def test_the_observability_profile_mounts_these_files_and_stays_out_of_a_plain_up():
    document = load(COMPOSE_FILE, VARIABLES)
    profiled = {name for name, spec in document["services"].items() if spec.get("profiles")}
    assert profiled == {"prometheus", "grafana", "jaeger"}
    assert all(document["services"][name]["profiles"] == ["observability"] for name in profiled)
    assert not profiled & set(parse(document))
    for name in profiled:
        for volume in document["services"][name].get("volumes") or []:
            source, target = volume.split(":")[:2]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
            else:
                assert source in document["volumes"], volume
        for published in document["services"][name].get("ports") or []:
            assert published.startswith("127.0.0.1:"), published  # metrics and traces carry no token
    grafana = document["services"]["grafana"]["volumes"]
    provider = yaml.safe_load((OBSERVABILITY / "grafana/provisioning/dashboards/lesslabels.yml").read_text())
    assert f"./deploy/observability/grafana/dashboards:{provider['providers'][0]['options']['path']}:ro" in grafana
    # Traces are off unless an OTLP endpoint is given (the profile's Jaeger takes OTLP on 4317).
    assert all(
        document["services"][name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "" for name in LESSLABELS_SERVICES
    )
    assert "4317" in document["services"]["jaeger"]["expose"]


def test_local_processes_of_the_compose_file_get_metrics_ports_of_their_own(tmp_path):
    topology = LocalTopology(tmp_path, variables=VARIABLES, check_variables=False)
    try:
        ports = {name: topology.environment(name)["LESSLABELS_METRICS_PORT"] for name in LESSLABELS_SERVICES}
        assert ports == {name: str(topology.metrics_ports[name]) for name in LESSLABELS_SERVICES}
        assert len(set(ports.values())) == len(ports) and "9464" not in ports.values()
    finally:
        topology.down()
