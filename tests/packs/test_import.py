"""CSV import into the standard CRM's lists: columns by label in either language, values as typed
(option labels, users' names, linked records' names), the pack's hooks (duplicate check) on every
row, all rows or none, and the import permission."""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.testclient import TestClient

from engine.runtime.importer import import_csv
from tests.packs.conftest import CRM
from tests.ui.conftest import csrf_of

Web = Callable[[str], TestClient]


def upload(client: TestClient, entity: str, text: str, encoding: str = "utf-8-sig", csrf: bool = True):  # type: ignore[no-untyped-def]
    data = {"_csrf": csrf_of(client, f"/app/{entity}/import")} if csrf else {}
    return client.post(f"/app/{entity}/import", data=data,
                       files={"file": (f"{entity}.csv", text.encode(encoding), "text/csv")})


def test_manager_imports_customers_and_contacts_from_excel_csv(crm: CRM, web: Web) -> None:
    crm.customer("上海母公司有限公司", "manager")
    client = web("manager")
    listed = client.get("/app/customer").text
    assert 'data-test="import"' in listed
    form = client.get("/app/customer/import")
    assert form.status_code == 200 and "客户名称" not in form.text and "Customer name" in form.text
    template = client.get("/app/customer/import/template.csv")
    assert template.status_code == 200 and template.text.lstrip("\ufeff").startswith("Customer name,")
    # Chinese headers, GB18030 as Excel saves it, an option by its label, the owner by name, a
    # parent by its name, and a column that matches nothing.
    csv_text = ("客户名称,客户类型,所属行业,负责人,上级客户,电话,我们的备注列\n"
                "杭州新材料科技有限公司,成交客户,,Sales1,上海母公司有限公司,0571-88886666,x\n"
                "宁波港口机械有限公司,Potential,,sales1,,,y\n")
    done = upload(client, "customer", csv_text, "gb18030")
    assert done.status_code == 303, done.text[:2000]
    assert "2 records imported" in client.get(done.headers["location"]).text
    hangzhou = crm.find("customer", "name eq 杭州新材料科技有限公司")[0]
    assert hangzhou["customer_type"] == "transacting" and hangzhou["owner"] == crm.id("sales1")
    assert hangzhou["parent"] == crm.find("customer", "name eq 上海母公司有限公司")[0]["id"]
    assert hangzhou["mnemonic"] == "HZXCLKJYXGS" and hangzhou["code"].startswith("KH")  # hooks and autonumbers ran
    assert crm.find("customer", "name eq 宁波港口机械有限公司")[0]["customer_type"] == "potential"
    contacts = upload(client, "contact", "Customer,Name,Gender\n杭州新材料科技有限公司,周工,男\n")
    assert contacts.status_code == 303, contacts.text[:2000]
    assert crm.find("contact", "name eq 周工")[0]["customer"] == hangzhou["id"]


def test_one_bad_row_imports_nothing_and_every_problem_is_listed(crm: CRM, web: Web) -> None:
    crm.customer("重名客户有限公司", "manager")
    crm.customer("重名客户有限公司", "sales1")
    client = web("manager")
    before = len(crm.find("customer"))
    csv_text = ("Customer name,Customer type,Annual revenue,Parent customer,Owner\n"
                "好公司,Potential,1000,,\n"  # fine on its own
                ",Potential,,,\n"  # no name
                "坏数字公司,Nonsense,lots,,\n"  # bad option, bad money
                "找不到上级公司,,,不存在的公司,\n"  # unknown parent
                "两个上级公司,,,重名客户有限公司,\n"  # ambiguous parent
                "没有此人公司,,,,Nobody\n")  # unknown user
    refused = upload(client, "customer", csv_text)
    assert refused.status_code == 422
    problems = re.findall(r"<tr><td>(\d+)</td><td>([^<]*)</td><td>([^<]*)</td></tr>",
                          refused.text.split('data-test="import-problems"')[1])
    lines = sorted({int(line) for line, _, _ in problems})
    assert lines == [3, 4, 5, 6, 7], problems
    assert any(col == "Customer type" and "Nonsense" in msg for _, col, msg in problems)
    assert any(col == "Annual revenue" for _, col, _ in problems)
    assert any("not_a" not in msg and "several records" in msg.lower() for _, _, msg in problems)
    assert len(crm.find("customer")) == before  # nothing imported, not even the good row


def test_duplicate_policy_applies_to_imported_rows(crm: CRM, web: Web) -> None:
    crm.runtime.set_setting("duplicate_name_policy", "refuse")
    crm.customer("上海重复有限公司", "manager")
    refused = upload(web("manager"), "customer", "客户名称\n上海重复 有限公司\n")
    assert refused.status_code == 422 and "already exists" in refused.text
    result = import_csv(crm.as_("manager"), "customer", "客户名称\n全新公司\n全新公司\n".encode())
    assert not result.ok and result.created == 0  # a duplicate within the file is caught as well
    assert [p.line for p in result.problems] == [3]


def test_import_needs_the_permission_and_a_csrf_token(crm: CRM, web: Web) -> None:
    sales = web("sales1")
    assert 'data-test="import"' not in sales.get("/app/customer").text
    assert sales.get("/app/customer/import").status_code == 403
    manager = web("manager")
    assert upload(manager, "customer", "客户名称\n无令牌公司\n", csrf=False).status_code == 403
    assert not crm.find("customer", "name eq 无令牌公司")


def test_unreadable_files_get_a_clear_message(crm: CRM, web: Web) -> None:
    client = web("manager")
    for content, message in ((b"", "Choose a CSV file"), (b"\xff\xfe\x00\x00garbage\x81", "neither UTF-8"),
                             (b"Foo,Bar\n1,2\n", "No column matches a field"),
                             ("Customer name,客户名称\nA,B\n".encode(), "Two columns are both")):
        data = {"_csrf": csrf_of(client, "/app/customer/import")}
        files = {"file": ("x.csv", content, "text/csv")} if content else {"file": ("", b"", "text/csv")}
        answer = client.post("/app/customer/import", data=data, files=files)
        assert answer.status_code == 422 and message in answer.text, (message, answer.text[:3000])


def test_a_large_file_goes_in_batches_with_every_check(crm: CRM) -> None:
    from engine.runtime.hooks import CREATE_EVENTS
    from engine.runtime.importer import BATCH

    assert crm.runtime.hooks.batch_safe("customer", CREATE_EVENTS)  # the fast path: hooks step by step
    crm.customer("已有电话公司", "manager")
    existing = crm.find("customer", "name eq 已有电话公司")[0]
    crm.as_("manager").update("customer", existing["id"], {"phone": "021-5555-1234"}, existing["version"])
    rows = [f"批量导入{n:05d}号有限公司,Potential," for n in range(BATCH * 2 + 500)]
    rows[10] = "批量导入00003号股份有限公司,Potential,"  # the same name as row 3 once normalized: warned
    rows[BATCH + 7] = "另一家公司,Potential,+86 21 5555 1234"  # the existing customer's phone: warned
    text = "Customer name,Customer type,Phone\n" + "\n".join(rows) + "\n"
    result = import_csv(crm.as_("manager"), "customer", text.encode())
    assert result.ok and result.created == len(rows), result.problems[:3]
    warned = {line: message.text("en") for line, message in result.warnings}
    assert sorted(warned) == [12, BATCH + 9]
    assert "批量导入00003号有限公司" in warned[12] and "已有电话公司" in warned[BATCH + 9]
    last = crm.find("customer", f"name eq 批量导入{BATCH * 2 + 499:05d}号有限公司")[0]
    assert last["mnemonic"] and last["name_key"] and last["code"].startswith("KH") and last["owner"] == crm.id("manager")

    # Problems in different batches are all listed, and nothing is imported.
    bad = [f"再次导入{n:05d}号公司,Potential" for n in range(BATCH + 200)]
    bad[5] = "再次导入坏行公司,Nonsense"
    bad[BATCH + 100] = ",Potential"
    refused = import_csv(crm.as_("manager"), "customer", ("Customer name,Customer type\n" + "\n".join(bad)).encode())
    assert [p.line for p in refused.problems] == [7, BATCH + 102] and refused.created == 0
    assert not crm.find("customer", "name eq 再次导入00000号公司")
