"""The fast yes/no schema check (schemas.fast_check) agrees with jsonschema: on every document
of the shipped and test packs (broken ones included) and on many random mutations of them."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine.fieldtypes import all_types
from engine.metadata import schemas
from engine.metadata.packs import read_pack
from tests.conftest import FIXTURES, ROOT


def pack_folders() -> list[Path]:
    roots = [ROOT / "packs", FIXTURES]
    return sorted({p.parent for root in roots for p in root.rglob("pack.yaml")})


def cases() -> Iterator[tuple[Draft202012Validator, Any]]:
    """(validator, instance) for every document and field spec of every pack folder."""
    for folder in pack_folders():
        pack, _ = read_pack(folder)
        if pack is None:
            continue
        yield schemas.validator("pack"), pack.manifest.data
        for doc in pack.documents:
            yield schemas.validator(doc.kind), doc.data
            fields = doc.data.get("fields") if doc.kind == "entity" else None
            for spec in (fields or {}).values() if isinstance(fields, dict) else ():
                if isinstance(spec, dict) and spec.get("extend") is True:
                    yield schemas.validator("field_extension"), spec
                elif isinstance(spec, dict) and spec.get("type") in all_types():
                    yield schemas.field_validator(spec["type"]), spec


ODD_VALUES = [None, True, False, 0, 1, -1, 1.5, 2.0, "", "x", "Bad Name", "crm_x", "-name", "1.0.0", "CNY",
              "a.b", [], ["x"], [1], {}, {"en": "E", "zh": "中"}, {"en": ""}, {"x": 1}]


def mutations(data: Any, rnd: random.Random, count: int) -> Iterator[Any]:
    """Copies of `data` with one value somewhere replaced, one key removed or one key added."""
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, path + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path + (i,))

    walk(data, ())
    for _ in range(count):
        out = copy.deepcopy(data)
        path = rnd.choice(paths)
        parent: Any = out
        for part in path[:-1]:
            parent = parent[part]
        target = parent[path[-1]] if path else out
        move = rnd.random()
        if path and move < 0.6:
            parent[path[-1]] = copy.deepcopy(rnd.choice(ODD_VALUES))
        elif path and move < 0.75 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(target, dict):
            target[rnd.choice(["typo", "label", "type", "extend", "fields", "en", "required"])] = \
                copy.deepcopy(rnd.choice(ODD_VALUES))
        elif isinstance(target, list):
            target.append(copy.deepcopy(rnd.choice(ODD_VALUES)))
        else:
            out = copy.deepcopy(rnd.choice(ODD_VALUES)) if not path else out
        yield out


def agrees(v: Draft202012Validator, data: Any) -> bool:
    valid = not any(True for _ in v.iter_errors(data))
    check = schemas.fast_check(v.schema, v.schema)
    return check(data) == valid


def test_every_schema_has_a_fast_check() -> None:
    names = ["pack", "entity", "picklist", "role", "locale", "field_extension"]
    for v in [schemas.validator(n) for n in names] + [schemas.field_validator(t) for t in all_types()]:
        schemas.fast_check(v.schema, v.schema)  # raises NoFastCheck for a keyword it does not know


def test_fast_check_agrees_with_jsonschema_on_every_pack_document() -> None:
    seen = 0
    for v, data in cases():
        assert agrees(v, data), data
        seen += 1
    assert seen > 500


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_check_agrees_with_jsonschema_on_mutated_documents(seed: int) -> None:
    rnd = random.Random(seed)
    all_cases = list(cases())
    invalid = 0
    for v, data in rnd.sample(all_cases, 150):
        for mutated in mutations(data, rnd, 6):
            valid = not any(True for _ in v.iter_errors(mutated))
            invalid += not valid
            assert schemas.fast_check(v.schema, v.schema)(mutated) == valid, mutated
    assert invalid > 200  # the mutations do break documents


def test_keyword_semantics() -> None:
    check = schemas.fast_check({"type": "integer", "minimum": 1}, {})
    assert check(2) and check(2.0) and not check(True) and not check(0) and not check("2")
    assert schemas.fast_check({"enum": [1, "a"]}, {})(1.0) and not schemas.fast_check({"enum": [1]}, {})(True)
    assert not schemas.fast_check({"const": False}, {})(0)
    with pytest.raises(schemas.NoFastCheck):
        schemas.fast_check({"patternProperties": {"^x": {}}}, {})


def test_invalid_documents_still_get_jsonschema_messages(tmp_path: Path) -> None:
    from engine.metadata import validate

    folder = tmp_path / "p"
    (folder / "entities").mkdir(parents=True)
    (folder / "pack.yaml").write_text("name: p\nversion: 1.0.0\nlabel: {en: P, zh: P}\n", encoding="utf-8")
    (folder / "entities" / "thing.yaml").write_text(
        "entity: thing\nlabel: {en: Thing, zh: 物}\ntitle: name\nfields:\n"
        "  name: {type: string, label: {en: Name, zh: 名}, max_lenght: 5}\n", encoding="utf-8")
    errors = [str(e) for e in validate([folder])]
    assert any("thing.yaml:5: fields.name: unknown key 'max_lenght'" in e for e in errors), errors
