"""The web application: routes, middleware and error pages around one Runtime.

    uvicorn --factory engine.ui.app:create_app     (what `crm serve` runs)
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from engine.bootstrap import open_runtime
from engine.config import Config, load_config
from engine.runtime.service import Runtime
from engine.ui import sessions
from engine.ui.render import make_templates
from engine.ui.views import admin, auth, home, imports, records, studio, studio_layout
from engine.ui.web import AppState, EdgeMiddleware, error_page, json_error

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("crm.ui")


def routes() -> list[BaseRoute]:
    from engine.ui import api

    get, post = ["GET"], ["POST"]
    return [
        Route("/", home.home, methods=get),
        Route("/login", auth.login, methods=["GET", "POST"]),
        Route("/logout", auth.logout, methods=post),
        Route("/language", auth.set_language, methods=post),
        Route("/settings", auth.settings, methods=get),
        Route("/settings/password", auth.change_password, methods=post),
        Route("/settings/tokens", auth.new_api_token, methods=post),
        Route("/settings/tokens/{token_id:int}/revoke", auth.revoke_api_token, methods=post),
        Route("/search", home.search, methods=get),
        Route("/admin/audit", admin.audit_log, methods=get),
        Route("/admin/studio", studio.studio, methods=get),
        Route("/admin/studio/revisions/{revision_id:int}/revert", studio.revert, methods=post),
        Route("/admin/studio/picklists", studio.picklists, methods=get),
        Route("/admin/studio/picklists/{key}", studio.picklist_editor, methods=["GET", "POST"]),
        Route("/admin/studio/new-entity", studio.new_entity, methods=["GET", "POST"]),
        Route("/admin/studio/{entity}", studio.entity_studio, methods=["GET", "POST"]),
        Route("/admin/studio/{entity}/remove", studio.remove_entity, methods=post),
        Route("/admin/studio/{entity}/layouts/{kind}", studio_layout.layout_editor, methods=["GET", "POST"]),
        Route("/admin/studio/{entity}/fields/{field}", studio.edit_field, methods=["GET", "POST"]),
        Route("/admin/studio/{entity}/fields/{field}/deactivate", studio.deactivate_field, methods=post),
        Route("/admin/settings", studio.settings_form, methods=["GET", "POST"]),
        Route("/admin/users", studio.users_roles, methods=["GET", "POST"]),
        Route("/admin/roles", studio.role_grid, methods=get),
        Route("/admin/roles/{key}", studio.role_grid, methods=["GET", "POST"]),
        Route("/admin/roles/{key}/fields/{entity}", studio.role_fields, methods=["GET", "POST"]),
        Route("/app/{entity}", records.list_view, methods=get),
        Route("/app/{entity}/export.csv", records.export_csv, methods=get),
        Route("/app/{entity}/import", imports.import_form, methods=["GET", "POST"]),
        Route("/app/{entity}/import/template.csv", imports.import_template, methods=get),
        Route("/app/{entity}/bulk", records.bulk, methods=post),
        Route("/app/{entity}/views", records.save_view, methods=post),
        Route("/app/{entity}/views/{view_id:int}/delete", records.delete_view, methods=post),
        Route("/app/{entity}/lookup", records.lookup, methods=get),
        Route("/app/{entity}/board", records.board, methods=get),
        Route("/app/{entity}/trash", records.trash, methods=get),
        Route("/app/{entity}/new", records.new, methods=["GET", "POST"]),
        Route("/app/{entity}/{id}", records.detail, methods=get),
        Route("/app/{entity}/{id}/edit", records.edit, methods=["GET", "POST"]),
        Route("/app/{entity}/{id}/delete", records.delete, methods=post),
        Route("/app/{entity}/{id}/files/{field}", records.download, methods=get),
        Route("/app/{entity}/{id}/stage", records.move_stage, methods=post),
        Route("/app/{entity}/{id}/share", records.share, methods=post),
        Route("/app/{entity}/{id}/action/{key}", records.run_action, methods=["GET", "POST"]),
        Route("/app/{entity}/{id}/restore", records.restore, methods=post),
        Route("/app/{entity}/{id}/purge", records.purge, methods=post),
        *api.routes(),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if request.url.path.startswith("/api/"):
        names = {404: "NotFound", 405: "MethodNotAllowed"}
        return json_error(status, names.get(status, "HTTPError"), str(getattr(exc, "detail", "")), request)
    return error_page(request, status)


async def server_error(request: Request, exc: Exception) -> Response:
    log.error("request %s failed", getattr(request.state, "request_id", ""), exc_info=exc)
    if request.url.path.startswith("/api/"):
        return json_error(500, "InternalError", "Something went wrong on our side.", request)
    return error_page(request, 500)


def build_app(runtime: Runtime, config: Config) -> Starlette:
    secret = config.secret_key
    if not secret:
        # Without a configured key every start signs sessions anew: fine for a demo, logged so
        # that production sets CRM_SECRET_KEY (all workers must share one key).
        secret = secrets.token_urlsafe(32)
        log.warning("CRM_SECRET_KEY is not set: sessions end when the server restarts")
    state = AppState(runtime, config, make_templates())
    app = Starlette(
        routes=routes(),
        middleware=[
            Middleware(EdgeMiddleware),
            Middleware(SessionMiddleware, secret_key=secret, session_cookie="crm_session",
                       max_age=int(sessions.SESSION_LIFETIME / timedelta(seconds=1)), same_site="lax",
                       https_only=config.secure_cookies),
        ],
        exception_handlers={HTTPException: http_error, 500: server_error},
    )
    app.state.crm = state
    return app


def create_app() -> Starlette:
    """The application for the configuration in the environment (crm.toml, CRM_*)."""
    config = load_config()
    return build_app(open_runtime(config), config)
