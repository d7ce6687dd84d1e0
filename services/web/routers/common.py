"""What the routers share: the backend, page rendering with the CSRF token, the write check."""

from __future__ import annotations

from fastapi import Request


def backend(request: Request):
    return request.app.state.backend


def render(request: Request, name: str, context: dict, status_code: int = 200):
    sid = getattr(request.state, "sid", None)
    csrf = request.app.state.sessions.csrf_token(sid) if sid else ""
    return request.app.state.templates.TemplateResponse(
        request,
        name,
        {"csrf": csrf, "auth": bool(request.app.state.sessions.token), **context},
        status_code=status_code,
    )


async def csrf_protected(request: Request) -> None:
    """Dependency of every write."""
    await request.app.state.sessions.check_write(request)
