"""Access scopes (own, pool) through the record service, and login users."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from engine.runtime.errors import Forbidden, NotFound, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import Runtime
from engine.runtime.users import User, check_password, create_user, load_user, password_problems


def test_rep_sees_own_and_pooled_accounts(runtime: Runtime, alice: User, bob: User) -> None:
    as_alice, as_bob = runtime.records(alice.actor()), runtime.records(bob.actor())
    mine = as_alice.create("account", {"name": "alice's"})
    theirs = as_bob.create("account", {"name": "bob's"})
    pooled = as_bob.create("account", {"name": "pooled", "in_pool": True})
    system = runtime.records().create("account", {"name": "nobody's"})
    visible = {r["id"] for r in as_alice.query("account").rows}
    assert visible == {mine["id"], pooled["id"]}
    assert as_alice.query("account").total == 2
    assert as_alice.query("account", ListQuery(search="bob")).rows == []
    as_alice.get("account", pooled["id"])
    for hidden in (theirs, system):
        with pytest.raises(NotFound):  # not even told it exists
            as_alice.get("account", hidden["id"])
        with pytest.raises(NotFound):
            as_alice.update("account", hidden["id"], {"notes": "x"}, version=1)
        with pytest.raises(NotFound):
            as_alice.delete("account", hidden["id"])
        with pytest.raises(NotFound):
            as_alice.history("account", hidden["id"])
    # the pool grants read only: editing a pooled record is refused, openly
    with pytest.raises(Forbidden):
        as_alice.update("account", pooled["id"], {"notes": "x"}, version=1)
    with pytest.raises(Forbidden):
        as_alice.delete("account", pooled["id"])
    # own records: full edit and delete
    as_alice.update("account", mine["id"], {"notes": "mine"}, version=1)
    # giving a record away is "assign", which rep lacks
    with pytest.raises(Forbidden):
        as_alice.update("account", mine["id"], {"owner": bob.id}, version=2)
    as_alice.delete("account", mine["id"])
    assert as_alice.query("account", ListQuery(trash=True)).rows[0]["id"] == mine["id"]
    assert {r["id"] for r in as_bob.query("account", ListQuery(trash=True)).rows} == set()


def test_rep_without_permission_is_forbidden(runtime: Runtime, alice: User) -> None:
    as_alice = runtime.records(alice.actor())
    acct = as_alice.create("account", {"name": "A"})
    deal = as_alice.create("deal", {"name": "D", "account": acct["id"]})
    with pytest.raises(Forbidden):
        as_alice.delete("deal", deal["id"])  # rep may not delete deals at all
    nobody = User(999, "ghost", "Ghost", (), False, None)
    with pytest.raises(Forbidden):
        runtime.records(nobody.actor()).create("account", {"name": "x"})
    assert runtime.records(nobody.actor()).query("account").rows == []


def test_references_to_invisible_records(runtime: Runtime, alice: User, bob: User) -> None:
    """A rep may link only to records she can read: the link would leak the other's title."""
    theirs = runtime.records(bob.actor()).create("account", {"name": "bob's"})
    as_alice = runtime.records(alice.actor())
    with pytest.raises(ValidationFailed) as caught:
        as_alice.create("account", {"name": "child", "parent": theirs["id"]})
    assert "parent" in caught.value.errors
    mine = as_alice.create("account", {"name": "mine"})
    child = as_alice.create("account", {"name": "child", "parent": mine["id"]})
    assert child["_titles"]["parent"] == "mine"


def test_bulk_create_as_a_user(runtime: Runtime, alice: User, bob: User) -> None:
    as_alice = runtime.records(alice.actor())
    ids = as_alice.bulk_create("account", [{"name": f"A{i}"} for i in range(3)])
    rows = [as_alice.get("account", i) for i in ids]
    assert {r["owner"] for r in rows} == {alice.id}
    assert {r["created_by"] for r in rows} == {alice.id}
    assert {r["manager"] for r in rows} == {alice.id}  # default $me
    assert runtime.records(bob.actor()).query("account").rows == []
    with pytest.raises(Forbidden):
        runtime.records(User(5, "x", "x", (), False, None).actor()).bulk_create("account", [{"name": "x"}])
    with pytest.raises(ValidationFailed):
        as_alice.bulk_create("account", [{"name": "ok", "owner": 999}])


def test_passwords_are_hashed_and_checked(runtime: Runtime) -> None:
    user = create_user(runtime, "carol", "Open Sesame 42", roles=("rep",), email="c@x.cn")
    with runtime.engine.connect() as conn:
        stored = conn.execute(sa.select(runtime.table("crm_user").c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "Open Sesame 42" not in stored
    assert check_password(runtime, "carol", "Open Sesame 42") == user
    assert check_password(runtime, "carol", "open sesame 42") is None
    assert check_password(runtime, "nobody", "Open Sesame 42") is None
    loaded = load_user(runtime, user.id)
    assert loaded is not None and loaded.roles == ("rep",)
    assert loaded.actor().roles == ("rep",) and loaded.actor().user_id == user.id


def test_password_policy_and_user_checks(runtime: Runtime) -> None:
    assert password_problems("dave", "short") != []
    assert password_problems("davidson", "DavidSon") != []  # the user name itself
    assert password_problems("dave", "demo-dave") == []  # long enough, merely contains it
    assert password_problems("dave", "long enough pass") == []
    with pytest.raises(ValidationFailed) as caught:
        create_user(runtime, "bad name!", "x", roles=("nope",))
    assert set(caught.value.errors) == {"username", "password", "roles"}
    create_user(runtime, "erin", "a fine password")
    with pytest.raises(ValidationFailed) as caught:
        create_user(runtime, "erin", "another password")
    assert [m.code for m in caught.value.errors["username"]] == ["not_unique"]
