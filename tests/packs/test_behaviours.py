"""The standard CRM pack's behaviours through the runtime (packs/standard_crm/hooks.py): mnemonic
codes, follow-ups, lead conversion, the customer pool, duplicate check and merge, the list views,
birthdays, quote approval and orders, sharing and transfer, and who may do what."""

from __future__ import annotations

import pytest

from engine.runtime.errors import ValidationFailed
from engine.runtime.query import ListQuery
from tests.packs.conftest import CRM, STANDARD


def hooks_module():  # type: ignore[no-untyped-def]
    """The pack's hooks.py as a module (its pure helpers are part of what we test)."""
    from engine.runtime.hooks import _import_file

    return _import_file("crm_pack_hooks.standard_crm", str(STANDARD / "hooks.py"))


# -- 1. mnemonic ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "code"), [
    ("重庆长安汽车股份有限公司", "CQCAQCGFYXGS"),
    ("ABC科技（上海）有限公司", "ABCKJSHYXGS"),
    ("中国银行", "ZGYH"),
    ("Ｈｅｌｌｏ 世界 2024", "HELLOSJ2024"),
    ("", None),
])
def test_mnemonic_is_the_pinyin_initials(name: str, code: str | None) -> None:
    assert hooks_module().mnemonic(name) == code


def test_mnemonic_is_maintained_and_searchable(crm: CRM) -> None:
    sales1 = crm.as_("sales1")
    created = sales1.create("customer", {"name": "上海华信电子有限公司"})
    assert created["mnemonic"] == "SHHXDZYXGS"
    found = sales1.query("customer", ListQuery(search="shhx"))
    assert [r["id"] for r in found.rows] == [created["id"]]
    renamed = sales1.update("customer", created["id"], {"name": "苏州博远科技"}, created["version"])
    assert renamed["mnemonic"] == "SZBYKJ"
    assert not sales1.query("customer", ListQuery(search="SHHX")).rows
    with pytest.raises(ValidationFailed) as caught:  # read-only: only the hook sets it
        sales1.update("customer", created["id"], {"mnemonic": "XX"}, renamed["version"])
    assert "mnemonic" in caught.value.errors
