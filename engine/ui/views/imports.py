"""Importing a CSV file into an entity's list: the form, a header template, and the result."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.responses import Response

from engine.runtime.errors import Forbidden, RecordError
from engine.runtime.importer import ImportFailed, import_csv, importable_fields, template_csv
from engine.ui.views.records import entity_of
from engine.ui.web import Ctx, page

MAX_BYTES = 10 * 1024 * 1024  # below the 20 MB request cap, so the message is ours


def check_import(ctx: Ctx, entity_key: str) -> None:
    if not (ctx.records.allows(entity_key, "import") and ctx.records.allows(entity_key, "create")):
        raise Forbidden(ImportFailed({"en": "You may not import these records.", "zh": "您无权导入此类记录。"}).message)


@page()
def import_form(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    check_import(ctx, entity.key)
    result, problem = None, None
    if ctx.request.method == "POST":
        assert ctx.form is not None
        upload = ctx.form.get("file")
        if not isinstance(upload, UploadFile) or not upload.filename:
            problem = ctx.t("import_choose_file")
        else:
            data = upload.file.read(MAX_BYTES + 1)
            if len(data) > MAX_BYTES:
                problem = ctx.t("import_too_large", size="10 MB")
            else:
                try:
                    result = import_csv(ctx.records, entity.key, data)
                except ImportFailed as exc:
                    problem = exc.message.text(ctx.language)
                except Forbidden:
                    raise
                except RecordError as exc:
                    problem = exc.message.text(ctx.language)
        if result is not None and result.ok:
            ctx.flash(ctx.t("import_done", count=result.created))
            for line, warning in result.warnings[:10]:
                ctx.flash(ctx.t("import_line", line=line) + " " + warning.text(ctx.language), "warn")
            return ctx.redirect(f"/app/{entity.key}", sort="-id")
    failed = problem is not None or result is not None
    return ctx.render("import.html", 422 if failed else 200, entity=entity, result=result, problem=problem,
                      fields=importable_fields(ctx.records, entity), base=f"/app/{entity.key}")


@page()
def import_template(ctx: Ctx) -> Response:
    entity = entity_of(ctx)
    check_import(ctx, entity.key)
    return Response(template_csv(ctx.records, entity, ctx.language), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{entity.key}-import.csv"'})
