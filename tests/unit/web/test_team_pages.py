"""The pages a labelling team reads beside the labelling page: runs named and spelled as the CLI
spells them, who labelled what on the dataset page, the import's dry run, column mapping and errors."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from lesslabels.client import PoolClient, RunConfig
from lesslabels.contract import Run
from lesslabels.web.app import create_app
from lesslabels.web.backend import run_view
from tests.helpers import import_rows

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def _run(strategy: str, name: str = "") -> Run:
    return Run(
        id=7, config=RunConfig(dataset="clinc", name=name, strategy=strategy), state="RUNNING", step="SCORE", round=2
    )


class RunsBackend:
    def __init__(self, runs):
        self.runs = runs

    def list_runs(self):
        return [run_view(r) for r in self.runs]

    def run_detail(self, run_id):
        return {"run": run_view(self.runs[0]), "rounds": [], "kept": None, "activity": None}


def test_the_runs_pages_show_the_run_name_and_the_strategy_as_the_cli_spells_it():
    app = create_app(RunsBackend([_run("clustered_entropy", name="team-a"), _run("least_confidence")]))
    with TestClient(app) as client:
        listing = client.get("/runs").text
        page = client.get("/runs/7").text
    assert "<th>name</th>" in listing and "<td>team-a</td>" in listing
    assert "strategy clustered-entropy," in page and "team-a" in page
    assert "clustered_entropy" not in page + listing
    assert run_view(_run("least_confidence"))["strategy"] == "least-confidence"


# -- who labelled what, agreement and review: the web app over a real pool ---------------------


@pytest.fixture
def pool_web(pool_address):
    from lesslabels.web.backend import Addresses, SdkBackend

    # Only the pool answers: these pages never ask the coordinator or the scorer.
    backend = SdkBackend(Addresses("127.0.0.1:9", pool_address, "127.0.0.1:9", timeout=10))
    with TestClient(create_app(backend)) as client:
        yield client
    backend.close()


def _team_dataset(pool_address) -> list[int]:
    """Six texts: Ada labels all of them; Bob and Cleo give second opinions on some."""
    with PoolClient(pool_address, timeout=10) as pool:
        pool.create_dataset("team", labels=["greet", "bye", "thanks"])
    import_rows(pool_address, "team", [("", f"text number {i}") for i in range(6)])
    with PoolClient(pool_address, timeout=10) as pool:
        ids = [s.id for s in pool.list_samples("team")]
        ada = ["greet", "bye", "greet", "bye", "thanks", "greet"]
        pool.submit_labels("team", list(zip(ids, ada, strict=True)), annotator="ada")
        bob = {ids[0]: "greet", ids[1]: "bye", ids[2]: "bye", ids[3]: "bye"}  # disagrees on ids[2]
        pool.submit_labels("team", bob, annotator="bob", second_opinion=True)
        pool.submit_labels("team", {ids[4]: "greet"}, annotator="cleo", second_opinion=True)  # disagrees
    return ids


def test_the_dataset_page_shows_who_labelled_what_agreement_and_links_to_the_review(pool_address, pool_web):
    from sklearn.metrics import cohen_kappa_score

    ids = _team_dataset(pool_address)
    page = pool_web.get("/datasets/team").text
    annotators = page[page.index('id="annotators"') : page.index("</table>", page.index('id="annotators"'))]
    assert '<th scope="row">ada</th><td>6</td>' in annotators  # second opinions are not labels in force
    assert "bob" not in annotators and 'href="/datasets/team/labels?annotator=ada"' in annotators
    assert "5 texts labelled by two or more people" in page and "<strong>2 flagged</strong>" in page
    assert 'href="/datasets/team/review"' in page
    kappa = cohen_kappa_score(["greet", "bye", "greet", "bye"], ["greet", "bye", "bye", "bye"])
    assert f'<th scope="row">ada · bob</th><td>4</td><td>75 %</td><td>{kappa:.2f}</td>' in page
    assert '<th scope="row">ada · cleo</th><td>1</td><td>0 %</td><td>– (too few texts or labels)</td>' in page
    # Per label, lowest agreement first: 'thanks' (Cleo said greet) and then the others.
    table = page[page.index('id="label-agreement"') :]
    assert table.index(">thanks</th><td>1</td><td>0 %") < table.index(">bye</th><td>3</td><td>67 %")

    mine = pool_web.get("/datasets/team/labels", params={"annotator": "ada"}).text
    assert "6 labels in force, newest first." in mine and "text number 5" in mine
    assert "0 labels in force" in pool_web.get("/datasets/team/labels", params={"annotator": "bob"}).text
    assert ids


def test_a_flagged_text_is_resolved_on_the_review_page(pool_address, pool_web):
    ids = _team_dataset(pool_address)
    page = pool_web.get("/datasets/team/review").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    assert page.count('<form method="post" action="/datasets/team/review"') == 2
    flagged = page[page.index(f'id="flagged-{ids[2]}"') : page.index(f'id="flagged-{ids[4]}"')]
    assert "text number 2" in flagged and "<strong>ada</strong>: greet (in force)" in flagged
    assert "<strong>bob</strong>: bye" in flagged
    # The people's labels come first in the choice, then the rest of the label set.
    options = re.findall(r'<option value="([^"]+)">', flagged)
    assert options == ["greet", "bye", "thanks"]

    refused = pool_web.post(
        "/datasets/team/review", data={"csrf_token": token, "sample_id": ids[2], "label": "bye", "reviewer": " "}
    )
    assert refused.status_code == 400 and "type your name as the reviewer" in refused.text
    unknown = pool_web.post(
        "/datasets/team/review", data={"csrf_token": token, "sample_id": ids[2], "label": "wave", "reviewer": "dan"}
    )
    assert unknown.status_code == 400 and "not in the dataset&#39;s label set" in unknown.text
    assert pool_web.post("/datasets/team/review", data={"sample_id": ids[2], "label": "bye"}).status_code == 403

    done = pool_web.post(
        "/datasets/team/review",
        data={"csrf_token": token, "sample_id": ids[2], "label": "bye", "reviewer": "dan"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == f"/datasets/team/review?resolved={ids[2]}"
    after = pool_web.get(done.headers["location"]).text
    assert f"Sample {ids[2]} resolved" in after and f'id="flagged-{ids[2]}"' not in after
    assert f'id="flagged-{ids[4]}"' in after
    with PoolClient(pool_address, timeout=10) as pool:
        resolved = {s.id: s for s in pool.list_samples("team", state="labelled")}[ids[2]]
    assert (resolved.label, resolved.annotator, resolved.label_source) == ("bye", "dan", "review")
    assert "<strong>1 flagged</strong>" in pool_web.get("/datasets/team").text


def test_two_people_label_an_overlap_run_through_the_web_api(real_stack, tiny_bert_dir):
    """A run with every text in the overlap share: Bob's queue brings Ada's labelled texts back
    without her label; his different label is saved as his, flagged, and hers stays in force."""
    from lesslabels.web.backend import Addresses, SdkBackend
    from tests.humanrun import gold, start_human_run
    from tests.stack import load_toy_dataset

    load_toy_dataset(real_stack.pool_address)
    backend = SdkBackend(Addresses(real_stack.coordinator_address, real_stack.pool_address, real_stack.scorer_address))
    try:
        with TestClient(create_app(backend)) as client:
            run_id = start_human_run(
                real_stack, tiny_bert_dir, asynchronous=True, extra=("--refill-every", "4", "--overlap", "1")
            )
            page = client.get(f"/runs/{run_id}/label").text
            headers = {"X-CSRF-Token": CSRF.search(page).group(1)}
            ada = client.get(f"/api/runs/{run_id}/queue", params={"annotator": "ada"}).json()["items"][:2]

            def label(who, item, value, n):
                body = {"sample_id": item["sample_id"], "label": value, "annotator": who, "nonce": f"{who}{n}nonce00"}
                reply = client.post(f"/api/runs/{run_id}/labels", json=body, headers=headers)
                assert reply.status_code == 200, reply.text
                return reply.json()

            for n, item in enumerate(ada):
                assert label("ada", item, gold(item["text"]), n)["second_opinion"] is False
            bob = client.get(f"/api/runs/{run_id}/queue", params={"annotator": "bob"}).json()["items"]
            assert [i["sample_id"] for i in bob[:2]] == [i["sample_id"] for i in ada]
            assert all(i["label"] == "" for i in bob[:2])  # blind: Ada's label is not shown
            wrong = next(x for x in ("flight", "airfare") if x != gold(ada[0]["text"]))
            first = label("bob", bob[0], wrong, 0)
            assert first["second_opinion"] and first["flagged"] and first["label"] == wrong
            second = label("bob", bob[1], gold(ada[1]["text"]), 1)
            assert second["second_opinion"] and not second["flagged"]
            again = client.get(f"/api/runs/{run_id}/queue", params={"annotator": "ada"}).json()["items"]
            assert not {i["sample_id"] for i in again} & {i["sample_id"] for i in ada}
            dataset = client.get("/datasets/toy").text
            assert "2 texts labelled by two or more people" in dataset and "<strong>1 flagged</strong>" in dataset
    finally:
        backend.close()


# -- the web import: a dry run, column mapping, and problems in the form's words -----------------

ROWS = b"".join(
    json.dumps({"utterance": t, "intent": i, "meta": {"src": "x"}}).encode() + b"\n"
    for t, i in (("book a flight", "flight"), ("cheapest fare", "airfare"), ("fly to denver", "flight"))
)


def _post_import(client, token, action, **fields):
    data = {"csrf_token": token, "dataset": "mapped", "split": "train", "action": action, **fields}
    files = {"file": ("rows.jsonl", ROWS, "application/json")}
    return client.post("/datasets/import", data=data, files=files, follow_redirects=False)


def test_the_web_import_has_a_dry_run_and_column_mapping_and_names_no_flags(pool_address, pool_web):
    token = CSRF.search(pool_web.get("/datasets").text).group(1)
    page = pool_web.get("/datasets").text
    assert 'name="text_column"' in page and 'value="check"' in page and 'name="ignore_extra"' in page

    # The extra key is refused, in the form's words: no CLI flag, nothing stored, the form kept.
    refused = _post_import(pool_web, token, "check", text_column="utterance", label_column="intent")
    assert refused.status_code == 400
    assert "the “Leave out other columns” box" in refused.text and "--" not in refused.text.split("<main>")[1]
    assert 'value="utterance"' in refused.text and "nothing was stored" in refused.text

    mapping = {"text_column": "utterance", "label_column": "intent", "ignore_extra": "true"}
    dry = _post_import(pool_web, token, "check", **mapping)
    assert dry.status_code == 200 and "Dry run: 3 rows would be imported (jsonl). Nothing was stored." in dry.text
    columns = dry.text[dry.text.index('id="columns-found"') :]
    assert '<th scope="row">text</th><td>utterance</td>' in columns
    assert '<th scope="row">label</th><td>intent</td>' in columns
    assert '<th scope="row">left out (not stored)</th><td>meta</td>' in columns
    per_label = dry.text[dry.text.index('id="rows-per-label"') :]
    assert per_label.index(">flight</th><td>2<") < per_label.index(">airfare</th><td>1<")
    assert '<th scope="row">train</th><td>3</td>' in dry.text and 'id="no-problems"' in dry.text
    with PoolClient(pool_address, timeout=10) as pool:
        assert "mapped" not in [d.name for d in pool.list_datasets()]

    done = _post_import(pool_web, token, "import", **mapping)
    assert done.status_code == 303 and done.headers["location"] == "/datasets/mapped?imported=3"
    with PoolClient(pool_address, timeout=10) as pool:
        assert sorted(s.text for s in pool.list_samples("mapped")) == [
            "book a flight",
            "cheapest fare",
            "fly to denver",
        ]


def test_web_errors_name_no_internal_address():
    from lesslabels.web.backend import Addresses, SdkBackend

    backend = SdkBackend(Addresses("127.0.0.1:9", "127.0.0.1:9", "127.0.0.1:9", timeout=2))
    try:
        with TestClient(create_app(backend)) as client:
            page = client.get("/datasets")
            api = client.get("/api/runs/1")
    finally:
        backend.close()
    assert page.status_code == 503 and "the pool service did not answer" in page.text
    assert api.status_code == 503 and "coordinator service did not answer" in api.json()["error"]
    assert "127.0.0.1" not in page.text + api.text
