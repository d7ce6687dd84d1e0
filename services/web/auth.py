"""Sessions, login and CSRF for the web app.

With a token, a person gives it once on the login form and gets an HttpOnly, SameSite=Strict
session cookie (``sid.signature``, signed with the app's secret). Without a token every browser
gets such a session on its first page. Every write must carry the session's CSRF token (the
``X-CSRF-Token`` header or a ``csrf_token`` form field) and, when the browser sends one, an
Origin of this site.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response

COOKIE = "lesslabels_session"


class Sessions:
    def __init__(self, secret: bytes, token: str = "", secure_cookie: bool = False):
        self.secret = secret
        self.token = token
        self.secure_cookie = secure_cookie

    def _sign(self, value: str) -> str:
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()

    def new_session(self, response: Response) -> str:
        sid = secrets.token_urlsafe(24)
        response.set_cookie(
            COOKIE,
            f"{sid}.{self._sign('sid:' + sid)}",
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
            path="/",
        )
        return sid

    def session_id(self, request: Request) -> str | None:
        """The session of a valid cookie, or None."""
        raw = request.cookies.get(COOKIE, "")
        sid, _, signature = raw.partition(".")
        if sid and hmac.compare_digest(signature, self._sign("sid:" + sid)):
            return sid
        return None

    def token_ok(self, given: str) -> bool:
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    def csrf_token(self, sid: str) -> str:
        return self._sign("csrf:" + sid)

    async def check_write(self, request: Request) -> None:
        """403 unless the request carries this session's CSRF token and comes from this site."""
        sid = self.session_id(request)
        origin = request.headers.get("origin")
        if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
            raise HTTPException(403, "cross-site request refused")
        given = request.headers.get("x-csrf-token", "")
        if not given and request.headers.get("content-type", "").startswith(
            ("multipart/form-data", "application/x-www-form-urlencoded")
        ):
            given = str((await request.form()).get("csrf_token", ""))
        if sid is None or not given or not hmac.compare_digest(given, self.csrf_token(sid)):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")
