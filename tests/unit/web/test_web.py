"""The web app through FastAPI's TestClient: against the real in-process stack (tiny BERT) for
labelling, runs and datasets; against a small fake backend for auth, CSRF, headers and errors."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from lesslabels.common import errors
from lesslabels.web.app import create_app, WebSettings
from lesslabels.web.backend import Addresses, SdkBackend
from lesslabels.web.curve import accuracy_drops, learning_curve_svg
from tests.stack import LABELS, load_toy_dataset, wait_for
from tests.humanrun import gold, start_human_run

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_of(client: TestClient, path: str = "/runs") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return CSRF.search(page.text).group(1)


@pytest.fixture
def web(real_stack):
    load_toy_dataset(real_stack.pool_address)
    backend = SdkBackend(Addresses(real_stack.coordinator_address, real_stack.pool_address, real_stack.scorer_address))
    with TestClient(create_app(backend)) as client:
        yield real_stack, client
    backend.close()


def test_an_asynchronous_queue_through_the_api_two_people_and_fast_head_suggestions(web, tiny_bert_dir):
    stack, client = web
    run_id = start_human_run(stack, tiny_bert_dir, asynchronous=True, extra=("--refill-every", "4"))
    assert "Label from the queue" in client.get(f"/runs/{run_id}").text
    token = csrf_of(client, f"/runs/{run_id}/label")
    headers = {"X-CSRF-Token": token}
    ada = client.get(f"/api/runs/{run_id}/queue", params={"annotator": "ada"}).json()
    bob = client.get(f"/api/runs/{run_id}/queue", params={"annotator": "bob"}).json()
    assert ada["run"]["asynchronous"] and len(ada["items"]) == 8 == ada["remaining"]  # two refills' worth
    assert len(bob["items"]) == 4  # the other 4 seed texts, never one of Ada's
    assert {i["sample_id"] for i in ada["items"]}.isdisjoint(i["sample_id"] for i in bob["items"])
    assert ada["model"] == "" and all(i["suggestion"] == "" for i in ada["items"])  # no labels yet

    def label(who: str, items) -> None:
        for n, item in enumerate(items):
            body = {
                "sample_id": item["sample_id"],
                "label": gold(item["text"]),
                "annotator": who,
                "nonce": f"{who}{n}xxxxxxx",
            }
            assert client.post(f"/api/runs/{run_id}/labels", json=body, headers=headers).status_code == 200

    label("ada", ada["items"][:3])
    # Suggestions now come from the fast head, refit on the labels so far.
    again = client.get(f"/api/runs/{run_id}/queue", params={"annotator": "ada"}).json()
    assert again["model"] == "fast head at 3 labels" and again["order"] == "model"
    assert all(sum(o["probability"] for o in i["options"]) == pytest.approx(1.0, abs=1e-3) for i in again["items"])
    label("ada", again["items"])
    label("bob", bob["items"])
    # The seed set is labelled: round 0 fine-tunes in the background, and the queue stays open.
    queued = wait_for(
        lambda: (q := client.get(f"/api/runs/{run_id}/queue", params={"annotator": "ada"}).json())["items"] and q,
        60,
        0.2,
        "the refilled queue",
    )
    assert queued["remaining"] > 0 and all(i["label"] == "" for i in queued["items"])


def test_label_a_batch_through_the_api_and_the_next_round_comes_with_suggestions(web, tiny_bert_dir):
    stack, client = web
    run_id = start_human_run(stack, tiny_bert_dir)
    assert f'href="/runs/{run_id}/label"' in client.get("/runs").text
    page = client.get(f"/runs/{run_id}/label")
    assert page.status_code == 200 and "/static/label.js" in page.text
    token = CSRF.search(page.text).group(1)

    queue = client.get(f"/api/runs/{run_id}/queue").json()
    first_batch = queue["items"]
    assert (queue["round"], queue["total"], queue["done"], queue["model"]) == (0, 12, 0, "")
    assert all(item["suggestion"] == "" and len(item["options"]) == len(LABELS) for item in queue["items"])

    first = queue["items"][0]
    body = {"sample_id": first["sample_id"], "label": gold(first["text"]), "annotator": "ada", "nonce": "aaaaaaaa1"}
    assert client.post(f"/api/runs/{run_id}/labels", json=body).status_code == 403  # no CSRF token
    headers = {"X-CSRF-Token": token}
    reply = client.post(f"/api/runs/{run_id}/labels", json=body, headers=headers).json()
    assert (reply["recorded"], reply["remaining"]) == (1, 11)
    # A retry, a double click and a second tab all leave one label.
    assert client.post(f"/api/runs/{run_id}/labels", json=body, headers=headers).json()["recorded"] == 0
    other = client.post(
        f"/api/runs/{run_id}/labels", json={**body, "annotator": "bob", "nonce": "bbbbbbbb1"}, headers=headers
    )
    # Bob's page showed the same text: his label is his own opinion beside Ada's, not a new label.
    assert (other.json()["second_opinion"], other.json()["flagged"], other.json()["remaining"]) == (True, False, 11)
    assert client.get(f"/api/runs/{run_id}/queue").json()["done"] == 1

    for i, item in enumerate(queue["items"][1:]):
        reply = client.post(
            f"/api/runs/{run_id}/labels",
            headers=headers,
            json={
                "sample_id": item["sample_id"],
                "label": gold(item["text"]),
                "annotator": "ada",
                "nonce": f"cccccccc{i}",
            },
        )
        assert reply.status_code == 200, reply.text
    assert reply.json()["remaining"] == 0

    # The run moves on by itself and comes back with the next batch, now with the model's suggestions.
    wait_for(
        lambda: (q := client.get(f"/api/runs/{run_id}/queue").json())["round"] == 1 and q["remaining"] > 0,
        180,
        0.3,
        "the round-1 batch",
    )
    queue = client.get(f"/api/runs/{run_id}/queue").json()
    assert queue["model"] and queue["total"] == 8
    for item in queue["items"]:
        probabilities = [o["probability"] for o in item["options"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert item["suggestion"] == item["options"][0]["label"]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-3)

    run_page = client.get(f"/runs/{run_id}")
    assert run_page.status_code == 200
    assert re.search(r'id="kept-model">Model: round 0, checkpoint <code>[^<]+</code>', run_page.text)
    assert 'class="accuracy"' in run_page.text and "<td>12</td>" in run_page.text  # round 0 trained on 12 labels
    detail = client.get(f"/api/runs/{run_id}").json()
    assert detail["rounds"][0]["labelled"] == 12 and detail["rounds"][0]["accuracy"] is not None

    # A second human-mode run with the same seed set asks nothing already labelled: its seed batch
    # is taken from the dataset's labels and it waits first for round 1.
    second = start_human_run(stack, tiny_bert_dir)
    assert second != run_id
    queue = client.get(f"/api/runs/{second}/queue").json()
    assert queue["round"] == 1 and queue["run"]["labelled"] == 12
    assert not {i["sample_id"] for i in queue["items"]} & {i["sample_id"] for i in first_batch}

    # The labels people gave belong to the dataset: counted and exported there.
    dataset = client.get("/datasets/toy")
    assert dataset.status_code == 200 and re.search(r"<td>train</td><td>40</td><td>12</td><td>28</td>", dataset.text)
    export = client.get("/datasets/toy/export.csv")
    assert export.headers["content-type"].startswith("text/csv") and len(export.text.splitlines()) == 13


def test_import_and_export_a_dataset_from_the_browser(web):
    _, client = web
    token = csrf_of(client, "/datasets")
    files = {"file": ("new.csv", b"text\nfirst text\nsecond text\n", "text/csv")}
    refused = client.post("/datasets/import", data={"dataset": "fresh", "split": "train"}, files=files)
    assert refused.status_code == 403
    reply = client.post(
        "/datasets/import",
        data={"dataset": "fresh", "split": "train", "csrf_token": token},
        files=files,
        follow_redirects=False,
    )
    assert reply.status_code == 303 and reply.headers["location"] == "/datasets/fresh?imported=2"
    page = client.get("/datasets/fresh?imported=2")
    assert "Imported 2 rows" in page.text and "<td>train</td><td>2</td><td>0</td><td>2</td>" in page.text
    assert client.get("/datasets/fresh/export.csv").text == "label,text,sample_id,annotator,labelled_at,label_source\n"
    bad = client.post(
        "/datasets/import",
        data={"dataset": "fresh", "split": "train", "csrf_token": token},
        files={"file": ("bad.csv", b"", "text/csv")},
    )
    assert bad.status_code == 400 and "the file is empty" in bad.text
    assert client.get("/datasets/nope").status_code == 404


# -- auth, CSRF, headers, errors: a fake backend ---------------------------------------------


class FakeBackend:
    def __init__(self):
        self.submitted = []

    def list_runs(self):
        return [
            {
                "id": 1,
                "dataset": "d",
                "state": "WAITING_FOR_LABELS",
                "step": "LABEL",
                "round": 0,
                "labelled": 0,
                "pool_size": 5,
                "human": True,
            }
        ]

    def run_detail(self, run_id):
        if run_id == 404:
            raise errors.NotFound("run 404 not found <script>alert(1)</script>")
        run = {
            **self.list_runs()[0],
            "id": run_id,
            "human": run_id != 2,
            "strategy": "entropy",
            "error": "",
            "stop_reason": "",
        }
        rounds = [
            {
                "index": 0,
                "labelled": 10,
                "accuracy": 0.73,
                "macro_f1": 0.7,
                "per_class_f1": {"a": 0.8, "b": 0.6},
                "checkpoint_id": "c0",
                "validation_accuracy": 0.8,
            },
            {
                "index": 1,
                "labelled": 22,
                "accuracy": 0.15,
                "macro_f1": 0.1,
                "per_class_f1": {"a": 0.2, "b": 0.0},
                "checkpoint_id": "c1",
                "validation_accuracy": 0.2,
            },
        ]
        activity = {"message": "round 1: training epoch 2, steps 120/400, 35.2 samples/s", "fraction": 0.3}
        return {"run": run, "rounds": rounds, "kept": rounds[0], "activity": activity if run_id == 3 else None}

    def submit_label(self, run_id, sample_id, label, annotator, key):
        self.submitted.append(key)
        return {"sample_id": sample_id, "label": label, "remaining": 0, "recorded": 1, "changed": 0, "unchanged": 0}


@pytest.fixture
def fake():
    return FakeBackend()


def test_a_token_asks_for_a_login_once_and_refuses_a_wrong_one(fake):
    client = TestClient(create_app(fake, WebSettings(token="s3cret")))
    first = client.get("/runs/1", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/login?next=/runs/1"
    assert client.get("/api/runs/1").status_code == 401
    wrong = client.post("/login", data={"token": "guess", "next": "/runs/1"}, follow_redirects=False)
    assert wrong.status_code == 401 and "That token was refused" in wrong.text
    assert "set-cookie" not in wrong.headers
    right = client.post("/login", data={"token": "s3cret", "next": "/runs/1"}, follow_redirects=False)
    assert right.status_code == 303 and right.headers["location"] == "/runs/1"
    cookie = right.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/runs/1").status_code == 200
    evil = client.post("/login", data={"token": "s3cret", "next": "//evil.example"}, follow_redirects=False)
    assert evil.headers["location"] == "/"
    cross = client.post("/login", data={"token": "s3cret"}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    forged = TestClient(create_app(fake, WebSettings(token="s3cret")), cookies={"lesslabels_session": "abc.def"})
    assert forged.get("/runs", follow_redirects=False).status_code == 303


def test_writes_need_the_csrf_token_and_this_origin(fake):
    client = TestClient(create_app(fake))
    token = csrf_of(client)
    body = {"sample_id": 3, "label": "a", "annotator": "ada", "nonce": "0123456789"}
    assert client.post("/api/runs/1/labels", json=body).status_code == 403
    assert client.post("/api/runs/1/labels", json=body, headers={"X-CSRF-Token": "x" * 64}).status_code == 403
    cross = client.post(
        "/api/runs/1/labels", json=body, headers={"X-CSRF-Token": token, "Origin": "https://evil.example"}
    )
    assert cross.status_code == 403 and "cross-site" in cross.json()["error"]
    ok = client.post("/api/runs/1/labels", json=body, headers={"X-CSRF-Token": token, "Origin": "http://testserver"})
    assert ok.status_code == 200 and fake.submitted == ["web:1:3:ada:0123456789"]
    # Another browser's token does not fit this session.
    other = TestClient(create_app(fake))
    assert other.post("/api/runs/1/labels", json=body, headers={"X-CSRF-Token": token}).status_code == 403


@pytest.mark.parametrize(
    "body, field",
    [
        ({"sample_id": 3, "label": "", "annotator": "ada", "nonce": "0123456789"}, "label"),
        ({"sample_id": 3, "label": "a", "annotator": "", "nonce": "0123456789"}, "annotator"),
        ({"sample_id": 0, "label": "a", "annotator": "ada", "nonce": "0123456789"}, "sample_id"),
        ({"sample_id": 3, "label": "a", "annotator": "ada", "nonce": "bad nonce!"}, "nonce"),
    ],
)
def test_bad_label_submissions_are_refused(fake, body, field):
    client = TestClient(create_app(fake))
    reply = client.post("/api/runs/1/labels", json=body, headers={"X-CSRF-Token": csrf_of(client)})
    assert reply.status_code == 422 and field in reply.text
    assert fake.submitted == []


def test_security_headers_escaping_and_errors(fake):
    client = TestClient(create_app(fake))
    page = client.get("/runs/1")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    missing = client.get("/runs/404")
    assert missing.status_code == 404 and "&lt;script&gt;" in missing.text and "<script>alert" not in missing.text
    assert client.get("/api/runs/404").json() == {"error": "run 404 not found <script>alert(1)</script>"}
    simulated = client.get("/runs/2/label")
    assert simulated.status_code == 409 and "simulated oracle" in simulated.text


def test_run_page_shows_the_running_steps_progress(fake):
    client = TestClient(create_app(fake, WebSettings()))
    page = client.get("/runs/3").text
    assert 'id="activity"' in page and "steps 120/400, 35.2 samples/s" in page and 'value="0.3"' in page
    idle = client.get("/runs/1").text
    assert '<p id="activity" role="status" hidden>' in idle
    assert client.get("/api/runs/3").json()["activity"]["fraction"] == 0.3


def test_run_page_warns_on_a_sharp_accuracy_drop(fake):
    page = TestClient(create_app(fake)).get("/runs/1").text
    assert 'class="drop"' in page and "accuracy fell from 73.0% to 15.0%" in page
    assert '<th scope="row">a</th><td class="number">0.80</td><td class="number">0.20</td>' in page
    # The run keeps the model before the drop: its best round by validation, not the latest.
    assert "Model: round 0, checkpoint <code>c0</code> (validation accuracy 80.0%" in " ".join(page.split())
    assert page.count('<strong class="kept">model</strong>') == 1


def test_accuracy_drops_and_curve_coordinates():
    rounds = [
        {"index": 0, "labelled": 10, "accuracy": 0.80, "macro_f1": 0.7},
        {"index": 1, "labelled": 20, "accuracy": 0.77, "macro_f1": 0.7},
        {"index": 2, "labelled": 30, "accuracy": 0.70, "macro_f1": 0.6},
        {"index": 3, "labelled": 40, "accuracy": None, "macro_f1": None},
    ]
    assert list(accuracy_drops(rounds)) == [2]
    curve = learning_curve_svg(rounds)
    assert [x for x, _ in curve["accuracy"]] == [48, 336.0, 624]
    assert curve["accuracy"][0][1] < curve["accuracy"][2][1]  # higher accuracy is higher on screen
    assert learning_curve_svg([])["empty"]
