"""The web app's metrics: labels per annotator (bounded series), time per label, and
``lesslabels web --metrics-port`` serving /metrics beside the app."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from lesslabels.common import metrics
from lesslabels.web import main as web_main
from lesslabels.web.activity import LabelActivity
from lesslabels.web.app import create_app
from tests.helpers import free_port
from tests.scrape import scrape, value
from tests.unit.web.test_web import FakeBackend, csrf_of


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_labels_through_the_app_count_per_annotator_with_the_time_between_them():
    clock = Clock()
    fake = FakeBackend()
    client = TestClient(create_app(fake, clock=clock))
    headers = {"X-CSRF-Token": csrf_of(client)}
    name = "web-metrics-ada"
    labels_before = sample("lesslabels_web_labels_total", annotator=name)
    count_before = sample("lesslabels_web_label_seconds_count")
    sum_before = sample("lesslabels_web_label_seconds_sum")
    for i, gap in enumerate((0, 4, 6, 301)):  # the last gap is a pause, not a label's time
        clock.now += gap
        body = {"sample_id": 3 + i, "label": "a", "annotator": name, "nonce": f"nonce-{i:04d}"}
        assert client.post("/api/runs/1/labels", json=body, headers=headers).status_code == 200
    assert sample("lesslabels_web_labels_total", annotator=name) == labels_before + 4
    assert sample("lesslabels_web_label_seconds_count") == count_before + 2
    assert sample("lesslabels_web_label_seconds_sum") == pytest.approx(sum_before + 10)
    # A refused submission (422) counts nothing.
    bad = {"sample_id": 0, "label": "a", "annotator": name, "nonce": "nonce-0099"}
    assert client.post("/api/runs/1/labels", json=bad, headers=headers).status_code == 422
    assert sample("lesslabels_web_labels_total", annotator=name) == labels_before + 4


def test_a_label_the_pool_did_not_record_counts_nothing():
    fake = FakeBackend()
    fake.submit_label = lambda *args: {"sample_id": 3, "label": "a", "remaining": 0, "recorded": 0}
    client = TestClient(create_app(fake))
    before = sample("lesslabels_web_labels_total", annotator="web-metrics-retry")
    body = {"sample_id": 3, "label": "a", "annotator": "web-metrics-retry", "nonce": "nonce-0001"}
    assert client.post("/api/runs/1/labels", json=body, headers={"X-CSRF-Token": csrf_of(client)}).status_code == 200
    assert sample("lesslabels_web_labels_total", annotator="web-metrics-retry") == before


def test_annotator_series_are_capped():
    activity = LabelActivity(max_annotators=2)
    assert [activity.series(n) for n in ("ann", "bob", "ann", "cyd", "x" * 200)] == [
        "ann",
        "bob",
        "ann",
        metrics.OTHER_ANNOTATORS,
        metrics.OTHER_ANNOTATORS,
    ]
    # A person who calls themself the overflow series' name takes no named slot.
    assert LabelActivity(max_annotators=2).series(metrics.OTHER_ANNOTATORS) == metrics.OTHER_ANNOTATORS
    # Names are cut as the app accepts them (64 characters).
    assert LabelActivity().series("y" * 80) == "y" * 64
    other = sample("lesslabels_web_labels_total", annotator=metrics.OTHER_ANNOTATORS)
    for name in ("ann", "bob", "dee", "eve"):
        activity.recorded(1, name)
    assert sample("lesslabels_web_labels_total", annotator=metrics.OTHER_ANNOTATORS) == other + 2
    assert sample("lesslabels_web_labels_total", annotator="dee") == 0


def test_web_metrics_port_serves_metrics_while_the_app_runs(monkeypatch):
    import uvicorn

    port = free_port()
    scraped = {}

    def run(app, host, port_, **kw):
        scraped.update(scrape(port))

    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: run(app, host, port, **kw))
    assert web_main.main(["--port", str(free_port()), "--metrics-port", str(port)]) == 0
    assert ("lesslabels_web_label_seconds_count", ()) in scraped
    assert value(scraped, "lesslabels_web_label_seconds_count") >= 0
    with pytest.raises(OSError):  # stopped with the app
        scrape(port)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-port", "70000"], "--metrics-port 70000: must be within 0..65535"),
        (["--port", "9000", "--metrics-port", "9000"], "--metrics-port 9000 is --port as well"),
    ],
)
def test_bad_web_metrics_port_is_refused(argv, message):
    with pytest.raises(SystemExit, match=message):
        web_main.main(argv)


def test_web_metrics_port_from_the_environment(monkeypatch):
    monkeypatch.setenv("LESSLABELS_METRICS_PORT", "9466")
    assert web_main.build_parser().parse_args([]).metrics_port == 9466


def test_web_log_lines_carry_the_services_format_with_trace_ids_and_tracing_is_configured(monkeypatch, capsys):
    # Issue 28: the trace id in every log line, the web app's too, and the same OTEL_* handling as the
    # gRPC services (off here: no variable set, so ids are 0 outside any span).
    import logging

    import uvicorn

    from lesslabels.common import tracing

    configured = []
    monkeypatch.setattr(tracing, "configure", lambda service: configured.append(service) or False)
    monkeypatch.setattr(
        uvicorn, "run", lambda app, host, port, **kw: logging.getLogger("lesslabels.web.test").warning("event=probe")
    )
    assert web_main.main(["--port", str(free_port())]) == 0
    line = next(line for line in capsys.readouterr().err.splitlines() if "event=probe" in line)
    assert "service=web" in line and "trace_id=0 span_id=0" in line
    assert configured == ["web"]
