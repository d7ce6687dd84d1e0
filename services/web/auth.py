"""Sessions, login and CSRF for the web app.

With a token, a person gives it once on the login form and gets an HttpOnly, SameSite=Strict
session cookie (``sid.signature``, signed with the app's secret). Without a token every browser
gets such a session on its first page. A session lives on the server: it ends at logout, after
``lifetime`` seconds, or when the app restarts, and a cookie of an ended session opens nothing,
signed or not. Every write must carry the session's CSRF token (the ``X-CSRF-Token`` header or a
``csrf_token`` form field) and, when the browser sends one, an Origin of this site.
"""

from __future__ import annotations

import collections
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, Response

COOKIE = "lesslabels_session"


#: How long a session lasts from its start, in seconds, unless given (``--session-hours``).
DEFAULT_LIFETIME = 12 * 3600
#: Sessions kept at most; past it the oldest ends (without a token every new browser opens one).
MAX_SESSIONS = 10_000


class Sessions:
    def __init__(
        self,
        secret: bytes,
        token: str = "",
        secure_cookie: bool = False,
        lifetime: float = DEFAULT_LIFETIME,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.secret = secret
        self.token = token
        self.secure_cookie = secure_cookie
        self.lifetime = lifetime
        self.clock = clock
        # sid -> when it ends (clock time), oldest first.
        self._ends: collections.OrderedDict[str, float] = collections.OrderedDict()
        self._lock = threading.Lock()

    def _sign(self, value: str) -> str:
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()

    def new_session(self, response: Response) -> str:
        sid = secrets.token_urlsafe(24)
        with self._lock:
            now = self.clock()
            while self._ends and (len(self._ends) >= MAX_SESSIONS or next(iter(self._ends.values())) <= now):
                self._ends.popitem(last=False)
            self._ends[sid] = now + self.lifetime
        response.set_cookie(
            COOKIE,
            f"{sid}.{self._sign('sid:' + sid)}",
            max_age=int(self.lifetime),
            httponly=True,
            samesite="strict",
            secure=self.secure_cookie,
            path="/",
        )
        return sid

    def session_id(self, request: Request) -> str | None:
        """The session of a valid cookie whose session has not ended, or None."""
        raw = request.cookies.get(COOKIE, "")
        sid, _, signature = raw.partition(".")
        if not (sid and hmac.compare_digest(signature, self._sign("sid:" + sid))):
            return None
        with self._lock:
            ends = self._ends.get(sid)
            if ends is None:
                return None
            if ends <= self.clock():
                del self._ends[sid]
                return None
        return sid

    def end(self, sid: str | None) -> None:
        """End session ``sid`` (logout): its cookie opens nothing from now on."""
        if sid:
            with self._lock:
                self._ends.pop(sid, None)

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
