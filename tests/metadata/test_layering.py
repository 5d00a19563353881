"""Layering: a pack adds to the packs it depends on; the administrator's overlay comes last."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from engine.metadata import MetadataError, Registry, load_registry, validate

FIXTURES = Path(__file__).parent.parent / "fixtures" / "packs"
PACKS = [FIXTURES / "layer_base", FIXTURES / "layer_ext"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return load_registry(PACKS)


def test_base_alone(registry: Registry) -> None:
    base = load_registry(PACKS[:1])
    company = base.entity("company")
    assert not company.has("tender_no")
    assert [s.key for s in company.field("stage").stages] == ["lead", "proposal", "won"]
    assert "site" not in base.entities
    assert [p.name for p in base.packs] == ["layer_base"]


def test_packs_in_dependency_order_whatever_the_given_order() -> None:
    registry = load_registry(list(reversed(PACKS)))
    assert [p.name for p in registry.packs] == ["layer_base", "layer_ext"]
    assert registry.entity("company").has("tender_no")


def test_extend_adds_fields_after_the_base_ones(registry: Registry) -> None:
    company = registry.entity("company")
    assert [f.name for f in company.user_fields] == ["name", "segment", "revenue", "stage", "tender_no", "deadline"]
    assert company.field("tender_no").options["max_length"] == 30
    assert company.field("tender_no").source.endswith("layer_ext/entities/company.yaml")
    assert company.field("name").source.endswith("layer_base/entities/company.yaml")
    assert company.pack == "layer_base"
    assert company.has("owner") and company.field("owner").system  # system fields stay


def test_extend_changes_an_existing_field(registry: Registry) -> None:
    revenue = registry.entity("company").field("revenue")
    assert revenue.label == {"en": "Annual revenue", "zh": "年营业额"}
    assert revenue.required
    assert revenue.type == "money"  # the type itself is not changeable


def test_stages_inserted_after_the_named_stage(registry: Registry) -> None:
    stage = registry.entity("company").field("stage")
    assert [s.key for s in stage.stages] == ["lead", "tender", "proposal", "won", "lost"]
    tender = stage.stage("tender")
    assert tender is not None and tender.probability == 40
    lost = stage.stage("lost")
    assert lost is not None and lost.outcome == "lost"


def test_form_sections_appended(registry: Registry) -> None:
    form = registry.entity("company").form
    assert [s.label["en"] for s in form] == ["Basics", "Tender"]
    assert form[1].fields == ("tender_no", "deadline") and form[1].columns == 1
    assert registry.entity("company").detail == form  # detail defaults to form


def test_list_columns_filters_views_appended(registry: Registry) -> None:
    lst = registry.entity("company").list
    assert lst.columns == ("name", "segment", "stage", "deadline")
    assert lst.filters == ("segment", "deadline")
    assert lst.sort == ("name",)  # kept: the extension gives no sort
    assert [v.key for v in lst.views] == ["closing"]
    assert lst.views[0].filter == ("deadline eq next_n_days:14",)


def test_search_appended(registry: Registry) -> None:
    assert registry.entity("company").search == ("name", "tender_no")


def test_related_tabs_appended(registry: Registry) -> None:
    related = registry.entity("company").related
    assert [(r.entity, r.via) for r in related] == [("contact", "company"), ("site", "company")]
    assert related[1].columns == ("name", "city")


def test_picklist_extension_appends_options(registry: Registry) -> None:
    options = registry.picklists["segment"].options
    assert [o.key for o in options] == ["smb", "enterprise", "government"]
    assert registry.entity("company").field("segment").picklist == registry.picklists["segment"]


def test_role_extension_merges_permissions(registry: Registry) -> None:
    seller = registry.role("seller")
    assert seller.scope("company", "read") == "own"      # from the base
    assert seller.scope("company", "delete") == "own"    # added by the extension
    assert seller.scope("site", "create") == "all"       # a new entity of the extension
    assert seller.scope("site", "delete") == "none"      # missing action = none
    assert seller.fields == {"company.revenue": "read_only", "company.tender_no": "hidden"}


def test_menu_groups_merge_by_key(registry: Registry) -> None:
    assert [(m.key, m.entities) for m in registry.menu] == [("sales", ("company", "contact", "site"))]
    assert registry.menu[0].label["en"] == "Sales"  # the extension's group has no label of its own
    assert registry.settings["max_companies"].default == 100


def test_registry_is_immutable(registry: Registry) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        registry.entities = {}  # type: ignore[misc]
    with pytest.raises(TypeError):
        registry.entities["site"] = registry.entity("company")  # type: ignore[index]
    company = registry.entity("company")
    with pytest.raises(dataclasses.FrozenInstanceError):
        company.title = "tender_no"  # type: ignore[misc]
    with pytest.raises(TypeError):
        company.fields["name"] = company.field("segment")  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        company.field("name").required = False  # type: ignore[misc]
    with pytest.raises(TypeError):
        company.field("tender_no").options["max_length"] = 5  # type: ignore[index]
    with pytest.raises(TypeError):
        registry.role("seller").permissions["company"]["read"] = "all"  # type: ignore[index]
    assert isinstance(company.form, tuple) and isinstance(company.list.columns, tuple)


def test_loading_twice_gives_equal_independent_registries(registry: Registry) -> None:
    again = load_registry(PACKS)
    assert again.entity("company") == registry.entity("company")
    # The extension's stage insertions did not leak into the base pack's documents.
    assert [s.key for s in load_registry(PACKS[:1]).entity("company").field("stage").stages] == ["lead", "proposal", "won"]


# -- the administrator's overlay ------------------------------------------------------------------

def custom_field(**fields: Any) -> dict[str, Any]:
    return {"kind": "entity", "data": {"extend": "company", "fields": fields}}


VIP = {"type": "boolean", "label": {"en": "VIP", "zh": "重要客户"}}


def test_overlay_applies_last() -> None:
    overlay = [
        {"kind": "entity", "data": {
            "extend": "company",
            "fields": {
                "vip": VIP,
                "stage": {"extend": True, "stages": [{"key": "review", "label": {"en": "Review", "zh": "评审"}, "after": "tender"}]},
                "tender_no": {"extend": True, "label": {"en": "Bid number", "zh": "投标号"}},
            },
            "layouts": {"form": [{"section": {"en": "Custom", "zh": "自定义"}, "fields": ["vip", "deadline"]}],
                        "list": {"columns": ["vip"]}},
        }},
        {"kind": "picklist", "data": {"extend": "segment", "options": [{"key": "ngo", "label": {"en": "NGO", "zh": "非营利"}}]}},
        {"kind": "role", "data": {"role": "auditor", "label": {"en": "Auditor", "zh": "审计"}, "permissions": {"*": {"read": "all"}}}},
        {"kind": "role", "data": {"extend": "seller", "permissions": {"site": {"delete": "own"}}}},
    ]
    registry = load_registry(PACKS, overlay=overlay)
    company = registry.entity("company")
    assert [p.name for p in registry.packs] == ["layer_base", "layer_ext", "custom"]
    assert company.field("vip").type == "boolean"
    assert [f.name for f in company.user_fields][-1] == "vip"
    # The overlay sees the extension pack's stages and fields: it sits above every pack.
    assert [s.key for s in company.field("stage").stages] == ["lead", "tender", "review", "proposal", "won", "lost"]
    assert company.field("tender_no").label["en"] == "Bid number"
    assert company.form[-1].fields == ("vip", "deadline")
    assert company.list.columns[-1] == "vip"
    assert [o.key for o in registry.picklists["segment"].options][-1] == "ngo"
    assert registry.role("auditor").scope("site", "read") == "all"
    assert registry.role("seller").scope("site", "delete") == "own"


def test_overlay_errors_are_reported() -> None:
    overlay = [
        {"kind": "entity", "ref": "custom:company", "data": {"extend": "company", "fields": {
            "bad": {"type": "monee", "label": {"en": "Bad", "zh": "坏"}},
            "name": {"type": "string", "label": {"en": "Name", "zh": "名称"}},
        }}},
        {"kind": "entity", "data": {"extend": "company", "layouts": {"form": [
            {"section": {"en": "X", "zh": "X"}, "fields": ["nonexistent"]}]}}},
        {"kind": "picklist", "ref": "custom:picklist:colour", "data": {"extend": "colour", "options": []}},
    ]
    errors = validate(PACKS, overlay=overlay)
    shown = [str(e) for e in errors]
    assert "custom:company:1: fields.bad.type: 'monee' is not a field type" in "\n".join(shown)
    assert any(s.startswith("custom:company:1: fields.name: field 'company.name' is already defined in")
               and "layer_base/entities/company.yaml:6" in s for s in shown)
    assert any(s.startswith("customization:entity:1: layouts.form[0].fields[0]: unknown field 'nonexistent'") for s in shown)
    assert any(s.startswith("custom:picklist:colour:1: extend: extends pick-list 'colour'") for s in shown)
    assert len(errors) == 4
    with pytest.raises(MetadataError):
        load_registry(PACKS, overlay=overlay)


def test_overlay_of_nothing_changes_nothing(registry: Registry) -> None:
    assert load_registry(PACKS, overlay=[]) == registry


def test_a_pack_may_extend_its_own_entity_in_another_file(tmp_path: Path) -> None:
    pack = tmp_path / "own"
    (pack / "entities").mkdir(parents=True)
    (pack / "pack.yaml").write_text("name: own\nversion: 1.0.0\nlabel: {en: Own, zh: 自有}\n", encoding="utf-8")
    # 'a_more' sorts before 'z_thing': definitions are merged before extensions regardless of file names.
    (pack / "entities" / "a_more.yaml").write_text(
        "extend: thing\nfields:\n  size: {type: integer, label: {en: Size, zh: 大小}}\n", encoding="utf-8")
    (pack / "entities" / "z_thing.yaml").write_text(
        "entity: thing\nlabel: {en: Thing, zh: 物}\ntitle: name\nfields:\n  name: {type: string, label: {en: N, zh: 名}}\n",
        encoding="utf-8")
    registry = load_registry([pack])
    assert [f.name for f in registry.entity("thing").user_fields] == ["name", "size"]


def test_stage_extension_errors(tmp_path: Path) -> None:
    pack = tmp_path / "stages"
    (pack / "entities").mkdir(parents=True)
    (pack / "pack.yaml").write_text("name: stages\nversion: 1.0.0\nlabel: {en: S, zh: S}\ndepends: [layer_base]\n", encoding="utf-8")
    (pack / "entities" / "company.yaml").write_text(
        "extend: company\nfields:\n  stage:\n    extend: true\n    stages:\n"
        "      - {key: lead, label: {en: L, zh: L}}\n"
        "      - {key: late, label: {en: L, zh: L}, after: nowhere}\n"
        "  name:\n    extend: true\n    stages: [{key: a, label: {en: A, zh: A}}]\n"
        "  created_at: {extend: true, label: {en: C, zh: C}}\n", encoding="utf-8")
    errors = [str(e) for e in validate([FIXTURES / "layer_base", pack])]
    assert any(":6: fields.stage.stages[0].key: stage 'lead' already exists" in e for e in errors)
    assert any(":7: fields.stage.stages[1].after: unknown stage 'nowhere'" in e for e in errors)
    assert any(":10: fields.name.stages: 'name' is not a stage field" in e for e in errors)
    assert any(":11: fields.created_at: 'created_at' is a system field and cannot be changed" in e for e in errors)
    assert len(errors) == 4


def test_picklist_extensions_rename_deactivate_and_reorder_options(tmp_path: Path) -> None:
    base = tmp_path / "base"
    (base / "picklists").mkdir(parents=True)
    (base / "pack.yaml").write_text("name: base\nversion: 1.0.0\nlabel: {en: B, zh: B}\ndepends: []\n", encoding="utf-8")
    (base / "picklists" / "grade.yaml").write_text(
        "picklist: grade\nlabel: {en: Grade, zh: 等级}\noptions:\n"
        "  - {key: a, label: {en: A, zh: 甲}}\n  - {key: b, label: {en: B, zh: 乙}}\n  - {key: c, label: {en: C, zh: 丙}}\n",
        encoding="utf-8")
    ext = tmp_path / "ext"
    (ext / "picklists").mkdir(parents=True)
    (ext / "pack.yaml").write_text("name: ext\nversion: 1.0.0\nlabel: {en: E, zh: E}\ndepends: [base]\n", encoding="utf-8")
    (ext / "picklists" / "grade.yaml").write_text(
        "extend: grade\noptions:\n  - {key: b, extend: true, label: {en: Bee, zh: 乙级}}\n"
        "  - {key: c, extend: true, active: false}\n  - {key: d, label: {en: D, zh: 丁}}\norder: [d, b]\n",
        encoding="utf-8")
    grade = load_registry([base, ext]).picklists["grade"]
    assert [o.key for o in grade.options] == ["d", "b", "a", "c"]
    assert grade.option("b").label == {"en": "Bee", "zh": "乙级"}  # type: ignore[union-attr]
    assert grade.option("c").active is False  # type: ignore[union-attr]
    (ext / "picklists" / "grade.yaml").write_text(
        "extend: grade\noptions:\n  - {key: z, extend: true, active: false}\norder: [y]\n", encoding="utf-8")
    messages = [e.message for e in validate([base, ext])]
    assert any("no option 'z' to change" in m for m in messages) and any("no option 'y'" in m for m in messages)
