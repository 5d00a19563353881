"""The permission matrix: every role of the standard CRM (read from the registry), every entity
that matters and every action, tried on records in every position relative to the user (own,
same department, a department below, above, elsewhere, shared for reading, shared for editing,
in the pool) through the runtime, the HTML screens and the JSON API. The expected answer comes
from tests/security/conftest.py's Model (the declared scopes, the organisation, shares and the
pool rule), never from engine/runtime/access.py.

One populated database per backend serves the whole module. Writes that succeed are undone
(runtime writes run in a transaction that is rolled back; HTTP writes are reverted by the system
actor), so every case sees the same records.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from html import unescape
from typing import Any

import pytest
import sqlalchemy as sa

from engine.metadata import load_registry
from engine.metadata.registry import ACTIONS, Registry
from engine.runtime.db import make_engine
from engine.runtime.errors import Forbidden, NotFound
from engine.runtime.hooks import HookRegistry
from engine.runtime.query import ListQuery
from engine.runtime.service import RecordService, Runtime
from engine.runtime.users import User
from engine.ui.text import ui_text
from tests.security.conftest import (
    STANDARD,
    Model,
    Org,
    Rec,
    Site,
    assert_clean,
    files_dir,
    make_user,
    minimal_values,
    text_field,
)

# The standard pack declares no `department` scope; this extra role (an overlay, as an
# administrator would add one) exercises department against subtree, an export scope narrower
# than the read scope, and a pool that opens reading only.
DEPT_LEAD = {"kind": "role", "ref": "security:role/dept_lead", "data": {
    "role": "dept_lead", "label": {"en": "Department lead", "zh": "部门主管"},
    "permissions": {
        "customer": {"read": "subtree", "create": "all", "edit": "department", "delete": "own",
                     "export": "department", "assign": "department", "share": "department", "pool": ["read"]},
        "contact": {"read": "department", "create": "all", "edit": "own", "export": "department"},
        "opportunity": {"read": "department", "create": "all", "edit": "department", "assign": "department",
                        "share": "own", "export": "own"},
        "lead": {"read": "subtree", "edit": "subtree", "export": "own"},
        "activity": {"read": "own", "create": "own", "edit": "own", "delete": "own"},
        "product": {"read": "all"},
    }}}

REGISTRY = load_registry([STANDARD], [DEPT_LEAD])
ENTITIES = ("customer", "contact", "opportunity", "activity", "lead", "quote", "service_request", "product")
UNITS: dict[str, str | None] = {"HQ": None, "East": "HQ", "East-1": "East", "North": "HQ"}
PLACES = {"admin": "HQ", "marketing": "HQ", "sales_manager": "East", "salesperson": "East",
          "service_agent": "North", "dept_lead": "East"}


def people(registry: Registry) -> dict[str, tuple[tuple[str, ...], str | None]]:
    """User name -> (roles, unit): one user per role, named after it, and a few more."""
    out: dict[str, tuple[tuple[str, ...], str | None]] = {
        role: ((role,), PLACES.get(role, "East")) for role in sorted(registry.roles)}
    if "salesperson" in registry.roles:
        out["east1"] = (("salesperson",), "East-1")  # in a sub-department of East
        out["sales2"] = (("salesperson",), "North")  # a second salesperson, in another department
        if "service_agent" in registry.roles:
            out["combo"] = (("salesperson", "service_agent"), "North")  # two roles: the most permissive wins
    out["nobody"] = ((), None)  # no role, no department
    out["guest"] = ((), None)  # shares in the tests go to this user
    return out


PEOPLE = people(REGISTRY)
ACTORS = [name for name in PEOPLE if name not in ("east1", "sales2", "guest")]
CASES = [pytest.param(actor, entity, id=f"{actor}-{entity}") for actor in ACTORS for entity in ENTITIES]
HTTP = {"ok": 200, "forbidden": 403, "not_found": 404}


@dataclass
class World:
    runtime: Runtime
    model: Model
    users: dict[str, User]
    records: dict[str, list[Rec]]
    parent: int
    site: Site

    @property
    def system(self) -> RecordService:
        return self.runtime.records()

    def user_id(self, name: str) -> int:
        return self.users[name].id

    def readable(self, actor: str, entity: str) -> set[int]:
        return {r.id for r in self.records[entity] if self.model.may(actor, entity, "read", r)}

    def probes(self, actor: str, entity: str) -> dict[str, Rec]:
        """One record in each position relative to the actor."""
        out: dict[str, Rec] = {}
        for rec in self.records[entity]:
            if rec.kind == "plain":
                out.setdefault(self.model.org.relation(actor, rec.owner), rec)
            elif rec.kind == "shared" and actor in rec.shares:
                out[f"shared_{rec.shares[actor]}"] = rec
            elif rec.kind == "pool":
                out["pool"] = rec
        return out

    def http_probes(self, actor: str, entity: str) -> dict[str, Rec]:
        """The probes for the screens and the API: every shared and pooled one, and of the plain
        ones (whose positions only the runtime's scope SQL tells apart, tried in full by
        test_runtime and by the lists' row sets) one per distinct expected outcome."""
        out: dict[str, Rec] = {}
        seen: set[tuple[Any, ...]] = set()
        for position, rec in self.probes(actor, entity).items():
            if rec.kind == "plain":
                outcomes = (tuple(self.model.may(actor, entity, a, rec) for a in ACTIONS),
                            self.model.assign(actor, rec, self.target(actor, rec)))
                if outcomes in seen:
                    continue
                seen.add(outcomes)
            out[position] = rec
        return out

    def target(self, actor: str, rec: Rec) -> str:
        """Whom an assign test gives the record to: the actor, or (for their own) a colleague."""
        if rec.owner != actor:
            return actor
        colleagues = [u for u in PEOPLE if u != actor and self.model.org.relation(actor, u) == "department"]
        return colleagues[0] if colleagues else "nobody"

    def rules(self, actor: str, entity: str) -> dict[str, str]:
        prefix = entity + "."
        return {key[len(prefix):]: rule for role in PEOPLE[actor][0]
                for key, rule in self.runtime.registry.roles[role].fields.items() if key.startswith(prefix)}

    def edit_field(self, actor: str, entity: str) -> str:
        return text_field(self.runtime.registry.entity(entity), self.rules(actor, entity))

    # -- looking at rows directly, and undoing what HTTP writes did ------------------------------
    def row(self, entity: str, record_id: int) -> sa.RowMapping:
        """The stored version, owner and deletion time (read straight from the table)."""
        table = self.runtime.table(entity)
        with self.runtime.engine.connect() as conn:
            return conn.execute(sa.select(table.c.version, table.c.owner, table.c.deleted_at)
                                .where(table.c.id == record_id)).mappings().one()

    def restore(self, entity: str, record_id: int) -> None:
        self.system.restore(entity, record_id)

    def set_owner(self, entity: str, record_id: int, owner: str) -> None:
        self.system.update(entity, record_id, {"owner": self.user_id(owner)}, self.row(entity, record_id)["version"])

    def owner_of(self, entity: str, record_id: int) -> int:
        return int(self.row(entity, record_id)["owner"])

    def shared_with_guest(self, entity: str, record_id: int) -> bool:
        return any(s["user_id"] == self.user_id("guest") for s in self.system.shares(entity, record_id))

    def unshare_guest(self, entity: str, record_id: int) -> None:
        self.system.unshare(entity, record_id, self.user_id("guest"))

    def purge(self, entity: str, record_id: int) -> None:
        self.system.delete(entity, record_id)
        self.system.purge(entity, record_id)


def token_field(registry: Registry, entity: str) -> str:
    """The first search field holding plain text: every test record carries "MX" in it."""
    e = registry.entity(entity)
    for name in e.search:
        f = e.field(name)
        if f.type == "string" and not f.kind.derived:
            return name
    raise AssertionError(f"{entity} has no plain search field")


def populate(runtime: Runtime) -> tuple[dict[str, User], dict[str, list[Rec]], int]:
    with runtime.engine.begin() as conn:  # one transaction: quicker, above all on PostgreSQL
        return populate_in(runtime, runtime.records(conn=conn))


def populate_in(runtime: Runtime, system: RecordService) -> tuple[dict[str, User], dict[str, list[Rec]], int]:
    registry = runtime.registry
    users = {name: make_user(runtime, name, roles, is_admin="admin" in roles) for name, (roles, _) in PEOPLE.items()}
    unit_ids: dict[str, int] = {}
    for unit, parent in UNITS.items():  # parents first: the mapping is in tree order
        values: dict[str, Any] = {"name": unit}
        if parent is not None:
            values["parent"] = unit_ids[parent]
        unit_ids[unit] = system.create("department", values)["id"]
    for name, (_, unit) in PEOPLE.items():
        if unit is not None:
            system.create("employee", {"name": name, "user": users[name].id, "department": unit_ids[unit]})
    parent = system.create("customer", {"name": "MX parent customer", "owner": users["nobody"].id})["id"]
    parents = {"customer": parent}
    records: dict[str, list[Rec]] = {e: [] for e in ENTITIES}
    records["customer"].append(Rec("customer", parent, "nobody", "MX parent customer", kind="parent"))
    for actor in ACTORS:
        if actor != "nobody":
            system.share("customer", parent, users[actor].id, "read")  # every child's customer is readable
            records["customer"][0].shares[actor] = "read"
    for entity in ENTITIES:
        e = registry.entity(entity)
        token = token_field(registry, entity)
        planned: list[tuple[str, str, dict[str, str], bool]] = []  # kind, owner, shares, pooled
        planned += [("plain", owner, {}, False) for owner in PEOPLE]
        for actor in ACTORS:
            planned += [("shared", "nobody", {actor: "read"}, False), ("shared", "nobody", {actor: "edit"}, False)]
        if e.pool:
            planned.append(("pool", "nobody", {}, True))
        rows = []
        for i, (kind, owner, _, pooled) in enumerate(planned):
            values = minimal_values(registry, e, parents, "MX")
            values[token] = f"MX {entity} {kind} {owner} {i:02d}"
            values["owner"] = users[owner].id
            if e.pool:
                values[e.pool] = pooled
            if entity == "activity":
                values["customer"] = parent  # so the parent's activity tab lists them all
            rows.append(values)
        ids = system.bulk_create(entity, rows)
        for record_id, values, (kind, owner, shares, pooled) in zip(ids, rows, planned, strict=True):
            for user, level in shares.items():
                system.share(entity, record_id, users[user].id, level)
            records[entity].append(Rec(entity, record_id, owner, str(values[token]), dict(shares), pooled, kind))
    return users, records, parent


@pytest.fixture(scope="module")
def world(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # Without the pack's hooks: its business rules (a claimed customer leaves the pool, limits per
    # salesperson...) are tests/packs' subject; this module is about the permission rules alone.
    runtime = Runtime(REGISTRY, make_engine(module_db_url), hooks=HookRegistry())
    runtime.files_dir = files_dir(tmp_path_factory.mktemp("files"))
    runtime.migrate()
    users, records, parent = populate(runtime)
    org = Org(dict(UNITS), {name: {unit} for name, (_, unit) in PEOPLE.items() if unit is not None})
    model = Model(runtime.registry, org, {name: roles for name, (roles, _) in PEOPLE.items()})
    site = Site(runtime)
    yield World(runtime, model, users, records, parent, site)
    site.close()
    runtime.engine.dispose()


def test_the_matrix_covers_every_role_and_position(world: World) -> None:
    """The population is what the matrix claims: every role has a user, and the positions exist."""
    assert set(world.runtime.registry.roles) <= {r for roles, _ in PEOPLE.values() for r in roles}
    seen = {position for actor in ACTORS for position in world.probes(actor, "customer")}
    assert seen >= {"own", "department", "below", "above", "elsewhere", "shared_read", "shared_edit", "pool"}
    assert {r.kind for r in world.records["customer"]} == {"plain", "shared", "pool", "parent"}


# -- (a) the runtime ------------------------------------------------------------------------------

def attempt(world: World, actor: str, write: Callable[[RecordService], Any],
            before: Callable[[RecordService], Any] | None = None) -> str:
    """Run a write as `actor` (after `before` as the system) in a transaction that is always rolled
    back: ok, forbidden or not_found."""
    with world.runtime.engine.connect() as conn:
        transaction = conn.begin()
        try:
            if before is not None:
                before(world.runtime.records(conn=conn))
            write(world.runtime.records(world.users[actor].actor(), conn))
            return "ok"
        except NotFound:
            return "not_found"
        except Forbidden:
            return "forbidden"
        finally:
            transaction.rollback()


@pytest.mark.parametrize(("actor", "entity"), CASES)
def test_runtime(world: World, actor: str, entity: str) -> None:
    model, user = world.model, world.users[actor]
    records = world.runtime.records(user.actor())
    expected = world.readable(actor, entity)

    page = records.query(entity, ListQuery(limit=500))
    assert {r["id"] for r in page.rows} == expected
    assert page.total == len(expected)
    assert {r["id"] for r in records.query(entity, ListQuery(search="MX", limit=500)).rows} == expected
    grouped = records.summarize(entity, None, "owner")
    assert sum(g["count"] for g in grouped.values()) == len(expected)

    explainer = world.runtime.records(world.users["admin"].actor())
    field = world.edit_field(actor, entity)
    for position, rec in world.probes(actor, entity).items():
        where = f"{actor} {entity} {position}"
        readable = model.may(actor, entity, "read", rec)
        assert attempt(world, actor, lambda r, i=rec.id: r.get(entity, i)) == ("ok" if readable else "not_found"), where
        version = world.row(entity, rec.id)["version"]
        assert attempt(world, actor, lambda r, i=rec.id, v=version: r.update(entity, i, {field: "changed"}, v)) \
            == model.simple(actor, rec, "edit"), where
        assert attempt(world, actor, lambda r, i=rec.id: r.delete(entity, i)) == model.simple(actor, rec, "delete"), where
        target = world.target(actor, rec)
        new_owner = world.user_id(target)
        assert attempt(world, actor, lambda r, i=rec.id, v=version, t=new_owner:
                       r.update(entity, i, {"owner": t}, v)) == model.assign(actor, rec, target), where
        assert attempt(world, actor, lambda r, i=rec.id: r.share(entity, i, world.user_id("guest"), "read")) \
            == model.simple(actor, rec, "share"), where
        for action in ("restore", "purge"):  # from the recycle bin, where the system put it
            assert attempt(world, actor, lambda r, i=rec.id, a=action: getattr(r, a)(entity, i),
                           before=lambda s, i=rec.id: s.delete(entity, i)) == model.simple(actor, rec, action), where
        # "Why can I see this?" gives the same answer for every action, export and import included.
        decisions = {d.action: d.allowed for d in explainer.explain(entity, rec.id, user.actor())}
        assert decisions == {a: model.may(actor, entity, a, rec) for a in ACTIONS}, where

    values = minimal_values(world.runtime.registry, world.runtime.registry.entity(entity), {"customer": world.parent}, "MX")
    created = attempt(world, actor, lambda r: r.create(entity, values))
    assert created == ("ok" if model.may(actor, entity, "create", None) else "forbidden")


# -- (b) the screens ------------------------------------------------------------------------------

def listed(html: str, entity: str) -> set[int]:
    return {int(i) for i in re.findall(rf'href="/app/{entity}/(\d+)" class="row-link"', html)}


def total_of(html: str) -> int:
    match = re.search(r'data-test="total">(\d+)', html)
    assert match, html[:500]
    return int(match.group(1))


def csv_ids(body: bytes) -> list[int]:
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    return [int(r[0]) for r in rows[1:]]


def decisions_on_page(html: str) -> dict[str, bool]:
    table = html.split('data-test="decisions"', 1)[1].split("</table>", 1)[0]
    labels = {ui_text(f"action_{a}", "en"): a for a in ACTIONS}
    rows = re.findall(r"<tr><td>([^<]*)</td><td>([^<]*)</td>", table)
    return {labels[unescape(label)]: unescape(answer) == ui_text("answer_yes", "en") for label, answer in rows}


@pytest.mark.parametrize(("actor", "entity"), CASES)
def test_screens(world: World, actor: str, entity: str) -> None:
    model, browser = world.model, world.site.browser(world.users[actor])
    e = world.runtime.registry.entity(entity)
    expected = world.readable(actor, entity)
    probes = world.http_probes(actor, entity)

    listing = browser.get(f"/app/{entity}?limit=500")
    assert_clean(listing)
    if not model.somewhere(actor, entity, "read"):
        # The entity itself is out of reach: every screen of it is "not found".
        assert listing.status_code == 404
        for path in (f"/app/{entity}/export.csv", f"/app/{entity}/board", f"/app/{entity}/lookup?q=MX",
                     f"/app/{entity}/new", *(f"/app/{entity}/{r.id}" for r in probes.values())):
            assert browser.get(path).status_code == 404, path
        for rec in probes.values():
            for path, data in ((f"/app/{entity}/{rec.id}/edit", {"_version": "0"}), (f"/app/{entity}/{rec.id}/delete", {}),
                               (f"/app/{entity}/{rec.id}/share", {"user": world.user_id("guest")})):
                assert browser.post(path, data).status_code == 404, path
        assert browser.post(f"/app/{entity}/new", minimal_form(world, entity)).status_code == 404
        assert f'href="/app/{entity}"' not in browser.get("/").text  # not in the menu either
        return

    # The list, its count, search and lookups show exactly the readable records.
    assert listing.status_code == 200
    assert listed(listing.text, entity) == expected and total_of(listing.text) == len(expected)
    searched = browser.get(f"/app/{entity}?limit=500&q=MX")
    assert listed(searched.text, entity) == expected and total_of(searched.text) == len(expected)
    found = browser.get(f"/app/{entity}/lookup?q=MX").json()
    assert {r["id"] for r in found} <= expected and len(found) == min(15, len(expected))

    # Export: the readable records the export scope covers (all of the list when it is as wide).
    export = browser.get(f"/app/{entity}/export.csv?columns=id")
    assert_clean(export)
    if model.somewhere(actor, entity, "export"):
        assert export.status_code == 200, export.text[:300]
        exportable = {r.id for r in world.records[entity]
                      if model.may(actor, entity, "read", r) and model.may(actor, entity, "export", r)}
        ids = csv_ids(export.content)
        assert len(ids) == len(set(ids)) and set(ids) == exportable
        assert 'data-test="export"' in listing.text
        # The export of a filtered list holds the rows of that list (those the export scope covers).
        mine = f"filter=owner eq {world.user_id(actor)}"
        narrowed = csv_ids(browser.get(f"/app/{entity}/export.csv?columns=id&{mine}").content)
        assert set(narrowed) == listed(browser.get(f"/app/{entity}?limit=500&{mine}").text, entity) & exportable
    else:
        assert export.status_code == 403 and 'data-test="export"' not in listing.text

    # The board's columns count and show only readable records.
    if e.board or e.fields_of_type("stage"):
        board = browser.get(f"/app/{entity}/board")
        assert board.status_code == 200
        counts = [int(n) for n in re.findall(r'data-test="count-[^"]+">(\d+)<', board.text)]
        cards = [int(i) for i in re.findall(r'class="board-card" data-id="(\d+)"', board.text)]
        assert sum(counts) == len(expected) and set(cards) <= expected
        assert len(cards) == sum(min(n, 30) for n in counts)

    # The parent customer's related tab for this entity counts and lists only readable records.
    tab = next((i for i, rel in enumerate(world.runtime.registry.entity("customer").related)
                if rel.entity == entity and rel.via == "customer"), None)
    if tab is not None and model.may(actor, "customer", "read", world.records["customer"][0]):
        detail = browser.get(f"/app/customer/{world.parent}?tab=r{tab}").text
        count = re.search(rf'data-test="tab-{entity}">[^<]*<span class="count">(\d+)</span>', detail)
        assert count and int(count.group(1)) == len(expected)
        related = detail.split('data-test="related"', 1)[1]
        assert {int(i) for i in re.findall(rf'href="/app/{entity}/(\d+)"', related)} == expected

    guest = world.user_id("guest")
    for position, rec in probes.items():
        where = f"{actor} {entity} {position}"
        readable = model.may(actor, entity, "read", rec)
        detail_page = browser.get(f"/app/{entity}/{rec.id}")
        assert_clean(detail_page)
        assert detail_page.status_code == (200 if readable else 404), where
        if readable:  # the buttons offered are the actions allowed
            assert ('data-test="edit"' in detail_page.text) == model.may(actor, entity, "edit", rec), where
            assert ('data-test="delete"' in detail_page.text) == model.may(actor, entity, "delete", rec), where
            assert ('data-test="tab-sharing"' in detail_page.text) == model.may(actor, entity, "share", rec), where
            if rec.kind == "shared":  # the form's own gate, where only the share decides
                form = browser.get(f"/app/{entity}/{rec.id}/edit")
                assert form.status_code == (200 if model.may(actor, entity, "edit", rec) else 403), where

        # Editing with a stale version: 409 proves the permission check passed, and changes nothing.
        edit = browser.post(f"/app/{entity}/{rec.id}/edit", {"_version": "0"})
        assert edit.status_code == {"ok": 409, "forbidden": 403, "not_found": 404}[model.simple(actor, rec, "edit")], where

        delete = browser.post(f"/app/{entity}/{rec.id}/delete")
        outcome = model.simple(actor, rec, "delete")
        assert delete.status_code == {"ok": 303, "forbidden": 403, "not_found": 404}[outcome], where
        if outcome == "ok":
            assert world.row(entity, rec.id)["deleted_at"] is not None
            world.restore(entity, rec.id)

        world.system.delete(entity, rec.id)  # restoring from the recycle bin
        restore = browser.post(f"/app/{entity}/{rec.id}/restore")
        outcome = model.simple(actor, rec, "restore")
        assert restore.status_code == {"ok": 303, "forbidden": 403, "not_found": 404}[outcome], where
        if world.row(entity, rec.id)["deleted_at"] is not None:
            assert outcome != "ok", where
            world.restore(entity, rec.id)

        share = browser.post(f"/app/{entity}/{rec.id}/share", {"user": guest, "access": "read"})
        outcome = model.simple(actor, rec, "share")
        assert share.status_code == {"ok": 303, "forbidden": 403, "not_found": 404}[outcome], where
        assert world.shared_with_guest(entity, rec.id) == (outcome == "ok"), where
        if outcome == "ok":
            world.unshare_guest(entity, rec.id)

        target = world.target(actor, rec)
        bulk = browser.post(f"/app/{entity}/bulk", {"action": "owner", "user": world.user_id(target), "ids": str(rec.id)})
        assert bulk.status_code == 303, where
        moved = world.owner_of(entity, rec.id) == world.user_id(target)
        assert moved == (model.assign(actor, rec, target) == "ok"), where
        if moved:
            world.set_owner(entity, rec.id, rec.owner)

    created = browser.post(f"/app/{entity}/new", minimal_form(world, entity))
    assert_clean(created)
    if model.may(actor, entity, "create", None):
        assert created.status_code == 303, created.text[:500]
        world.purge(entity, int(created.headers["location"].rsplit("/", 1)[1]))
    else:
        assert created.status_code == 403
        assert browser.get(f"/app/{entity}/new").status_code == 403
        assert 'data-test="new"' not in listing.text


def minimal_form(world: World, entity: str) -> dict[str, str]:
    registry = world.runtime.registry
    values = minimal_values(registry, registry.entity(entity), {"customer": world.parent}, "MX new")
    return {k: str(v) for k, v in values.items()}


# -- (c) the JSON API -----------------------------------------------------------------------------

@pytest.mark.parametrize(("actor", "entity"), CASES)
def test_api(world: World, actor: str, entity: str) -> None:
    model, browser = world.model, world.site.browser(world.users[actor])
    expected = world.readable(actor, entity)
    probes = world.http_probes(actor, entity)
    reachable = model.somewhere(actor, entity, "read")

    def status(outcome: str) -> int:
        return HTTP[outcome] if reachable else 404

    listing = browser.api("GET", f"/api/v1/{entity}?limit=500")
    assert_clean(listing)
    index = {e["key"] for e in browser.api("GET", "/api/v1").json()["data"]}
    assert (entity in index) == reachable
    if not reachable:
        assert listing.status_code == 404
    else:
        body = listing.json()
        assert {r["id"] for r in body["data"]} == expected and body["total"] == len(expected)
        searched = browser.api("GET", f"/api/v1/{entity}?limit=500&q=MX").json()
        assert {r["id"] for r in searched["data"]} == expected and searched["total"] == len(expected)
        paged = browser.api("GET", f"/api/v1/{entity}?limit=12&sort=id").json()
        seen = [r["id"] for r in paged["data"]]
        while paged["next_cursor"]:
            paged = browser.api("GET", f"/api/v1/{entity}?limit=12&sort=id&cursor={paged['next_cursor']}").json()
            seen += [r["id"] for r in paged["data"]]
        assert sorted(seen) == sorted(expected) and len(seen) == len(set(seen))

    field = world.edit_field(actor, entity)
    for position, rec in probes.items():
        where = f"{actor} {entity} {position}"
        got = browser.api("GET", f"/api/v1/{entity}/{rec.id}")
        assert_clean(got)
        assert got.status_code == status("ok" if model.may(actor, entity, "read", rec) else "not_found"), where

        version = got.json()["version"] if got.status_code == 200 else 1  # (unreadable: refused before it counts)
        patch = browser.api("PATCH", f"/api/v1/{entity}/{rec.id}", json={field: f"api {actor}", "version": version})
        assert_clean(patch)
        assert patch.status_code == status(model.simple(actor, rec, "edit")), (where, patch.text[:300])
        version = patch.json()["version"] if patch.status_code == 200 else version

        delete = browser.api("DELETE", f"/api/v1/{entity}/{rec.id}")
        assert delete.status_code == status(model.simple(actor, rec, "delete")), where
        if delete.status_code == 200:
            world.restore(entity, rec.id)

        if delete.status_code == 200:
            version += 2  # deleted and restored
        target = world.target(actor, rec)
        assign = browser.api("PATCH", f"/api/v1/{entity}/{rec.id}", json={"owner": world.user_id(target), "version": version})
        assert assign.status_code == status(model.assign(actor, rec, target)), (where, assign.text[:300])
        if assign.status_code == 200:
            world.set_owner(entity, rec.id, rec.owner)

    registry = world.runtime.registry
    values = minimal_values(registry, registry.entity(entity), {"customer": world.parent}, "MX api")
    created = browser.api("POST", f"/api/v1/{entity}", json=values)
    assert_clean(created)
    if model.may(actor, entity, "create", None) and reachable:
        assert created.status_code == 201, created.text[:300]
        world.purge(entity, created.json()["id"])
    elif reachable:
        assert created.status_code == 403
    else:
        assert created.status_code == 404


@pytest.mark.parametrize("actor", ACTORS)
def test_global_search_finds_only_readable_records(world: World, actor: str) -> None:
    page = world.site.browser(world.users[actor]).get("/search?q=MX")
    assert_clean(page)
    assert page.status_code == 200
    for entity in world.runtime.registry.entities:
        found = {int(i) for i in re.findall(rf'href="/app/{entity}/(\d+)"', page.text)}
        if entity in ENTITIES:
            expected = world.readable(actor, entity)
            assert found <= expected and len(found) == min(8, len(expected)), entity  # 8 per entity, "8+"
        elif not world.model.somewhere(actor, entity, "read"):
            assert not found, entity


# -- "why can I see this?" on the screens ---------------------------------------------------------

@pytest.mark.parametrize("entity", ["customer", "opportunity"])
def test_access_tab_explains_every_action(world: World, entity: str) -> None:
    admin = world.site.browser(world.users["admin"])
    for actor in ACTORS:
        for position, rec in world.probes(actor, entity).items():
            page = admin.get(f"/app/{entity}/{rec.id}?tab=access&user={world.user_id(actor)}")
            assert page.status_code == 200
            expected = {a: world.model.may(actor, entity, a, rec) for a in ACTIONS}
            assert decisions_on_page(page.text) == expected, f"{actor} {entity} {position}"
    # Only administrators (read: all) get the tab.
    for actor in ACTORS:
        if world.model.scope(actor, entity, "read") != "all":
            rec = world.probes(actor, entity)["own"]
            page = world.site.browser(world.users[actor]).get(f"/app/{entity}/{rec.id}?tab=access&user=1")
            assert 'data-test="decisions"' not in page.text


def test_export_is_audited_with_its_row_count(world: World) -> None:
    admin = world.site.browser(world.users["admin"])
    rows = csv_ids(admin.get("/app/customer/export.csv?columns=id").content)
    table = world.runtime.table("crm_audit")
    with world.runtime.engine.connect() as conn:
        last = conn.execute(sa.select(table).where(table.c.event == "export").order_by(table.c.id.desc())).mappings().first()
    assert last is not None and last["username"] == "admin" and last["entity"] == "customer"
    assert f'"rows": {len(rows)}' in last["detail"]
