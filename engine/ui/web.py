"""Request plumbing shared by every screen and API endpoint.

Who is asking (session cookie or bearer token), in which language, the CSRF check on every
state-changing request, running the synchronous runtime in a worker thread (so the event loop
keeps serving other requests while one waits on the database), and turning errors into friendly
pages or JSON. Views are plain functions `view(ctx) -> Response`.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.config import Config
from engine.metadata.registry import Entity, MenuGroup, Registry
from engine.runtime import customization
from engine.runtime.actor import Actor
from engine.runtime.errors import BadQuery, Forbidden, NotFound, RecordError
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User
from engine.ui import sessions
from engine.ui.text import ui_text
from engine.ui.tokens import token_user

log = logging.getLogger("crm.ui")

RELOAD_SECONDS = 1.0  # how stale an administrator's change may be in other worker processes
MAX_BODY = 20 * 1024 * 1024  # uploads and forms; larger requests get 413
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")

View = Callable[["Ctx"], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass
class AppState:
    """What every request shares: the runtime (rebuilt when the customisation layer changes),
    the configuration and the templates."""

    runtime: Runtime
    config: Config
    templates: jinja2.Environment
    checked_at: float = 0.0
    revision: tuple[int, int] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fresh_runtime(self) -> Runtime:
        """The runtime for this request. An administrator's change in any worker process is seen
        here within RELOAD_SECONDS: the layer's revision is checked at most that often."""
        now = time.monotonic()
        if now - self.checked_at < RELOAD_SECONDS:
            return self.runtime
        with self.lock:
            if now - self.checked_at >= RELOAD_SECONDS:
                revision = customization.revision(self.runtime.engine)
                if revision != (self.revision or self.runtime.layer_revision):
                    self.runtime = customization.reload(self.runtime)
                self.revision, self.checked_at = revision, now
        return self.runtime


class Ctx:
    """One request as views see it: the user, language, parsed input and rendering helpers."""

    def __init__(self, request: Request, state: AppState, user: User | None,
                 form: FormData | None = None, body: Any = None) -> None:
        self.request = request
        self.state = state
        self.user = user
        self.form = form
        self.body = body
        self.language = language_of(request, state, user)
        self._runtime = state.runtime  # one registry for the whole request, even if it is reloaded
        self._records: RecordService | None = None

    # -- who and what ---------------------------------------------------------------------------
    @property
    def runtime(self) -> Runtime:
        return self._runtime

    @property
    def registry(self) -> Registry:
        return self._runtime.registry

    @property
    def actor(self) -> Actor:
        assert self.user is not None
        return self.user.actor(self.language)

    @property
    def records(self) -> RecordService:
        if self._records is None:
            self._records = self.runtime.records(self.actor)
        return self._records

    @property
    def request_id(self) -> str:
        return str(getattr(self.request.state, "request_id", ""))

    @property
    def csrf(self) -> str:
        return csrf_token(self.request)

    def t(self, key: str, **params: Any) -> str:
        return ui_text(key, self.language, **params)

    def can(self, entity: Entity, action: str, record: dict[str, Any] | None = None) -> bool:
        """May the user do `action` on `record` (None: on some record of the entity)?"""
        access = self.runtime.access
        if record is None:
            return access.scope(self.actor, entity, action) != "none" or access.pool_allows(self.actor, entity, action)
        return self.records._allows(entity, action, record)  # with the user's share of the record

    def menu(self) -> list[tuple[MenuGroup, list[Entity]]]:
        """The navigation groups with the entities the user may read."""
        if self.user is None:
            return []
        groups = []
        for group in self.registry.menu:
            entities = [self.registry.entities[k] for k in group.entities if k in self.registry.entities]
            readable = [e for e in entities if self.can(e, "read")]
            if readable:
                groups.append((group, readable))
        return groups

    def param(self, name: str, default: str = "") -> str:
        """A form field (POST) or query parameter (GET), stripped."""
        source: Any = self.form if self.form is not None else self.request.query_params
        value = source.get(name, default)
        return value.strip() if isinstance(value, str) else default

    # -- responses ------------------------------------------------------------------------------
    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        session = self.request.scope.get("session")  # absent only when a middleware failed
        flashes = session.pop("flash", []) if session and "flash" in session else []
        html = self.state.templates.get_template(template).render(ctx=self, t=self.t, flashes=flashes, **values)
        return HTMLResponse(html, status_code=status)

    def redirect(self, path: str, **query: Any) -> RedirectResponse:
        pairs = [(k, v) for k, v in query.items() if v not in (None, "")]
        return RedirectResponse(path + ("?" + urlencode(pairs) if pairs else ""), status_code=303)

    def flash(self, text: str, kind: str = "ok") -> None:
        # Assign, not append: the session notices changes only when a key is set.
        self.request.session["flash"] = [*self.request.session.get("flash", []), {"kind": kind, "text": text}]


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(24)
    return str(token)


def language_of(request: Request, state: AppState, user: User | None) -> str:
    session = request.scope.get("session") or {}
    for choice in (user.language if user else None, session.get("lang")):
        if choice in ("zh", "en"):
            return str(choice)
    return state.config.language


def carries_nul(value: Any) -> bool:
    """A NUL character anywhere in request data (no database column can hold one)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(carries_nul(k) or carries_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(carries_nul(v) for v in value)
    return False


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.crm
    return state


# -- error pages ----------------------------------------------------------------------------------

def error_page(request: Request, status: int, message: str = "", user: User | None = None) -> HTMLResponse:
    state = state_of(request)
    ctx = Ctx(request, state, user)
    titles = {400: "error_400", 403: "error_403", 404: "error_404", 413: "error_413", 500: "error_500"}
    return ctx.render("error.html", status=status, status_code=status,
                      title=ctx.t(titles.get(status, "error_400")), message=message)


def json_error(status: int, error: str, message: str, request: Request, **extra: Any) -> JSONResponse:
    payload = {"error": error, "message": message, "request_id": str(getattr(request.state, "request_id", ""))}
    payload.update(extra)
    return JSONResponse(payload, status_code=status)


# -- decorators -----------------------------------------------------------------------------------

def page(public: bool = False) -> Callable[[View], Endpoint]:
    """An HTML endpoint: signed-in users only (unless public), CSRF on POST, friendly errors."""

    def decorate(view: View) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            form = None
            if request.method in UNSAFE:
                form = await request.form(max_files=20, max_fields=5000)
            try:
                return await run_in_threadpool(run_page, view, request, form, public)
            finally:
                if form is not None:
                    await form.close()

        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        return endpoint

    return decorate


def run_page(view: View, request: Request, form: FormData | None, public: bool) -> Response:
    state = state_of(request)
    if carries_nul(request.query_params.multi_items()) or (form is not None and carries_nul(form.multi_items())):
        return error_page(request, 400)
    user = sessions.session_user(state.fresh_runtime(), request.session.get("sid"))
    if user is None and not public:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    if form is not None and not sessions.csrf_matches(request.session.get("csrf"), str(form.get("_csrf") or "")):
        ctx = Ctx(request, state, user)
        return error_page(request, 403, ctx.t("csrf_failed"), user)
    ctx = Ctx(request, state, user, form=form)
    try:
        return view(ctx)
    except NotFound as exc:
        return error_page(request, 404, exc.message.text(ctx.language), user)
    except Forbidden as exc:
        return error_page(request, 403, exc.message.text(ctx.language), user)
    except (BadQuery, RecordError) as exc:
        return error_page(request, exc.status if exc.status < 500 else 400, exc.message.text(ctx.language), user)
    except Exception:
        log.exception("request %s failed: %s %s", ctx.request_id, request.method, request.url.path)
        return error_page(request, 500, "", user)


def api(view: View) -> Endpoint:
    """A JSON endpoint: bearer token or session (then CSRF header on writes), JSON errors."""

    async def endpoint(request: Request) -> Response:
        raw = await request.body() if request.method in ("POST", "PUT", "PATCH") else None
        return await run_in_threadpool(run_api, view, request, raw)

    endpoint.__name__ = view.__name__
    endpoint.__doc__ = view.__doc__
    return endpoint


def run_api(view: View, request: Request, raw: bytes | None) -> Response:
    state = state_of(request)
    state.fresh_runtime()
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        user = token_user(state.runtime, header[7:].strip())
        if user is None:
            return json_error(401, "Unauthorized", "The API token is unknown or revoked.", request)
    else:
        user = sessions.session_user(state.runtime, request.session.get("sid"))
        if user is None:
            return json_error(401, "Unauthorized", "Sign in or send 'Authorization: Bearer <token>'.", request)
        if request.method in UNSAFE and not sessions.csrf_matches(request.session.get("csrf"),
                                                                   request.headers.get("x-csrf-token")):
            return json_error(403, "CsrfFailed", "Missing or wrong X-CSRF-Token header.", request)
    body: Any = None
    if raw is not None:  # parsed only once the caller is known: 401 comes before 400
        try:
            body = json.loads(raw) if raw else {}
        except (ValueError, UnicodeDecodeError):
            return json_error(400, "BadRequest", "The request body is not valid JSON.", request)
    if carries_nul(request.query_params.multi_items()) or carries_nul(body):
        return json_error(400, "BadRequest", "The request contains a NUL character.", request)
    ctx = Ctx(request, state, user, body=body)
    try:
        return view(ctx)
    except RecordError as exc:
        status = exc.status if exc.status < 500 else 400
        return JSONResponse({**exc.as_dict(ctx.language), "request_id": ctx.request_id}, status_code=status)
    except Exception:
        log.exception("request %s failed: %s %s", ctx.request_id, request.method, request.url.path)
        return json_error(500, "InternalError", "Something went wrong on our side; the request id identifies it "
                          "in the server log.", request)


# -- middleware -----------------------------------------------------------------------------------

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"form-action 'self'; frame-ancestors 'none'; base-uri 'self'; object-src 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class EdgeMiddleware:
    """Request ids, security headers and the request size cap, for every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = secrets.token_hex(6)
        scope.setdefault("state", {})["request_id"] = request_id
        headers = dict(scope["headers"])
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            response = Response("Request too large", status_code=413)
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS + [(b"x-request-id", request_id.encode())]
            await send(message)

        received = 0

        async def receive_at_most_max_body() -> Message:
            # A body without Content-Length (chunked) is counted as it arrives.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY:
                    raise HTTPException(413, "Request too large")
            return message

        await self.app(scope, receive_at_most_max_body, send_with_headers)
