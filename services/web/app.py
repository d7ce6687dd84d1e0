"""The FastAPI application: routers per area, sessions, security headers, errors mapped once."""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import re
import secrets
import time
from collections.abc import Callable, Mapping

import jinja2
import markupsafe

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from lesslabels.common import errors
from lesslabels.common.plaintext import visible
from lesslabels.web.activity import LabelActivity
from lesslabels.web.auth import DEFAULT_LIFETIME, Sessions
from lesslabels.web.ratelimit import RateLimiter

log = logging.getLogger(__name__)
HERE = pathlib.Path(__file__).resolve().parent

#: Domain error -> HTTP status, in one place.
HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "RESOURCE_EXHAUSTED": 413,
    "UNAVAILABLE": 503,
    "CANCELLED": 503,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # same-origin, not no-referrer: with no-referrer the browser sends "Origin: null" on form posts.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
OPEN_PATHS = ("/login", "/static/", "/healthz")


@dataclasses.dataclass(frozen=True)
class WebSettings:
    token: str = ""
    secret: bytes = b""
    secure_cookie: bool = False
    #: How long a session lasts from login (or, without a token, from the first page).
    session_seconds: float = DEFAULT_LIFETIME
    #: Refused logins one client address may make at once, then one per ``login_refill_seconds``.
    login_burst: int = 10
    login_refill_seconds: float = 6.0


#: Where a service listens is the operator's business, not the page's: "pool at 10.0.0.5:50051: ..."
#: is shown as "pool: ...", and a bare address as "(a service address)".
_SERVICE_AT = re.compile(r"\b(pool|coordinator|scorer|trainer) at \S+?:\d+(?=[:\s,;)]|$)")
_ADDRESS = re.compile(r"(?:\b(?:ipv4|ipv6|dns|unix):)?\[?[\w.:-]*?(?:\d{1,3}\.){3}\d{1,3}\]?:\d+|\blocalhost:\d+")


def status_of(exc: Exception) -> int:
    return HTTP_STATUS.get(getattr(exc, "code", ""), 500)


def public_message(exc: Exception) -> str:
    """What a page says of a service's error: its message without internal addresses; a service that
    did not answer is named, not located."""
    if getattr(exc, "code", "") in ("UNAVAILABLE", "CANCELLED"):
        service = getattr(exc, "service", "") or "a"
        return f"the {service} service did not answer (it may be starting or stopped): try again in a moment"
    return _ADDRESS.sub("(a service address)", _SERVICE_AT.sub(r"\1", str(exc)))


def _shown(value):
    """What a template shows of a value: stored text with its control characters made visible."""
    if isinstance(value, markupsafe.Markup):  # already HTML (|safe, |tojson): escapes add no markup
        return markupsafe.Markup(visible(value))
    return visible(value) if isinstance(value, str) else value


def create_app(backend, settings: WebSettings | None = None, clock: Callable[[], float] = time.monotonic) -> FastAPI:
    from lesslabels.web.routers import datasets, labelling, login, review, runs

    settings = settings or WebSettings()
    app = FastAPI(title="lesslabels", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.backend = backend
    app.state.activity = LabelActivity(clock=clock)
    app.state.sessions = Sessions(
        settings.secret or secrets.token_bytes(32),
        settings.token,
        settings.secure_cookie,
        lifetime=settings.session_seconds,
        clock=clock,
    )
    app.state.login_limiter = RateLimiter(settings.login_burst, settings.login_refill_seconds, clock=clock)
    # Autoescaping on for every template: texts to label are untrusted input; and every value shown
    # has its control characters (ESC, bidi overrides...) made visible.
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, finalize=_shown
    )
    app.state.templates = Jinja2Templates(env=environment)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    for module in (login, labelling, runs, datasets, review):
        app.include_router(module.router)

    @app.middleware("http")
    async def sessions_and_headers(request: Request, call_next):
        sessions: Sessions = request.app.state.sessions
        sid = sessions.session_id(request)
        fresh = None
        if sid is None and not request.url.path.startswith(OPEN_PATHS):
            if sessions.token:
                refusal: Response
                if request.url.path.startswith("/api/"):
                    refusal = JSONResponse({"error": "log in first"}, status_code=401)
                else:
                    refusal = RedirectResponse(f"/login?next={request.url.path}", status_code=303)
                return _secure(refusal)
            fresh = Response()
            sid = sessions.new_session(fresh)
        request.state.sid = sid
        response = await call_next(request)
        if fresh is not None:
            response.headers.append("set-cookie", fresh.headers["set-cookie"])
        return _secure(response)

    @app.exception_handler(errors.LessLabelsError)
    async def domain_error(request: Request, exc: errors.LessLabelsError):
        if status_of(exc) >= 500:
            log.warning("event=web_error path=%s error=%r", request.url.path, str(exc))
        return _error_response(request, status_of(exc), public_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error_response(request, exc.status_code, str(exc.detail), exc.headers)

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        return {"ok": True}

    return app


def _error_response(request: Request, status: int, message: str, headers: Mapping[str, str] | None = None):
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "message": message, "csrf": ""}, status_code=status, headers=headers
    )


def _secure(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
