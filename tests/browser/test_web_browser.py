"""The web app in a real browser (headless Chromium through selenium), against the real
in-process stack with the tiny BERT: what a person does with the keyboard, and what is stored.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them) and selenium;
skipped, saying why, without them. ``LESSLABELS_SCREENSHOT_DIR=docs/img`` saves the README's
screenshots of the labelling page and the run page.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import threading
import time

import pytest

from lesslabels.client import CoordinatorClient
from lesslabels.pool.run_store_client import RunStoreClient
from lesslabels.cli.stack import free_port
from lesslabels.web.app import WebSettings, create_app
from lesslabels.web.backend import Addresses, SdkBackend
from tests.stack import load_toy_dataset, wait_for
from tests.humanrun import gold
from tests.humanrun import start_human_run

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TOKEN = "browser-test-token"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--window-size=1100,800",
]

if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(
        "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )


def new_browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def web_url(real_stack):
    """The web app on uvicorn in this process, with a token, over the real stack."""
    import uvicorn

    load_toy_dataset(real_stack.pool_address)
    backend = SdkBackend(Addresses(real_stack.coordinator_address, real_stack.pool_address, real_stack.scorer_address))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(backend, WebSettings(token=TOKEN)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20, 0.05, "uvicorn to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    backend.close()


@pytest.fixture
def browsers():
    made = []

    def make():
        made.append(new_browser())
        return made[-1]

    yield make
    for browser in made:
        browser.quit()


def log_in(browser, url: str, token: str = TOKEN, path: str = "/runs") -> None:
    browser.get(url + path)
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "token"))
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    field.send_keys(Keys.ENTER)


def text_of(browser, element_id: str) -> str:
    return browser.find_element(By.ID, element_id).text


def task_visible(browser) -> bool:
    return browser.find_element(By.ID, "task").is_displayed()


def press(browser, *keys: str) -> None:
    """Keys to whatever has focus, as a keyboard sends them (Enter accepts only in the label picker)."""
    ActionChains(browser).send_keys(*keys).perform()


def label_current(browser, key: str | None = None) -> str:
    """Choose the gold label of the text on screen with its number key, press Enter; returns the text."""
    # The text and its options in one read: the page may re-render between two element lookups.
    text, options = browser.execute_script(
        'return [document.getElementById("text").innerText,'
        ' Array.from(document.querySelectorAll("#options li"), (li) => li.dataset.label)]'
    )
    press(browser, key or str(options.index(gold(text)) + 1), Keys.ENTER)
    WebDriverWait(browser, 15).until(
        lambda b: not task_visible(b) or text_of(b, "text") != text or "Not saved" in text_of(b, "status")
    )
    assert "Not saved" not in text_of(browser, "status"), text_of(browser, "status")
    return text


def wait_task(browser, timeout: float = 15) -> None:
    """Until a text to label is on screen; a timeout says what the page said instead."""
    try:
        WebDriverWait(browser, timeout).until(lambda b: task_visible(b))
    except TimeoutException:
        status = browser.find_elements(By.ID, "status")
        pytest.fail(
            f"no text to label at {browser.current_url}: {status[0].text if status else browser.page_source[:500]}"
        )


def open_queue(browser, url: str, run_id: int, annotator: str) -> None:
    browser.get(f"{url}/runs/{run_id}/label")
    wait_task(browser)
    name = browser.find_element(By.ID, "annotator")
    if name.get_attribute("value") != annotator:
        name.clear()
        name.send_keys(annotator)
        name.send_keys(Keys.ENTER)


def screenshot(browser, name: str) -> None:
    folder = os.environ.get("LESSLABELS_SCREENSHOT_DIR")
    if folder:
        pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(pathlib.Path(folder) / name))


def test_a_person_labels_a_batch_with_the_keyboard_reloads_and_a_second_person_joins(
    real_stack, web_url, browsers, tiny_bert_dir
):
    run_id = start_human_run(real_stack, tiny_bert_dir)
    ada = browsers()
    log_in(ada, web_url, path=f"/runs/{run_id}/label")
    wait_task(ada)
    open_queue(ada, web_url, run_id, "ada")
    assert text_of(ada, "progress") == "0 / 12"

    # Three labels with number keys and Enter; Backspace goes back one and shows the label given.
    done = [label_current(ada) for _ in range(3)]
    assert text_of(ada, "progress") == "3 / 12"
    press(ada, Keys.BACKSPACE)  # with an empty filter: back one
    WebDriverWait(ada, 5).until(lambda b: text_of(b, "text") == done[-1])
    selected = ada.find_element(By.CSS_SELECTOR, "#options li.selected").get_attribute("data-label")
    assert selected == gold(done[-1])
    label_current(ada)  # the same label again: nothing changes, one label kept
    # Space (with an empty filter) skips: another text comes, the skipped one stays unlabelled.
    skipped = text_of(ada, "text")
    press(ada, Keys.SPACE)
    WebDriverWait(ada, 5).until(lambda b: text_of(b, "text") != skipped)
    assert text_of(ada, "progress") == "3 / 12"
    screenshot(ada, "labelling.png")

    # A reload mid-batch loses nothing: the progress and the annotator name are still there.
    ada.refresh()
    WebDriverWait(ada, 15).until(lambda b: task_visible(b) and text_of(b, "progress") == "3 / 12")
    assert ada.find_element(By.ID, "annotator").get_attribute("value") == "ada"

    # Someone labels the text on Ada's screen elsewhere: her page reads the queue again and moves on.
    on_screen = text_of(ada, "text")
    with CoordinatorClient(real_stack.coordinator_address) as coordinator:
        sample = next(s for s in coordinator.pending_labels(run_id).samples if s.text == on_screen)
        coordinator.submit_labels(run_id, [(sample.sample_id, gold(on_screen))], annotator="carol")
    WebDriverWait(ada, 15).until(lambda b: "Someone else labelled the text you had on screen" in text_of(b, "status"))
    assert text_of(ada, "text") != on_screen and text_of(ada, "progress") == "4 / 12"

    # A second person on the same batch: both press on whatever they see until the batch is complete.
    bob = browsers()
    log_in(bob, web_url, path=f"/runs/{run_id}/label")
    open_queue(bob, web_url, run_id, "bob")
    with CoordinatorClient(real_stack.coordinator_address) as coordinator:

        def batch_open() -> bool:
            pending = coordinator.pending_labels(run_id)
            return pending.round == 0 and pending.remaining > 0

        while batch_open():
            for browser in (ada, bob):
                if task_visible(browser) and batch_open():
                    label_current(browser)
        assert coordinator.get_run(run_id).run.labelled_count == 12

    with RunStoreClient(real_stack.pool_address) as runs:
        acquisitions = runs.list_acquisitions(run_id, round_index=0)
        assert len(acquisitions) == 12 and all(a.label == gold(a.text) for a in acquisitions)
    from lesslabels.v1 import pool_pb2, pool_pb2_grpc
    from lesslabels.common.channels import make_channel

    with make_channel(real_stack.pool_address) as channel:
        stub = pool_pb2_grpc.PoolServiceStub(channel)
        histories = [
            stub.GetLabelHistory(
                pool_pb2.GetLabelHistoryRequest(dataset="toy", sample_id=a.sample_id), timeout=10
            ).events
            for a in acquisitions
        ]
    # One label in force per sample, whoever pressed first; a text both pressed on before their pages
    # read the queue again also keeps the second person's label, as their own opinion beside it.
    for a, events in zip(acquisitions, histories, strict=True):
        assert 1 <= len(events) <= 2 and events[0].label == a.label, events
        assert len({e.annotator for e in events}) == len(events)

    # The run moves on by itself; the page shows the next batch, with the model's suggestion.
    WebDriverWait(ada, 180, poll_frequency=0.5).until(
        lambda b: task_visible(b) and text_of(b, "progress") == "0 / 8" and "Round 1" in text_of(b, "status")
    )
    # The suggestion comes first with its probability; it is pre-selected only when the model is
    # confident, otherwise marked "low confidence" with nothing selected.
    suggested = ada.find_element(By.CSS_SELECTOR, "#options li:first-child")
    assert "suggested" in suggested.text and "%" in suggested.text
    if "low confidence" in suggested.text:
        assert not ada.find_elements(By.CSS_SELECTOR, "#options li.selected")
    else:
        assert suggested.get_attribute("aria-selected") == "true"
    label_current(ada)
    label_current(ada)
    screenshot(ada, "labelling.png")
    while task_visible(ada):
        label_current(ada)
    assert "Batch complete" in text_of(ada, "status")

    # The run page follows the run: two evaluated rounds on the learning curve once it completes.
    ada.get(f"{web_url}/runs/{run_id}")
    WebDriverWait(ada, 180, poll_frequency=0.5).until(
        lambda b: (
            len(b.find_elements(By.CSS_SELECTOR, "#rounds tbody tr")) == 2 and "COMPLETED" in text_of(b, "run-state")
        )
    )
    points = ada.find_element(By.CSS_SELECTOR, "svg#curve polyline.accuracy").get_attribute("points").split()
    assert len(points) == 2
    screenshot(ada, "run.png")


def test_a_wrong_token_is_refused(web_url, browsers):
    browser = browsers()
    log_in(browser, web_url, token="not-the-token")
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.ID, "login-error"))
    assert "refused" in text_of(browser, "login-error")
    assert browser.get_cookies() == []
    browser.get(web_url + "/runs")
    assert "/login" in browser.current_url


def test_an_asynchronous_run_in_the_browser_keeps_texts_coming_ranked_by_the_fast_head(
    real_stack, web_url, browsers, tiny_bert_dir
):
    """Issue 23: the queue people label from never runs dry while the model trains in the
    background. The page reads the queue every few seconds and appends what the refills added;
    a text it added that way shows its own order (the fast head's), not the first read's."""
    run_id = start_human_run(
        real_stack, tiny_bert_dir, asynchronous=True, extra=("--refill-every", "4", "--max-rounds", "20")
    )
    ada = browsers()
    log_in(ada, web_url, path=f"/runs/{run_id}/label")
    open_queue(ada, web_url, run_id, "ada")
    assert "no model yet" in text_of(ada, "order-note")  # the random seed texts: no model, no suggestion
    assert "picked by the newest model" in text_of(ada, "status")

    notes: list[str] = []
    for _ in range(24):
        wait_task(ada, 60)
        notes.append(text_of(ada, "order-note"))
        if "most probable first" in notes[-1]:
            break
        time.sleep(1.5)  # a person reading: the page's queue reads (every 4 s) come in meanwhile
        label_current(ada)
    assert "most probable first" in notes[-1], notes  # a text the fast head ranked, its order said so
    suggested = ada.find_element(By.CSS_SELECTOR, "#options li:first-child")
    assert "suggested" in suggested.text and "%" in suggested.text
    with CoordinatorClient(real_stack.coordinator_address) as coordinator:
        detail = coordinator.get_run(run_id)
    assert detail.run.labelled_count == len(notes) - 1 and detail.run.state in ("RUNNING", "WAITING_FOR_LABELS")
    screenshot(ada, "asynchronous.png")


def test_two_people_overlap_in_browsers_and_a_reviewer_resolves_their_disagreement(
    real_stack, web_url, browsers, tiny_bert_dir
):
    """Issue 24, item 2 in real browsers: with every text in the overlap share, Bob's page brings
    back the texts Ada labelled, without her label; his different label is kept beside hers and
    flagged; the dataset page counts the overlap and links to the review, where a reviewer chooses
    the final label with the keyboard."""
    run_id = start_human_run(
        real_stack,
        tiny_bert_dir,
        asynchronous=True,
        extra=("--refill-every", "4", "--overlap", "1", "--max-rounds", "20"),
    )
    ada, bob = browsers(), browsers()
    for browser, name in ((ada, "ada"), (bob, "bob")):
        log_in(browser, web_url, path=f"/runs/{run_id}/label")
        open_queue(browser, web_url, run_id, name)
    ada_texts = [label_current(ada) for _ in range(2)]

    # Bob's page reads the queue again (every few seconds): Ada's texts come back to him, first, blind.
    bob.refresh()
    wait_task(bob)
    WebDriverWait(bob, 20).until(lambda b: text_of(b, "text") in ada_texts)
    disputed = text_of(bob, "text")
    options = [li.get_attribute("data-label") for li in bob.find_elements(By.CSS_SELECTOR, "#options li")]
    wrong = next(label for label in options if label != gold(disputed))
    press(bob, str(options.index(wrong) + 1), Keys.ENTER)
    WebDriverWait(bob, 15).until(lambda b: "labelled this text differently" in text_of(b, "status"))
    assert "flagged for review" in text_of(bob, "status")

    # The dataset page: two people on one text, one flagged, a link to the review.
    bob.get(f"{web_url}/datasets/toy")
    assert "1 flagged" in bob.find_element(By.TAG_NAME, "body").text
    # Who labelled what: Ada's labels are in force (Bob's are second opinions), and the pair's agreement.
    assert "ada" in text_of(bob, "annotators") and "bob" not in text_of(bob, "annotators")
    assert "ada · bob" in bob.find_element(By.TAG_NAME, "body").text
    bob.find_element(By.CSS_SELECTOR, 'a[href="/datasets/toy/review"]').click()
    WebDriverWait(bob, 10).until(lambda b: b.find_elements(By.ID, "flagged"))
    items = bob.find_elements(By.CSS_SELECTOR, "#flagged > li")
    assert len(items) == 1 and disputed in items[0].text
    assert f"ada: {gold(disputed)} (in force)" in items[0].text and f"bob: {wrong}" in items[0].text

    # The reviewer, keyboard only: the final label from the list, a name, Enter.
    choice = items[0].find_element(By.TAG_NAME, "select")
    choice.click()
    values = [o.get_attribute("value") for o in choice.find_elements(By.TAG_NAME, "option")]
    assert values[:2] == [gold(disputed), wrong]  # the people's labels first
    press(bob, Keys.ESCAPE)
    choice.send_keys(Keys.DOWN)  # from Ada's label to Bob's
    name = items[0].find_element(By.CSS_SELECTOR, "input[name=reviewer]")
    name.send_keys("dan", Keys.ENTER)
    WebDriverWait(bob, 10).until(lambda b: b.find_elements(By.ID, "resolved"))
    assert "resolved: its final label is in force" in text_of(bob, "resolved")
    assert bob.find_elements(By.ID, "nothing-flagged")
    with RunStoreClient(real_stack.pool_address) as runs:
        final = {a.text: a for a in runs.list_acquisitions(run_id)}[disputed]
    assert final.label == wrong
