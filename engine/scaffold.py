"""`crm pack new NAME`: a working pack folder for a partner to start from.

It holds one example entity (with a pick-list, a list view, a highlight and a tree), an `extend:`
of an entity of the pack it builds on (a field, a form section and a related tab), a role and an
extension of a base role, locale files, a hooks.py with a hook that uses them, demo data and a
test. The result validates and its test passes as generated; every file says what to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

from engine.metadata import load_registry
from engine.metadata.registry import Registry

NAME = re.compile(r"^[a-z][a-z0-9_]{1,30}$")
BASE_ROLE_PREFERENCE = ("salesperson", "sales_rep", "rep")


class ScaffoldError(Exception):
    pass


@dataclass(frozen=True)
class Base:
    """What the new pack builds on: the pack, the entity it extends and the role it extends."""

    pack: str
    entity: str
    entity_label_en: str
    entity_label_zh: str
    title: str  # the extended entity's title field, which the demo and test fill in
    role: str | None


def base_of(registry: Registry, pack: str) -> Base:
    """The entity and role of `pack` that the examples extend: `customer` and `salesperson` in the
    standard CRM; otherwise the first entity the pack defines and its first role but admin."""
    own = [e for e in registry.entities.values() if e.pack == pack]
    if not own:
        raise ScaffoldError(f"pack '{pack}' defines no entity to extend")
    entity = next((e for e in own if e.key == "customer"), own[0])
    roles = [r for r in registry.roles if r != "admin"]
    role = next((r for r in BASE_ROLE_PREFERENCE if r in roles), roles[0] if roles else None)
    return Base(pack, entity.key, entity.label["en"], entity.label["zh"], entity.title, role)


def create_pack(name: str, folder: Path, base_dirs: list[Path] | None = None) -> list[Path]:
    """Write the pack `name` into `folder` (which must not exist or be empty); `base_dirs` are the
    pack it extends and that pack's dependencies, the base pack last. Returns the files written."""
    if not NAME.match(name):
        raise ScaffoldError(f"'{name}' is not a pack name: use 2-31 lower-case letters, digits and '_', "
                            "starting with a letter")
    if folder.exists() and any(folder.iterdir()):
        raise ScaffoldError(f"{folder} exists and is not empty; choose another folder")
    base = None
    if base_dirs:
        registry = load_registry(base_dirs)
        if any(p.name == name for p in registry.packs):
            raise ScaffoldError(f"'{name}' is the name of a pack it depends on; choose another name")
        base = base_of(registry, registry.packs[-1].name)
    values = {"name": name, "entity": f"{name}_item", "status": f"{name}_status", "title": name.replace("_", " ").title(),
              "depends": f"[{base.pack}]" if base else "[]"}
    files = dict(COMMON)
    if base:
        values.update(base=base.pack, target=base.entity, target_en=base.entity_label_en, target_zh=base.entity_label_zh,
                      target_title=base.title, role=base.role or "")
        files.update(EXTENDING)
        files["entities/$entity.yaml"] = ENTITY.replace("$link_field", LINK_FIELD).replace("$link_column", ", $target")
        if not base.role:
            del files["roles/$role.yaml"]
    else:
        files["entities/$entity.yaml"] = ENTITY.replace("$link_field", "").replace("$link_column", "")
    written = []
    for template_path, template in files.items():
        path = folder / Template(template_path).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values), encoding="utf-8")
        written.append(path)
    return written


# -- the files ------------------------------------------------------------------------------------
# Templates use $name placeholders (string.Template), so YAML's braces need no escaping.

PACK_YAML = """\
# The pack's identity, what it builds on, and where its entities appear in the menu.
name: $name
version: 0.1.0
label: {en: $title, zh: $title}
description: {en: "TODO: what this pack adds, in one sentence", zh: "TODO：用一句话说明本包增加了什么"}
depends: $depends
menu:
  - group: ${name}
    label: {en: $title, zh: $title}
    entities: [$entity]
settings:
  ${name}_due_days:
    type: integer
    default: 7
    label: {en: Days until a new item is due, zh: 新条目默认到期天数}
    help: {en: "hooks.py sets a new item's due date this many days ahead when none is given.", zh: "新建条目未填写到期日时，hooks.py 按此天数自动设置。"}
"""

ENTITY = """\
# An example entity: rename it, change its fields, keep the shape. docs/packs.md lists every key.
entity: $entity
label: {en: Example item, zh: 示例条目}
title: name
search: [name, code]
fields:
  name: {type: string, required: true, max_length: 200, index: true, label: {en: Name, zh: 名称}}
  code: {type: autonumber, pattern: "EX{YYYY}-{seq:4}", unique: true, label: {en: Number, zh: 编号}}
$link_field  status: {type: choice, picklist: $status, default: open, required: true, index: true, label: {en: Status, zh: 状态}}
  amount: {type: money, currency: CNY, label: {en: Amount, zh: 金额}}
  due_on: {type: date, index: true, label: {en: Due on, zh: 到期日}}
  parent_item: {type: reference, entity: $entity, on_delete: set_null, label: {en: Parent item, zh: 上级条目}}
  remarks: {type: text, label: {en: Remarks, zh: 备注}}
layouts:
  form:
    - section: {en: Item, zh: 条目信息}
      columns: 2
      fields: [name, code$link_column, status, amount, due_on, parent_item]
    - section: {en: Remarks, zh: 备注}
      fields: [remarks]
  list:
    columns: [name, code$link_column, status, amount, due_on, owner]
    sort: [due_on]
    filters: [status, due_on, owner]
    # Rows that match every filter stand out: here, open items past their due date.
    highlight: ["due_on lt today", "status eq open"]
    views:
      - key: mine
        label: {en: My open items, zh: 我的未完成条目}
        filter: ["owner eq $$me", "status eq open"]
        sort: [due_on]
  related:
    # Items below this one, drawn as a tree along parent_item.
    - {entity: $entity, via: parent_item, label: {en: Sub-items, zh: 下级条目}, columns: [name, status, due_on], tree: parent_item}
"""

LINK_FIELD = """\
  $target: {type: reference, entity: $target, on_delete: restrict, index: true, label: {en: $target_en, zh: $target_zh}}
"""

PICKLIST = """\
picklist: $status
label: {en: Item status, zh: 条目状态}
options:
  - {key: open, label: {en: Open, zh: 进行中}}
  - {key: done, label: {en: Done, zh: 已完成}}
  - {key: cancelled, label: {en: Cancelled, zh: 已取消}}
"""

ROLE = """\
# A role of this pack. Scopes: none, own, department, subtree, all (docs/packs.md#roles).
role: ${name}_user
label: {en: $title user, zh: $title 用户}
permissions:
  $entity: {read: own, create: all, edit: own, delete: own, export: own}
"""

EXTEND_ROLE = """\
# Gives the base pack's role access to the new entity; grants merge action by action.
extend: $role
permissions:
  $entity: {read: own, create: all, edit: own, delete: own}
"""

EXTEND_ENTITY = """\
# Adds to the base pack's entity without copying it: a field, a form section, a related tab.
# Prefixing added fields with the pack's name keeps them from clashing with other packs.
extend: $target
fields:
  ${name}_note: {type: string, max_length: 200, label: {en: $title note, zh: $title 备注}}
layouts:
  form:
    - section: {en: $title, zh: $title}
      fields: [${name}_note]
  related:
    - {entity: $entity, via: $target, columns: [name, status, amount, due_on]}
"""

LOCALE_EN = """\
# Messages of this pack's hooks (ctx.message(key, **values)); {placeholders} are filled in.
${name}_due_in_past: "The due date {due} is in the past."
"""

LOCALE_ZH = """\
${name}_due_in_past: "到期日 {due} 已经过去。"
"""

HOOKS = '''\
"""Behaviour of the $name pack that metadata cannot declare (docs/plugins.md)."""

from __future__ import annotations

from datetime import timedelta

from engine.plugins import HookContext, hook


@hook("$entity", "before_save")
def default_due_date(ctx: HookContext) -> None:
    """A new item without a due date is due in `${name}_due_days` days; a due date in the past
    is refused for a new open item."""
    today = ctx.records.runtime.now().date()
    due = ctx.record.get("due_on")
    if ctx.is_new and due is None:
        ctx.record["due_on"] = today + timedelta(days=int(ctx.setting("${name}_due_days")))
    elif ctx.is_new and due is not None and due < today and ctx.record.get("status", "open") == "open":
        ctx.reject(ctx.message("${name}_due_in_past", due=due.isoformat()), field="due_on")
'''

DEMO = '''\
"""Demo data of the $name pack: `crm demo --pack $name` (after `crm pack install`)."""

from __future__ import annotations

from engine.demo import DemoContext


def generate(demo: DemoContext) -> None:
    user = demo.user("${name}_demo", "示例用户", ["${name}_user"], position="Example user")
    for i in range(5):
        demo.create("$entity", {
            "name": f"示例条目 {i + 1}", "owner": user, "amount": demo.rng.randint(1, 100) * 1000,$demo_link
        })
'''

TEST = '''\
"""Tests of the $name pack, run with `pytest $${PACK_FOLDER}/tests`: the pack with the packs it
depends on, migrated into a fresh SQLite database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from engine.config import load_config
from engine.metadata import load_registry, validate
from engine.metadata.packs import with_dependencies
from engine.runtime.db import make_engine
from engine.runtime.errors import RecordError
from engine.runtime.hooks import HookRegistry
from engine.runtime.service import Runtime

PACK = Path(__file__).resolve().parent.parent


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    folders = with_dependencies([PACK], list(load_config().pack_search))
    registry = load_registry(folders)
    rt = Runtime(registry, make_engine(f"sqlite:///{tmp_path / 'crm.sqlite3'}"),
                 hooks=HookRegistry.load(registry.packs, use_entry_points=False))
    rt.migrate()
    return rt


def test_the_pack_validates() -> None:
    assert validate(with_dependencies([PACK], list(load_config().pack_search))) == []


def test_a_new_item_gets_a_due_date_and_a_past_one_is_refused(runtime: Runtime) -> None:
    records = runtime.records()$test_setup
    item = records.create("$entity", {"name": "First"$test_link})
    today = runtime.now().date()
    assert item["due_on"] == today + timedelta(days=7)
    assert item["code"].startswith("EX")
    with pytest.raises(RecordError):
        records.create("$entity", {"name": "Late", "due_on": today - timedelta(days=1)$test_link})
'''

README = """\
# $title

A pack for the metadata-driven CRM. Made with `crm pack new $name`; edit every file to suit.

    crm pack validate $${THIS_FOLDER}        # check it (the packs it depends on are found)
    pytest $${THIS_FOLDER}/tests              # its tests
    crm pack install $${THIS_FOLDER}          # add it to a running CRM's database
    crm demo --pack $name                   # and its demo data

Files: pack.yaml (identity, menu, settings), entities/ (one entity or `extend:` per file),
picklists/, roles/, locales/ (messages of hooks.py), hooks.py (behaviour), demo.py (demo data),
tests/. The partner tutorial in docs/packs.md walks through each of them.
"""

COMMON = {
    "pack.yaml": PACK_YAML,
    "picklists/$status.yaml": PICKLIST,
    "roles/${name}_user.yaml": ROLE,
    "locales/en.yaml": LOCALE_EN,
    "locales/zh.yaml": LOCALE_ZH,
    "hooks.py": HOOKS,
    "demo.py": DEMO.replace("$demo_link", ""),
    "tests/test_$name.py": TEST.replace("$test_setup", "").replace("$test_link", ""),
    "README.md": README,
}

EXTENDING = {
    "entities/$target.yaml": EXTEND_ENTITY,
    "roles/$role.yaml": EXTEND_ROLE,
    "demo.py": DEMO.replace("$demo_link", '\n            "$target": demo.rng.choice(targets),').replace(
        "    for i in range(5):", "    targets = demo.ids(\"$target\", limit=50) or [demo.create(\"$target\", {\"$target_title\": \"示例\"})[\"id\"]]\n"
        "    for i in range(5):"),
    "tests/test_$name.py": TEST.replace("$test_setup", '\n    target = records.create("$target", {"$target_title": "Example"})["id"]').replace(
        "$test_link", ', "$target": target'),
}
