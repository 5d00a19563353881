"""Signing in and out, the user's own settings: language, password and API tokens."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from starlette.responses import Response

from engine.runtime import audit
from engine.runtime.users import HASHER, check_password, password_problems
from engine.ui import sessions
from engine.ui.tokens import create_token, list_tokens, revoke_token
from engine.ui.web import Ctx, client_address, page


def safe_next(target: str) -> str:
    """Only same-site paths are followed after signing in: no open redirects."""
    if target.startswith("/") and not target.startswith("//") and "\\" not in target and "\n" not in target:
        return target
    return "/"


@page(public=True)
def login(ctx: Ctx) -> Response:
    next_url = safe_next(ctx.param("next", "/"))
    if ctx.form is None:
        if ctx.user is not None:
            return ctx.redirect(next_url)
        return ctx.render("login.html", username="", error="", next_url=next_url)
    username, password = ctx.param("username"), str(ctx.form.get("password", ""))
    address = client_address(ctx.request)
    runtime = ctx.runtime
    lock = sessions.locked(runtime, username, address)
    if lock is not None:
        error = ctx.t("login_locked", minutes=lock.minutes_left(runtime.now()))
        audit.record(runtime, "login_failed", username=username, address=address, detail={"locked": True})
        return ctx.render("login.html", status=429, username=username, error=error, next_url=next_url)
    user = check_password(runtime, username, password) if username and password else None
    if user is None:
        sessions.record_failure(runtime, username, address)
        audit.record(runtime, "login_failed", username=username, address=address)
        return ctx.render("login.html", status=401, username=username, error=ctx.t("login_failed"), next_url=next_url)
    sessions.clear_failures(runtime, username)
    # A fresh session id and CSRF token on every sign-in (no session fixation).
    sessions.end_session(runtime, ctx.request.session.get("sid"))
    ctx.request.session.clear()
    ctx.request.session["sid"] = sessions.start_session(runtime, user, address)
    ctx.request.session["csrf"] = secrets.token_urlsafe(24)
    audit.record(runtime, "login", user_id=user.id, username=user.username, address=address)
    return ctx.redirect(next_url)


@page(public=True)
def logout(ctx: Ctx) -> Response:
    if ctx.user is not None:
        audit.record(ctx.runtime, "logout", user_id=ctx.user.id, username=ctx.user.username,
                     address=client_address(ctx.request))
    sessions.end_session(ctx.runtime, ctx.request.session.get("sid"))
    language = ctx.language
    ctx.request.session.clear()
    ctx.request.session["lang"] = language
    return ctx.redirect("/login")


@page(public=True)
def set_language(ctx: Ctx) -> Response:
    language = ctx.param("language")
    if language in ("zh", "en"):
        ctx.request.session["lang"] = language
        if ctx.user is not None:
            users = ctx.runtime.table("crm_user")
            with ctx.runtime.engine.begin() as conn:
                conn.execute(sa.update(users).where(users.c.id == ctx.user.id).values(language=language))
    return ctx.redirect(safe_next(ctx.param("next", "/")))


@page()
def settings(ctx: Ctx) -> Response:
    assert ctx.user is not None
    return ctx.render("settings.html", tokens=list_tokens(ctx.runtime, ctx.user.id), new_token="", errors={})


@page()
def change_password(ctx: Ctx) -> Response:
    assert ctx.user is not None
    current, new, again = (str(ctx.form.get(k, "")) if ctx.form else "" for k in ("current", "new", "again"))
    errors: dict[str, str] = {}
    if check_password(ctx.runtime, ctx.user.username, current) is None:
        errors["current"] = ctx.t("password_wrong")
    problems = password_problems(ctx.user.username, new)
    if problems:
        errors["new"] = " ".join(p.text(ctx.language) for p in problems)
    elif new != again:
        errors["again"] = ctx.t("password_mismatch")
    if errors:
        return ctx.render("settings.html", status=422, tokens=list_tokens(ctx.runtime, ctx.user.id), new_token="",
                          errors=errors)
    users = ctx.runtime.table("crm_user")
    with ctx.runtime.engine.begin() as conn:
        conn.execute(sa.update(users).where(users.c.id == ctx.user.id).values(password_hash=HASHER.hash(new)))
    # Other sessions of this user end: a changed password locks out whoever else had it.
    sessions.end_all_sessions(ctx.runtime, ctx.user.id, keep=ctx.request.session.get("sid"))
    audit.record(ctx.runtime, "password_changed", user_id=ctx.user.id, username=ctx.user.username,
                 address=client_address(ctx.request))
    ctx.flash(ctx.t("password_changed"))
    return ctx.redirect("/settings")


@page()
def new_api_token(ctx: Ctx) -> Response:
    assert ctx.user is not None
    token = create_token(ctx.runtime, ctx.user.id, ctx.param("name") or "API")
    return ctx.render("settings.html", tokens=list_tokens(ctx.runtime, ctx.user.id), new_token=token, errors={})


@page()
def revoke_api_token(ctx: Ctx) -> Response:
    assert ctx.user is not None
    token_id = ctx.request.path_params["token_id"]
    if revoke_token(ctx.runtime, ctx.user.id, int(token_id)):
        ctx.flash(ctx.t("token_revoked"))
    return ctx.redirect("/settings")
