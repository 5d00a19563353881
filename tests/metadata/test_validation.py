"""Broken packs: every problem is reported as FILE:LINE: PATH: message, all of them in one run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.metadata import MetadataError, PackError, load_registry, validate

FIXTURES = Path(__file__).parent.parent / "fixtures" / "packs"
ROOT = Path(__file__).parent.parent.parent
CRM = Path(sys.executable).parent / "crm"


def errors_of(*names: str) -> list[PackError]:
    return validate([FIXTURES / name for name in names])


def find(errors: list[PackError], suffix: str, line: int, path: str, fragment: str) -> PackError:
    """The one error in `suffix` at `line` and `path` whose message contains `fragment`."""
    hits = [e for e in errors if e.file.endswith(suffix) and e.line == line and e.path == path and fragment in e.message]
    assert len(hits) == 1, "expected one error\n  " + f"{suffix}:{line}: {path}: ...{fragment}...\ngot:\n" + "\n".join(map(str, errors))
    error = hits[0]
    assert str(error) == f"{error.file}:{line}: {path}: {error.message}" if path else f"{error.file}:{line}: {error.message}"
    return error


def test_unknown_field_type_lists_the_types() -> None:
    errors = errors_of("broken_field_type")
    assert len(errors) == 1
    error = find(errors, "broken_field_type/entities/item.yaml", 6, "fields.price.type", "'monee' is not a field type")
    for kind in ("money", "string", "choice", "reference", "computed"):
        assert kind in error.message


def test_yaml_syntax_error_is_located_without_a_traceback() -> None:
    errors = errors_of("broken_yaml")
    assert len(errors) == 1
    error = find(errors, "broken_yaml/entities/item.yaml", 6, "", "YAML syntax error")
    assert "starts on line 5" in error.message  # where the unclosed { began
    assert "Traceback" not in str(error)


def test_missing_required_keys() -> None:
    errors = errors_of("broken_missing_key")
    find(errors, "broken_missing_key/entities/item.yaml", 1, "", "'title' is a required property")
    find(errors, "broken_missing_key/entities/item.yaml", 5, "fields.maker", "'entity' is a required property")
    assert len(errors) == 2


def test_unknown_key_lists_the_allowed_keys() -> None:
    errors = errors_of("broken_unknown_key")
    assert len(errors) == 1
    error = find(errors, "broken_unknown_key/entities/item.yaml", 5, "fields.name", "unknown key 'maxlength'")
    assert "max_length" in error.message  # the key the author meant is among the allowed ones


def test_reference_to_unknown_entity() -> None:
    errors = errors_of("broken_reference")
    assert len(errors) == 1
    find(errors, "broken_reference/entities/item.yaml", 6, "fields.maker.entity", "unknown entity 'manufacturer'")


def test_layout_names_unknown_field() -> None:
    errors = errors_of("broken_layout_field")
    assert len(errors) == 1
    find(errors, "broken_layout_field/entities/item.yaml", 10, "layouts.form[0].fields[1]", "unknown field 'prise' of 'item'")


def test_unknown_picklist() -> None:
    errors = errors_of("broken_picklist")
    assert len(errors) == 1
    find(errors, "broken_picklist/entities/item.yaml", 6, "fields.colour.picklist", "unknown pick-list 'colours'")


def test_stage_requires_unknown_field() -> None:
    errors = errors_of("broken_stage_requires")
    assert len(errors) == 1
    find(errors, "broken_stage_requires/entities/item.yaml", 12, "fields.stage.stages[1].requires[1]", "unknown field 'quote_date'")


def test_dependency_cycle() -> None:
    errors = errors_of("broken_cycle_a", "broken_cycle_b")
    assert len(errors) == 1
    error = find(errors, "pack.yaml", 4, "depends", "dependency cycle")
    assert "broken_cycle_a" in error.message and "broken_cycle_b" in error.message


def test_depends_on_a_pack_that_is_not_there() -> None:
    errors = errors_of("broken_missing_dep")
    assert len(errors) == 1
    find(errors, "broken_missing_dep/pack.yaml", 4, "depends[0]", "'no_such_pack', which is not active")


def test_redefining_an_entity_without_extend_names_both_files() -> None:
    errors = errors_of("layer_base", "broken_redefine")
    assert len(errors) == 1
    error = find(errors, "broken_redefine/entities/company.yaml", 1, "entity", "entity 'company' is already defined in")
    assert "layer_base/entities/company.yaml:1" in error.message
    assert "extend: company" in error.message


def test_two_packs_adding_the_same_field_names_both_files() -> None:
    errors = errors_of("layer_base", "broken_clash_a", "broken_clash_b")
    assert len(errors) == 1
    error = find(errors, "broken_clash_b/entities/company.yaml", 3, "fields.region",
                 "packs 'broken_clash_a' and 'broken_clash_b' both add field 'company.region'")
    assert "broken_clash_a/entities/company.yaml:3" in error.message
    assert "neither depends on the other" in error.message


def test_extending_an_entity_nobody_defines() -> None:
    errors = errors_of("broken_extend_unknown")
    assert len(errors) == 1
    find(errors, "broken_extend_unknown/entities/warehouse.yaml", 1, "extend", "extends entity 'warehouse', which no pack it depends on defines")


def test_extending_an_entity_of_a_pack_not_depended_on() -> None:
    errors = errors_of("layer_base", "broken_extend_undeclared")
    assert len(errors) == 1
    find(errors, "broken_extend_undeclared/entities/company.yaml", 1, "extend",
         "it belongs to pack 'layer_base', which 'broken_extend_undeclared' does not depend on")


def test_layout_naming_a_field_of_a_pack_not_depended_on() -> None:
    # layer_ext adds company.tender_no; broken_invisible_field depends on layer_base only.
    errors = errors_of("layer_base", "layer_ext", "broken_invisible_field")
    assert len(errors) == 1
    find(errors, "broken_invisible_field/entities/company.yaml", 7, "layouts.form[0].fields[1]",
         "field 'tender_no': it belongs to pack 'layer_ext', which 'broken_invisible_field' does not depend on")


def test_bad_view_filters() -> None:
    errors = errors_of("broken_view_filter")
    suffix = "broken_view_filter/entities/item.yaml"
    find(errors, suffix, 12, "layouts.list.views[0].filter[0]", "unknown operator 'equals'")
    find(errors, suffix, 15, "layouts.list.views[1].filter[0]", "'gt' does not apply to a boolean field")
    find(errors, suffix, 15, "layouts.list.views[1].filter[1]", "unknown field 'weight'")
    find(errors, suffix, 15, "layouts.list.views[1].filter[2]", "operator 'is_empty' takes no value")
    assert len(errors) == 4


def test_bad_computed_expressions() -> None:
    errors = errors_of("broken_computed")
    suffix = "broken_computed/entities/item.yaml"
    find(errors, suffix, 7, "fields.hack.expression", "unknown function")      # __import__('os').system(...)
    find(errors, suffix, 8, "fields.typo.expression", "unknown field 'quantity'")
    find(errors, suffix, 9, "fields.attr.expression", "'Attribute' is not allowed")
    find(errors, suffix, 10, "fields.words.expression", "only numbers are allowed")
    find(errors, suffix, 11, "fields.fn.expression", "unknown function")        # (lambda: 1)()
    find(errors, suffix, 12, "fields.power.expression", "only + - * / are allowed")
    find(errors, suffix, 13, "fields.broken.expression", "syntax error in expression")
    assert len(errors) == 7


def test_bad_autonumber_patterns() -> None:
    errors = errors_of("broken_autonumber")
    suffix = "broken_autonumber/entities/item.yaml"
    find(errors, suffix, 6, "fields.code.pattern", "exactly one {seq}")
    find(errors, suffix, 7, "fields.code2.pattern", "unknown token")
    find(errors, suffix, 8, "fields.code3.pattern", "exactly one {seq}")
    assert len(errors) == 3


def test_all_errors_of_all_files_in_one_run() -> None:
    errors = errors_of("broken_many")
    pack = "broken_many/"
    find(errors, pack + "pack.yaml", 2, "version", "not a version MAJOR.MINOR.PATCH")
    find(errors, pack + "pack.yaml", 7, "menu[0].entities[1]", "unknown entity 'invoice'")
    find(errors, pack + "entities/order.yaml", 6, "fields.total.type", "'monee' is not a field type")
    find(errors, pack + "entities/order.yaml", 10, "layouts.list.columns[1]", "unknown field 'totl'")
    find(errors, pack + "entities/shipment.yaml", 6, "", "YAML syntax error")
    find(errors, pack + "entities/customer.yaml", 2, "label", "'zh' is a required property")
    find(errors, pack + "entities/customer.yaml", 6, "fields.order.entity", "unknown entity 'orders'")
    find(errors, pack + "picklists/order_status.yaml", 5, "options[1].key", "option 'open' is already in pick-list")
    find(errors, pack + "roles/clerk.yaml", 4, "permissions.order.read", "'everyone' is not one of none, own")
    find(errors, pack + "roles/clerk.yaml", 5, "permissions.refund", "unknown entity 'refund'")
    assert len(errors) == 10


def test_load_registry_raises_with_every_error() -> None:
    with pytest.raises(MetadataError) as info:
        load_registry([FIXTURES / "broken_many"])
    assert len(info.value.errors) == 10
    assert "10 error(s)" in str(info.value)


def test_wrong_shapes_are_errors_not_crashes(tmp_path: Path) -> None:
    pack = tmp_path / "shapes"
    (pack / "entities").mkdir(parents=True)
    (pack / "pack.yaml").write_text("name: shapes\nversion: 1.0.0\nlabel: {en: S, zh: S}\n"
                                    "depends: base\nsettings: [a]\nmenu: {a: b}\n", encoding="utf-8")
    (pack / "entities" / "thing.yaml").write_text(
        "entity: thing\nlabel: {en: T, zh: T}\ntitle: name\nsearch: name\n"
        "fields:\n  name: {type: string, label: {en: N, zh: N}}\n  name: {type: text, label: {en: N, zh: N}}\n"
        "layouts:\n  form: {section: x}\n  list: [name]\n  related: [{entity: [a], via: b}]\n  board: stage\n",
        encoding="utf-8")
    (pack / "entities" / "other.yaml").write_text(
        "entity: crm_other\nextend: thing\nlabel: {en: O, zh: O}\ntitle: name\nfields: [name]\n", encoding="utf-8")
    errors = validate([pack])
    shown = "\n".join(map(str, errors))
    find(errors, "pack.yaml", 4, "depends", "expected a list, not 'base'")
    find(errors, "pack.yaml", 5, "settings", "expected a mapping")
    find(errors, "pack.yaml", 6, "menu", "expected a list, not a mapping")
    find(errors, "thing.yaml", 4, "search", "expected a list")
    find(errors, "thing.yaml", 7, "fields.name", "duplicate key: it is also on line 6")
    find(errors, "thing.yaml", 9, "layouts.form", "expected a list")
    find(errors, "thing.yaml", 12, "layouts.board", "expected a mapping")
    find(errors, "other.yaml", 1, "", "with 'extend:' adds to an existing one; remove 'entity', 'title'")
    find(errors, "other.yaml", 5, "fields", "expected a mapping (key: value pairs), not a list")
    assert "Traceback" not in shown and "{'" not in shown  # no raw Python reprs of whole documents


def test_reserved_entity_prefix(tmp_path: Path) -> None:
    pack = tmp_path / "reserved"
    (pack / "entities").mkdir(parents=True)
    (pack / "pack.yaml").write_text("name: reserved\nversion: 1.0.0\nlabel: {en: R, zh: R}\n", encoding="utf-8")
    (pack / "entities" / "x.yaml").write_text(
        "entity: x_thing\nlabel: {en: T, zh: T}\ntitle: name\nfields:\n  name: {type: string, label: {en: N, zh: N}}\n",
        encoding="utf-8")
    find(validate([pack]), "x.yaml", 1, "entity", "not starting with crm_ or x_")


def test_a_folder_without_pack_yaml() -> None:
    errors = validate([FIXTURES])
    assert len(errors) == 1 and "pack.yaml is missing" in errors[0].message


# -- the CLI --------------------------------------------------------------------------------------

def run_validate(*folders: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CRM), "pack", "validate", *map(str, folders)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_reports_errors_and_exits_1() -> None:
    result = run_validate(FIXTURES / "broken_many")
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 10
    assert any(line.endswith("fields.total.type: 'monee' is not a field type (attachment, autonumber, boolean, "
                             "choice, computed, date, datetime, decimal, email, integer, money, multi_choice, "
                             "percent, phone, reference, rollup, stage, string, text, url, user)")
               and "broken_many/entities/order.yaml:6:" in line for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_yaml_error_has_no_traceback() -> None:
    result = run_validate(FIXTURES / "broken_yaml")
    assert result.returncode == 1
    assert "broken_yaml/entities/item.yaml:6: YAML syntax error" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_cli_ok_summary() -> None:
    result = run_validate(FIXTURES / "sales_basic")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("OK: 1 pack(s), 3 entities")


def test_cli_layered_packs() -> None:
    result = run_validate(FIXTURES / "layer_base", FIXTURES / "layer_ext")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK: 2 pack(s), 3 entities")


def test_home_cards_name_an_entity_and_one_of_its_views(tmp_path: Path) -> None:
    pack = tmp_path / "homely"
    (pack / "entities").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        "name: homely\nversion: 1.0.0\nlabel: {en: H, zh: H}\ndepends: []\nhome:\n"
        "  - {entity: task, view: mine, mine: true}\n"
        "  - {entity: task, view: nope}\n"
        "  - {entity: ghost, view: mine}\n", encoding="utf-8")
    (pack / "entities" / "task.yaml").write_text(
        "entity: task\nlabel: {en: Task, zh: 任务}\ntitle: name\nfields:\n  name: {type: string, label: {en: N, zh: N}}\n"
        "layouts:\n  list:\n    columns: [name]\n    views:\n      - {key: mine, label: {en: Mine, zh: 我的}, filter: ['owner eq $me']}\n",
        encoding="utf-8")
    errors = validate([pack])
    find(errors, "homely/pack.yaml", 7, "home[1].view", "entity 'task' has no list view 'nope'")
    find(errors, "homely/pack.yaml", 8, "home[2].entity", "unknown entity 'ghost'")
    assert len(errors) == 2
    (pack / "pack.yaml").write_text(
        "name: homely\nversion: 1.0.0\nlabel: {en: H, zh: H}\ndepends: []\nhome:\n"
        "  - {entity: task, view: mine, mine: true, label: {en: My tasks, zh: 我的任务}}\n", encoding="utf-8")
    registry = load_registry([pack])
    assert registry.home[0].entity == "task" and registry.home[0].mine and registry.home[0].label["zh"] == "我的任务"


def test_organization_fields_must_form_a_tree_and_membership(tmp_path: Path) -> None:
    pack = tmp_path / "org"
    (pack / "entities").mkdir(parents=True)
    (pack / "pack.yaml").write_text(
        "name: org\nversion: 1.0.0\nlabel: {en: O, zh: O}\ndepends: []\n"
        "organization: {unit: team, parent: name, member: person, member_user: team, member_unit: team}\n",
        encoding="utf-8")
    (pack / "entities" / "team.yaml").write_text(
        "entity: team\nlabel: {en: Team, zh: 团队}\ntitle: name\nfields:\n  name: {type: string, label: {en: N, zh: N}}\n",
        encoding="utf-8")
    (pack / "entities" / "person.yaml").write_text(
        "entity: person\nlabel: {en: Person, zh: 人员}\ntitle: name\nfields:\n  name: {type: string, label: {en: N, zh: N}}\n"
        "  team: {type: reference, entity: team, label: {en: T, zh: T}}\n", encoding="utf-8")
    errors = validate([pack])
    find(errors, "org/pack.yaml", 5, "organization.parent", "'team.name' must be a reference to team")
    find(errors, "org/pack.yaml", 5, "organization.member_user", "'person.team' must be a user field")
    assert len(errors) == 2
