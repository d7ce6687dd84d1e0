"""The web app's own defences (issue 25): where it may listen, sessions that end on the server,
refused logins rate limited, exports no spreadsheet runs, stored control characters shown escaped."""

from __future__ import annotations

import argparse
import csv
import io
import re

import pytest
from fastapi.testclient import TestClient

from lesslabels.client import PoolClient
from lesslabels.common.config import add_server_flags, is_loopback, open_bind_refusal, server_settings
from lesslabels.web import main as web_main
from lesslabels.web.app import WebSettings, create_app
from lesslabels.web.backend import Addresses, SdkBackend
from tests.helpers import import_bytes

CSRF = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Backend:
    """Runs whose stored names hold control characters, as a pool written before it refused them."""

    def list_runs(self):
        return [
            {
                "id": 1,
                "dataset": "evil\x1b]0;pwned\x07\u202egnp.exe",
                "state": "WAITING_FOR_LABELS",
                "step": "LABEL",
                "round": 0,
                "labelled": 0,
                "pool_size": 5,
                "human": True,
            }
        ]


# -- where it listens ---------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "0", " ", "192.0.2.10", "no-such-host.invalid"])
def test_the_web_app_refuses_a_non_loopback_bind_without_a_token(host, monkeypatch):
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("uvicorn started"))
    with pytest.raises(SystemExit, match=r"refusing to listen on .* \(not loopback\) without a token.*--insecure"):
        web_main.main(["--host", host, "--port", "0"])


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1", "localhost", "::1", "[::1]", "0x7f.1", "::ffff:127.0.0.1"])
def test_loopback_in_any_spelling_is_loopback(host):
    assert is_loopback(host) and open_bind_refusal(host, token="") == ""


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "0", "192.0.2.10", "127.0.0.1 x"])
def test_every_interface_in_any_spelling_is_not(host):
    assert not is_loopback(host) and open_bind_refusal(host, token="")


@pytest.mark.parametrize("host, refused", [("127.1", False), ("0", True), ("", True), ("::", True)])
def test_the_grpc_servers_use_the_same_check(host, refused):
    parser = argparse.ArgumentParser()
    add_server_flags(parser, 0)
    args = parser.parse_args(["--host", host])
    if refused:
        with pytest.raises(SystemExit, match="refusing to listen"):
            server_settings(args)
    else:
        assert server_settings(args).host == host


def test_a_token_or_insecure_lets_the_web_app_listen_anywhere(monkeypatch):
    started = []
    monkeypatch.setattr("uvicorn.run", lambda app, host, port, **_: started.append((host, port)))
    assert web_main.main(["--host", "0.0.0.0", "--port", "0", "--token", "t"]) == 0
    assert web_main.main(["--host", "::", "--port", "0", "--insecure"]) == 0
    assert web_main.main(["--host", "127.1", "--port", "0"]) == 0
    assert started == [("0.0.0.0", 0), ("::", 0), ("127.1", 0)]


# -- sessions -----------------------------------------------------------------------------------


def _login(app, token="s3cret") -> tuple[TestClient, str]:
    client = TestClient(app)
    reply = client.post("/login", data={"token": token, "next": "/runs"}, follow_redirects=False)
    assert reply.status_code == 303, reply.text
    return client, client.cookies["lesslabels_session"]


def _opens(app, cookie: str) -> bool:
    reply = TestClient(app, cookies={"lesslabels_session": cookie}).get("/runs", follow_redirects=False)
    return reply.status_code == 200


@pytest.mark.parametrize("secret", [b"", b"a fixed --web-secret, as the Kubernetes manifests set"])
def test_a_copied_cookie_stops_working_at_logout(secret):
    app = create_app(Backend(), WebSettings(token="s3cret", secret=secret))
    client, cookie = _login(app)
    assert _opens(app, cookie)  # the copy works while the session lives
    token = CSRF.search(client.get("/runs").text).group(1)
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert not _opens(app, cookie)
    assert TestClient(app, cookies={"lesslabels_session": cookie}).get("/api/runs/1").status_code == 401


@pytest.mark.parametrize("secret", [b"", b"fixed"])
def test_a_session_ends_after_its_lifetime(secret):
    clock = Clock()
    app = create_app(Backend(), WebSettings(token="s3cret", secret=secret, session_seconds=3600), clock=clock)
    _, cookie = _login(app)
    clock.now += 3599
    assert _opens(app, cookie)
    clock.now += 2
    assert not _opens(app, cookie)
    # A new login gives a new session.
    _, fresh = _login(app)
    assert fresh != cookie and _opens(app, fresh)


def test_the_session_cookie_says_when_it_ends():
    reply = TestClient(create_app(Backend(), WebSettings(token="s3cret", session_seconds=600))).post(
        "/login", data={"token": "s3cret"}, follow_redirects=False
    )
    assert "max-age=600" in reply.headers["set-cookie"].lower()


def test_without_a_token_logout_also_ends_the_session():
    app = create_app(Backend())
    client = TestClient(app)
    token = CSRF.search(client.get("/runs").text).group(1)
    cookie = client.cookies["lesslabels_session"]
    assert client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    # The old cookie's CSRF token no longer writes: its session is gone (a new one is handed out).
    stale = TestClient(app, cookies={"lesslabels_session": cookie})
    body = {"sample_id": 3, "label": "a", "annotator": "ada", "nonce": "0123456789"}
    assert stale.post("/api/runs/1/labels", json=body, headers={"X-CSRF-Token": token}).status_code == 403


# -- login attempts -----------------------------------------------------------------------------


def test_refused_logins_are_rate_limited_per_client_address():
    clock = Clock()
    app = create_app(Backend(), WebSettings(token="s3cret", login_burst=3, login_refill_seconds=10.0), clock=clock)
    guesser = TestClient(app, client=("203.0.113.7", 5000))
    for _ in range(3):
        assert guesser.post("/login", data={"token": "guess"}).status_code == 401
    limited = guesser.post("/login", data={"token": "guess"})
    assert limited.status_code == 429 and limited.headers["retry-after"] == "10"
    assert "too many refused logins" in limited.text
    # Even the right token waits: the limit comes before the check, so it tells nothing.
    assert guesser.post("/login", data={"token": "s3cret"}, follow_redirects=False).status_code == 429
    # Another address is not limited.
    other = TestClient(app, client=("198.51.100.1", 5000))
    assert other.post("/login", data={"token": "s3cret"}, follow_redirects=False).status_code == 303
    clock.now += 4
    assert guesser.post("/login", data={"token": "guess"}).headers["retry-after"] == "6"
    clock.now += 6
    assert guesser.post("/login", data={"token": "s3cret"}, follow_redirects=False).status_code == 303


def test_a_person_who_logs_in_right_is_never_limited():
    app = create_app(Backend(), WebSettings(token="s3cret", login_burst=2))
    for _ in range(20):
        _login(app)


# -- what pages show ----------------------------------------------------------------------------


def test_pages_show_stored_control_characters_escaped():
    page = TestClient(create_app(Backend())).get("/runs").text
    assert "\x1b" not in page and "\x07" not in page and "\u202e" not in page
    assert r"evil\x1b]0;pwned\x07\u202egnp.exe" in page


# -- exports ------------------------------------------------------------------------------------

FORMULAS = ['=HYPERLINK(""http://x"")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "'quoted", "plain"]
FORMULAS_STORED = [f.replace('""', '"') for f in FORMULAS]


def test_the_web_export_neutralises_formula_cells_and_imports_back_exactly(pool_address):
    labels = ["=a", "+b", "-1", "@c", "d", "'f", "g"]
    rows = "".join(f'"{text}"\n' for text in FORMULAS)
    import_bytes(pool_address, "cells", ("text\n" + rows).encode(), keep_whitespace=True)
    backend = SdkBackend(Addresses("127.0.0.1:1", pool_address, "127.0.0.1:1", timeout=10))
    with PoolClient(pool_address, timeout=10) as pool:
        given = {s.id: labels[FORMULAS_STORED.index(s.text)] for s in pool.list_samples("cells")}
        pool.submit_labels("cells", given)
        try:
            export = TestClient(create_app(backend)).get("/datasets/cells/export.csv").text
        finally:
            backend.close()
        cells = list(csv.reader(io.StringIO(export)))[1:]
        by_text = {text: label for label, text, *_provenance in cells}
        assert by_text['\'=HYPERLINK("http://x")'] == "'=a" and by_text["'-2+3"] == "'-1"
        assert {"'+1+1", "'@SUM(A1)", "'\tcmd", "''quoted", "plain"} <= set(by_text)
        assert not [c for row in cells for c in row if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
        # The export imported again stores the same texts and labels.
        import_bytes(pool_address, "again", export.encode(), split="test", keep_whitespace=True)
        again = sorted((s.gold_label, s.text) for s in pool.list_samples("again", split="test", include_gold=True))
    assert again == sorted((labels[i], text) for i, text in enumerate(FORMULAS_STORED))
