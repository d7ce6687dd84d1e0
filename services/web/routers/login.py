"""The login form (only when the stack has a token; refused logins are rate limited per client
address) and logout, which ends the session on the server."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse

from lesslabels.web.auth import COOKIE
from lesslabels.web.routers.common import csrf_protected, render

router = APIRouter()


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    if not request.app.state.sessions.token:
        return RedirectResponse("/", status_code=303)
    return render(request, "login.html", {"next": _safe_next(next), "refused": False})


@router.post("/login")
def login(request: Request, token: str = Form(""), next: str = Form("/")):
    sessions = request.app.state.sessions
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise HTTPException(403, "cross-site request refused")  # login CSRF: a session forced on someone
    limiter = request.app.state.login_limiter
    client = request.client.host if request.client else ""
    wait = limiter.retry_after(client)
    if wait:
        raise HTTPException(
            429, f"too many refused logins from this address: try again in {wait} s", headers={"Retry-After": str(wait)}
        )
    if not sessions.token_ok(token):
        limiter.spend(client)
        return render(request, "login.html", {"next": _safe_next(next), "refused": True}, status_code=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    sessions.end(sessions.session_id(request))
    sessions.new_session(response)
    return response


@router.post("/logout", dependencies=[Depends(csrf_protected)])
def logout(request: Request):
    sessions = request.app.state.sessions
    sessions.end(request.state.sid)
    response = RedirectResponse("/login" if sessions.token else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
