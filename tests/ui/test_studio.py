"""The admin studio over HTTP: a custom pick-list field previewed, applied live (in this and in
another worker's app), used by a salesperson, deactivated and reverted; settings; users' roles."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from engine.runtime.service import Runtime
from engine.runtime.users import User, load_user
from engine.ui import web
from engine.ui.app import build_app
from tests.ui.conftest import PASSWORDS, STANDARD, csrf_of, login

Client = Callable[..., TestClient]

FIELD = {"name": "grade", "type": "choice", "label_zh": "客户级别", "label_en": "Customer level",
         "options": "gold|金牌|Gold\nsilver|银牌|Silver", "section": "Basic information", "in_list": "1",
         "in_filters": "1"}


def test_custom_field_from_preview_to_revert(client_for: Client, crm: Runtime, app_config: object,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "RELOAD_SECONDS", 0.0)
    admin = client_for("admin")
    # another worker process: its own app state over the same database
    other_worker = TestClient(build_app(crm, app_config), follow_redirects=False)  # type: ignore[arg-type]
    other_worker.__enter__()
    login(other_worker, "sales1", PASSWORDS["sales1"])
    assert "x_grade" not in other_worker.get("/app/customer/new").text

    token = csrf_of(admin, "/admin/studio/customer")
    preview = admin.post("/admin/studio/customer", data={"_csrf": token, **FIELD, "preview": "1"})
    assert preview.status_code == 200
    assert re.search(r"ALTER TABLE customer ADD( COLUMN)? x_grade", preview.text)
    bad = admin.post("/admin/studio/customer", data={"_csrf": token, **FIELD, "name": "Bad Name!", "preview": "1"})
    assert bad.status_code == 422
    applied = admin.post("/admin/studio/customer", data={"_csrf": token, **FIELD, "apply": "1"})
    assert applied.status_code == 303

    form = other_worker.get("/app/customer/new").text
    assert 'name="x_grade"' in form and "Customer level" in form
    sales_token = csrf_of(other_worker, "/")
    saved = other_worker.post("/app/customer/new", data={"_csrf": sales_token, "name": "金牌客户", "x_grade": "gold"})
    assert saved.status_code == 303
    listed = other_worker.get("/app/customer?f.x_grade=gold").text
    assert "金牌客户" in listed and "Gold" in listed
    assert "x_grade" in other_worker.get("/api/openapi.json").text

    revisions = admin.get("/admin/studio").text
    newest = re.search(r'data-test="undo-(\d+)"', revisions).group(1)  # type: ignore[union-attr]
    admin.post(f"/admin/studio/{'customer'}/fields/x_grade/deactivate", data={"_csrf": token})
    assert 'name="x_grade"' not in other_worker.get("/app/customer/new").text
    admin.post(f"/admin/studio/revisions/{newest}/revert", data={"_csrf": token, "before": "1"})
    assert 'name="x_grade"' not in other_worker.get("/app/customer/new").text
    with crm.engine.connect() as conn:  # the data stays in the database
        assert conn.execute(sa.text("SELECT x_grade FROM customer WHERE name = '金牌客户'")).scalar() == "gold"
    other_worker.__exit__(None, None, None)


def test_studio_is_for_administrators(client_for: Client) -> None:
    sales = client_for("sales1")
    for path in ("/admin/studio", "/admin/studio/customer", "/admin/settings", "/admin/users",
                 "/admin/studio/new-entity", "/admin/studio/customer/layouts/list", "/admin/roles/salesperson",
                 "/admin/roles/salesperson/fields/customer"):
        assert sales.get(path).status_code == 403, path
    token = csrf_of(sales, "/")
    for path in ("/admin/studio/new-entity", "/admin/studio/customer/layouts/form", "/admin/studio/x_any/remove",
                 "/admin/roles/salesperson/fields/customer"):
        assert sales.post(path, data={"_csrf": token, **ENTITY, "apply": "1"}).status_code == 403, path
    admin = client_for("admin")
    assert admin.post("/admin/studio/new-entity", data={**ENTITY, "apply": "1"}).status_code == 403  # no CSRF token


def test_settings_are_typed(client_for: Client, crm: Runtime) -> None:
    admin = client_for("admin")
    token = csrf_of(admin, "/admin/settings")
    bad = admin.post("/admin/settings", data={"_csrf": token, "max_customers_per_salesperson": "lots"})
    assert bad.status_code == 422 and "is not a valid integer" in bad.text
    good = admin.post("/admin/settings", data={"_csrf": token, "max_customers_per_salesperson": "300",
                                               "duplicate_name_policy": "refuse"})
    assert good.status_code == 303
    assert crm.setting("max_customers_per_salesperson") == 300 and crm.setting("duplicate_name_policy") == "refuse"


def test_roles_are_assigned_and_audited(client_for: Client, crm: Runtime, people: dict[str, User]) -> None:
    admin = client_for("admin")
    token = csrf_of(admin, "/admin/users")
    done = admin.post("/admin/users", data={"_csrf": token, "user": people["sales2"].id,
                                            "roles": ["salesperson", "marketing"]})
    assert done.status_code == 303
    user = load_user(crm, people["sales2"].id)
    assert user is not None and set(user.roles) == {"salesperson", "marketing"}
    assert "Roles changed" in admin.get("/admin/audit").text


def test_picklist_editor_renames_deactivates_reorders_and_adds(client_for: Client, crm: Runtime,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "RELOAD_SECONDS", 0.0)
    admin = client_for("admin")
    page = admin.get("/admin/studio/picklists/value_grade")
    assert page.status_code == 200 and "customer.value_grade" in page.text
    token = csrf_of(admin, "/admin/studio/picklists/value_grade")
    form = {"_csrf": token, "pos_a": "3", "pos_b": "1", "pos_c": "2",
            "zh_a": "A - 战略客户", "en_a": "A - strategic", "zh_b": "B - 普通客户", "en_b": "B - regular account",
            "zh_c": "C - 一般客户", "en_c": "C - small account", "active_a": "1", "active_b": "1",
            "new_key": "d", "new_zh": "D - 潜力客户", "new_en": "D - promising"}
    assert admin.post("/admin/studio/picklists/value_grade", data=form).status_code == 303
    grade = crm.registry  # the old registry object is unchanged; look at a fresh one
    from engine.runtime.customization import reload

    options = reload(crm).registry.picklists["value_grade"].options
    assert [o.key for o in options] == ["b", "c", "a", "d"]
    assert options[2].label["zh"] == "A - 战略客户" and not options[1].active and options[3].active
    assert grade.picklists["value_grade"].options[0].key == "a"
    sales = client_for("sales1")
    form_html = sales.get("/app/customer/new").text
    assert "A - strategic" in form_html and "D - promising" in form_html and "C - small account" not in form_html
    again = admin.post("/admin/studio/picklists/value_grade", data={**form, "new_key": "b", "new_zh": "x", "new_en": "x"})
    assert again.status_code == 422


def test_edit_a_pack_field_and_its_numbering_rule(client_for: Client, crm: Runtime,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "RELOAD_SECONDS", 0.0)
    admin = client_for("admin")
    token = csrf_of(admin, "/admin/studio/customer/fields/code")
    page = admin.get("/admin/studio/customer/fields/code").text
    assert re.search(r'data-test="next-number"><code>KH\d{6}-00001</code>', page)
    bad = admin.post("/admin/studio/customer/fields/code", data={"_csrf": token, "pattern": "KH-{seq}{seq}",
                                                                 "preview": "1"})
    assert bad.status_code == 422 and "exactly one {seq}" in bad.text
    preview = admin.post("/admin/studio/customer/fields/code", data={"_csrf": token, "pattern": "C{YY}-{seq:4}",
                                                                     "preview": "1"})
    assert re.search(r'data-test="next-number"><code>C\d\d-0001</code>', preview.text)
    assert admin.post("/admin/studio/customer/fields/code", data={"_csrf": token, "pattern": "C{YY}-{seq:4}",
                                                                  "apply": "1"}).status_code == 303
    renamed = admin.post("/admin/studio/customer/fields/city", data={"_csrf": token, "label_en": "Town",
                                                                     "label_zh": "城镇", "required": "1",
                                                                     "apply": "1"})
    assert renamed.status_code == 303
    sales = client_for("sales1")
    form = sales.get("/app/customer/new").text
    assert "Town" in form
    created = sales.post("/app/customer/new", data={"_csrf": csrf_of(sales, "/"), "name": "编号测试", "city": "苏州"})
    assert created.status_code == 303
    from engine.runtime.customization import reload

    record = reload(crm).records().get("customer", created.headers["location"].rsplit("/", 1)[1])
    assert re.fullmatch(r"C\d\d-0001", record["code"])
    missing = sales.post("/app/customer/new", data={"_csrf": csrf_of(sales, "/"), "name": "无城市"})
    assert missing.status_code == 422  # the city is required now


def test_role_grid_changes_scopes_live_and_audits(client_for: Client, crm: Runtime, people: dict[str, User],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "RELOAD_SECONDS", 0.0)
    crm.records().create("customer", {"name": "别人的客户", "owner": people["sales2"].id})
    sales = client_for("sales1")
    assert "别人的客户" not in sales.get("/app/customer").text
    admin = client_for("admin")
    grid = admin.get("/admin/roles/salesperson").text
    selects = dict(re.findall(r'<select name="([a-z_]+\.[a-z]+)"[^>]*>.*?<option value="([a-z]+)" selected', grid, re.S))
    assert selects["customer.read"] == "own" and len(selects) == len(crm.registry.entities) * 10
    token = csrf_of(admin, "/admin/roles/salesperson")
    assert admin.post("/admin/roles/salesperson", data={"_csrf": token, **selects,
                                                        "customer.read": "all"}).status_code == 303
    assert "别人的客户" in sales.get("/app/customer").text  # live, without a restart
    assert 'class="changed"' in admin.get("/admin/roles/salesperson").text
    assert "Role permissions changed" in admin.get("/admin/audit").text
    admin.post("/admin/roles/salesperson", data={"_csrf": token, **selects})  # back to the packs' grant
    assert "别人的客户" not in sales.get("/app/customer").text


# -- the administrator's own entities ---------------------------------------------------------------

ENTITY = {"name": "project", "label_zh": "项目", "label_en": "Project", "menu": "sales",
          "title_name": "name", "title_zh": "项目名称", "title_en": "Project name",
          "f1_name": "customer", "f1_type": "reference", "f1_target": "customer", "f1_label_zh": "客户",
          "f1_label_en": "Customer", "f1_tab": "1",
          "f2_name": "phase", "f2_type": "stage", "f2_label_zh": "阶段", "f2_label_en": "Phase",
          "f2_options": "plan|规划|Planning\nbuild|实施|Building\ndone|完成|Done|won",
          "f3_name": "budget", "f3_type": "money", "f3_label_zh": "预算", "f3_label_en": "Budget",
          "f4_name": "kind", "f4_type": "choice", "f4_label_zh": "类型", "f4_label_en": "Kind",
          "f4_options": "new|新建|New build\nupgrade|改造|Upgrade",
          "f5_name": "notes", "f5_type": "text", "f5_label_zh": "备注", "f5_label_en": "Notes"}


def newest_revision(admin: TestClient, document: str, revision: str = r"\d+") -> str:
    """The id of the newest revision of a document ("entity x_project") in the studio's history
    (or of its revision number `revision`)."""
    html = admin.get("/admin/studio").text
    row = re.search(rf"<td>{re.escape(document)}</td><td>{revision}\b.*?data-test=\"undo-(\d+)\"", html, re.S)
    assert row, f"no revision of {document}"
    return row.group(1)


def related_tab(client: TestClient, url: str, child: str) -> str:
    """The HTML of a record page with the tab of `child` records open."""
    found = re.search(rf'href="[^"]*\?tab=(r\d+)"[^>]*data-test="tab-{child}"', client.get(url).text)
    assert found, f"no {child} tab on {url}"
    return client.get(f"{url}?tab={found.group(1)}").text


def test_custom_entity_gets_every_screen_and_the_api_and_undo_takes_it_off(
        client_for: Client, crm: Runtime, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(web, "RELOAD_SECONDS", 0.0)
    admin = client_for("admin")
    assert admin.get("/admin/studio/new-entity").status_code == 200
    token = csrf_of(admin, "/admin/studio/new-entity")

    # bad input: clear errors beside the rows, everything typed comes back, nothing is stored
    bad = admin.post("/admin/studio/new-entity", data={
        "_csrf": token, **ENTITY, "name": "Bad name!", "f3_name": "customer", "f6_name": "site", "f6_type": "reference",
        "f6_label_zh": "现场", "f6_label_en": "Site", "preview": "1"})
    assert bad.status_code == 422
    assert "Use lower-case letters" in bad.text and "Field 3: A field (or pick-list) of this name exists" in bad.text
    assert "Field 6: Choose the entity the link points to." in bad.text
    assert 'value="Bad name!"' in bad.text and "plan|规划|Planning" in bad.text
    no_group = admin.post("/admin/studio/new-entity", data={"_csrf": token, **ENTITY, "menu": "__new", "preview": "1"})
    assert no_group.status_code == 422 and "Give the label in Chinese and English" in no_group.text
    assert admin.post("/admin/studio/new-entity", data={"_csrf": token, **ENTITY, "menu": "nowhere",
                                                        "preview": "1"}).status_code == 422
    assert "x_project" not in admin.get("/admin/studio").text

    preview = admin.post("/admin/studio/new-entity", data={"_csrf": token, **ENTITY, "preview": "1"})
    assert preview.status_code == 200, preview.text[-2000:]
    assert re.search(r"CREATE TABLE x_project", preview.text) and "/app/x_project/board" in preview.text
    applied = admin.post("/admin/studio/new-entity", data={"_csrf": token, **ENTITY, "apply": "1"})
    assert applied.status_code == 303 and applied.headers["location"] == "/admin/studio/x_project"
    again = admin.post("/admin/studio/new-entity", data={"_csrf": token, **ENTITY, "preview": "1"})
    assert again.status_code == 422 and "An entity of this name exists already" in again.text

    # every generated screen, the search and the API, for the administrator at once
    assert 'href="/app/x_project"' in admin.get("/").text  # in the Sales menu group
    form = admin.get("/app/x_project/new").text
    for name in ("name", "customer", "phase", "budget", "kind", "notes"):
        assert f'name="{name}"' in form, name
    customer = crm.records().create("customer", {"name": "华东机械"})
    made = admin.post("/app/x_project/new", data={"_csrf": token, "name": "二期改造", "customer": customer["id"],
                                                  "budget": "1,200,000", "kind": "upgrade", "phase": "build"})
    assert made.status_code == 303, made.text[-1500:]
    record_url = made.headers["location"]
    detail = admin.get(record_url).text
    assert "二期改造" in detail and "Upgrade" in detail and "Building" in detail
    assert "二期改造" in admin.get("/app/x_project?f.kind=upgrade").text
    assert "二期改造" in admin.get("/app/x_project/board").text
    assert "二期改造" in admin.get("/search?q=二期").text
    assert "二期改造" in related_tab(admin, f"/app/customer/{customer['id']}", "x_project")  # a tab on the customer
    api = admin.get("/api/v1/x_project")
    assert api.status_code == 200 and api.json()["data"][0]["name"] == "二期改造"
    assert "x_project" in admin.get("/api/openapi.json").text

    # more fields on the entity's page (no x_ needed on an entity of one's own); its title stays
    added = admin.post("/admin/studio/x_project", data={"_csrf": token, "name": "site", "type": "string",
                                                        "label_zh": "现场", "label_en": "Site", "in_list": "1",
                                                        "apply": "1"})
    assert added.status_code == 303
    assert "<code>site</code>" in admin.get("/admin/studio/x_project").text
    assert 'data-test="sort-site"' in admin.get("/app/x_project").text
    admin.post("/admin/studio/x_project/fields/name/deactivate", data={"_csrf": token})
    assert 'name="name"' in admin.get("/app/x_project/new").text

    # other roles: nothing until the role grid grants it
    sales = client_for("sales1")
    assert sales.get("/app/x_project").status_code == 404  # entities a user may not read are not there
    assert 'href="/app/x_project"' not in sales.get("/").text
    grid = admin.get("/admin/roles/salesperson").text
    selects = dict(re.findall(r'<select name="([a-z_]+\.[a-z]+)"[^>]*>.*?<option value="([a-z]+)" selected', grid, re.S))
    assert selects["x_project.read"] == "none"
    admin.post("/admin/roles/salesperson", data={"_csrf": token, **selects, "x_project.read": "all",
                                                 "x_project.create": "all"})
    assert "二期改造" in sales.get("/app/x_project").text

    # the customisation layer exported as a pack validates with the standard pack
    from engine.metadata import validate
    from engine.runtime.installer import export_customizations

    export_customizations(crm.engine, tmp_path / "custom", ["standard_crm"])
    assert validate([STANDARD, tmp_path / "custom"]) == []

    # undo the entity: off every screen, the menu, the tab and the role grid; the table and data stay
    undone = admin.post(f"/admin/studio/revisions/{newest_revision(admin, 'entity x_project', '1')}/revert",
                        data={"_csrf": token, "before": "1"})
    assert undone.status_code == 303
    assert admin.get("/app/x_project").status_code == 404 and admin.get(record_url).status_code == 404
    assert 'href="/app/x_project"' not in admin.get("/").text
    assert 'data-test="tab-x_project"' not in admin.get(f"/app/customer/{customer['id']}").text
    assert "x_project" not in admin.get("/admin/roles/salesperson").text
    assert "x_project" not in admin.get("/api/openapi.json").text
    with crm.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT name FROM x_project")).scalar() == "二期改造"
    # making the definition current again brings it back, with its menu entry
    restored = admin.post(f"/admin/studio/revisions/{newest_revision(admin, 'entity x_project')}/revert",
                          data={"_csrf": token, "before": "1"})
    assert restored.status_code == 303
    assert "二期改造" in admin.get("/app/x_project").text and 'href="/app/x_project"' in admin.get("/").text
    # the entity page removes it too
    assert admin.post("/admin/studio/x_project/remove", data={"_csrf": token}).status_code == 303
    assert admin.get("/app/x_project").status_code == 404
    assert admin.post("/admin/studio/customer/remove", data={"_csrf": token}).status_code == 404  # a pack's entity


# -- the layout editor --------------------------------------------------------------------------------

def legends(html: str) -> list[str]:
    return re.findall(r"<legend>([^<]+)</legend>", html)


def inputs(html: str) -> list[str]:
    return re.findall(r'<(?:input|select|textarea)[^>]* name="([a-z_0-9]+)"', html)


def test_layout_editor_moves_sections_fields_columns_sorts_filters_and_tabs(
        client_for: Client, crm: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "RELOAD_SECONDS", 0.0)
    admin = client_for("admin")
    form_url = "/admin/studio/customer/layouts/form"
    page = admin.get(form_url)
    assert page.status_code == 200 and 'data-test="section-4"' in page.text
    for kind in ("detail", "list", "related"):
        assert admin.get(f"/admin/studio/customer/layouts/{kind}").status_code == 200, kind
    token = csrf_of(admin, form_url)

    def move(kind: str, status: int = 303, **data: str) -> str:
        response = admin.post(f"/admin/studio/customer/layouts/{kind}", data={"_csrf": token, **data})
        assert response.status_code == status, response.text[-3000:]
        return response.text

    # form: fields up/down and to another section, sections added, renamed, reordered, removed
    move("form", op="field_down", i="0", field="category")
    move("form", op="add_section", label_zh="重点", label_en="Focus", columns="1")
    move("form", op="move_field", i="1", field="fax", to="5")
    move("form", op="edit_section", i="5", label_zh="要点", label_en="Key facts", columns="3")
    move("form", op="section_up", i="5")
    move("form", op="remove_field", i="1", field="website")
    move("form", op="remove_section", i="5")  # Remarks, now last
    move("form", op="add_field", i="0", field="remarks")
    # bad moves: clear errors, nothing stored
    revisions = admin.get("/admin/studio").text.count('data-test="undo-')
    assert "Customer name is required: it must stay on the form" in move("form", 422, op="remove_field", i="0",
                                                                         field="name")
    assert "There is a section called" in move("form", 422, op="edit_section", i="0", label_zh="x",
                                               label_en="Key facts", columns="2")
    assert "Give the label in Chinese and English" in move("form", 422, op="add_section", label_zh="", label_en="X")
    assert "is not a field that can go here" in move("form", 422, op="add_field", i="0", field="phone_key")
    assert "changed in the meantime" in move("form", 422, op="section_up", i="42")
    assert "Columns: 1 to 4" in move("form", 422, op="edit_section", i="0", label_zh="基本", label_en="Basics",
                                     columns="9")
    assert admin.get("/admin/studio").text.count('data-test="undo-') == revisions

    sales = client_for("sales1")
    new_form = sales.get("/app/customer/new").text
    assert legends(new_form) == ["Basic information", "Contact and address", "Sales status", "Customer pool",
                                 "Key facts"]
    names = inputs(new_form)
    assert names.index("source") < names.index("category") < names.index("remarks") < names.index("phone")
    assert "website" not in names and names[-1] == "fax"
    assert 'data-test="customised"' in admin.get(form_url).text

    # the record page has a layout of its own
    move("detail", op="field_down", i="0", field="name")
    customer = crm.records().create("customer", {"name": "布局测试", "mnemonic": "BJCS", "owner": None})
    detail = admin.get(f"/app/customer/{customer['id']}").text
    assert detail.index("<dt>Mnemonic code</dt>") < detail.index("<dt>Customer name</dt>")

    # list: columns added, moved, removed; default sort; filter fields
    move("list", op="add_column", field="email")
    move("list", op="column_up", field="email")
    move("list", op="column_remove", field="phone")
    move("list", op="set_sort", sort1="name", dir1="asc", sort2="", dir2="asc")
    move("list", op="add_filter", field="city")
    move("list", op="filter_up", field="city")
    move("list", op="filter_remove", field="created_at")
    assert "cannot be sorted by" in move("list", 422, op="set_sort", sort1="bogus", dir1="asc")
    assert "is not a field that can go here" in move("list", 422, op="add_column", field="phone_key")
    listed = sales.get("/app/customer").text
    headers = re.findall(r'data-test="sort-([a-z_]+)"', listed)
    assert headers.index("email") == headers.index("next_follow_up_at") + 1 and "phone" not in headers
    assert 'data-test="filter-city"' in listed and 'data-test="filter-created_at"' not in listed
    from engine.runtime.customization import reload

    layout = reload(crm).registry.entity("customer").list
    assert layout.sort == ("name",) and layout.filters[-2:] == ("assigned_at", "city")

    # related tabs: which show, in what order
    related_url = "/admin/studio/customer/layouts/related"
    move("related", op="tab_up", i="1")  # follow-ups first
    move("related", op="hide_tab", i="6")  # service requests
    assert 'data-test="show-tab-service_request-customer"' in admin.get(related_url).text
    page = admin.get(f"/app/customer/{customer['id']}").text
    tabs = re.findall(r'data-test="tab-([a-z_]+)"', page)
    assert tabs[:2] == ["follow_up", "contact"] and "service_request" not in tabs
    move("related", op="show_tab", tab="service_request.customer")
    tabs = re.findall(r'data-test="tab-([a-z_]+)"', admin.get(f"/app/customer/{customer['id']}").text)
    assert tabs.index("service_request") == tabs.index("customer") + 1
    assert "changed in the meantime" in move("related", 422, op="show_tab", tab="contact.bogus")

    # administrators only, CSRF enforced, unknown layouts are not there
    assert sales.get(form_url).status_code == 403
    assert sales.post(form_url, data={"_csrf": csrf_of(sales, "/"), "op": "section_up", "i": "1"}).status_code == 403
    assert admin.post(form_url, data={"op": "section_up", "i": "1"}).status_code == 403
    assert admin.get("/admin/studio/customer/layouts/kanban").status_code == 404


# -- field rules in the role grid ---------------------------------------------------------------------

def test_field_rules_hide_and_lock_fields_per_role_live(client_for: Client, crm: Runtime, people: dict[str, User],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(web, "RELOAD_SECONDS", 0.0)
    admin = client_for("admin")
    url = "/admin/roles/salesperson/fields/customer"
    assert 'data-test="field-rules-customer"' in admin.get("/admin/roles/salesperson").text
    page = admin.get(url)
    assert page.status_code == 200 and 'name="rule.phone"' in page.text and "phone_key" not in page.text
    token = csrf_of(admin, url)
    sales = client_for("sales1")
    mine = crm.records().create("customer", {"name": "规则客户", "phone": "021-5555-1234", "city": "苏州",
                                             "owner": people["sales1"].id})
    product = crm.records().create("product", {"name": "规则产品", "code": "GZ-001", "cost_price": "88"})
    assert 'name="phone"' in sales.get("/app/customer/new").text

    # bad input: a required field cannot be hidden from a role that creates records; unknown rules
    bad = admin.post(url, data={"_csrf": token, "rule.name": "hidden", "rule.phone": "hidden"})
    assert bad.status_code == 422 and "users of this role could no longer create records" in bad.text
    assert admin.post(url, data={"_csrf": token, "rule.phone": "secret"}).status_code == 422
    assert 'name="phone"' in sales.get("/app/customer/new").text  # nothing was stored

    assert admin.post(url, data={"_csrf": token, "rule.phone": "hidden", "rule.city": "read_only"}).status_code == 303
    form = sales.get("/app/customer/new").text
    assert 'name="phone"' not in form and 'name="city"' not in form  # hidden; read-only (not on a new record)
    record = sales.get(f"/api/v1/customer/{mine['id']}").json()
    assert "phone" not in record and record["city"] == "苏州"
    edit = sales.get(f"/app/customer/{mine['id']}/edit").text
    assert 'name="city"' not in edit and "苏州" in edit  # shown, not changeable
    page = admin.get(url).text
    assert re.search(r'class="changed"><select name="rule.phone"', page)
    assert "Role permissions changed" in admin.get("/admin/audit").text

    # "visible" lifts a rule of the packs (salespeople do not see product cost prices)
    product_url = "/admin/roles/salesperson/fields/product"
    assert re.search(r'name="rule.cost_price".*?<option value="hidden" selected', admin.get(product_url).text, re.S)
    assert "cost_price" not in sales.get(f"/api/v1/product/{product['id']}").json()
    assert admin.post(product_url, data={"_csrf": token, "rule.cost_price": "visible"}).status_code == 303
    assert sales.get(f"/api/v1/product/{product['id']}").json()["cost_price"] == "88.00"

    # saving the scope grid keeps the field rules
    grid = admin.get("/admin/roles/salesperson").text
    selects = dict(re.findall(r'<select name="([a-z_]+\.[a-z]+)"[^>]*>.*?<option value="([a-z]+)" selected', grid, re.S))
    assert admin.post("/admin/roles/salesperson", data={"_csrf": token, **selects,
                                                        "customer.export": "own"}).status_code == 303
    assert 'name="phone"' not in sales.get("/app/customer/new").text
    assert "cost_price" in sales.get(f"/api/v1/product/{product['id']}").json()

    # back to the packs' rules; administrators only; CSRF; unknown role or entity
    assert admin.post(url, data={"_csrf": token}).status_code == 303
    assert 'name="phone"' in sales.get("/app/customer/new").text
    assert sales.get(url).status_code == 403
    assert admin.post(url, data={"rule.phone": "hidden"}).status_code == 403
    assert admin.get("/admin/roles/nobody/fields/customer").status_code == 404
    assert admin.get("/admin/roles/salesperson/fields/nothing").status_code == 404
