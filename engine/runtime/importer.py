"""Importing records from a CSV file, as a person fills a spreadsheet.

Columns are matched to fields by key or by label (English or Chinese). Cells are read the way the
form reads them: pick-list and stage options by key or label, users by user name or display
name, referenced records by their title (or `#id`). The rows are created through the record
service, BATCH at a time (`RecordService.create_many`), so validation, permissions, the packs'
hooks (such as the duplicate check, which also finds duplicates within the file) and autonumbers
are the same as for a record typed into the form; each record's history starts with one
"create" entry marked as an import. The whole file is one transaction: when any row has a
problem, nothing is imported and every problem is reported by line and column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from engine.i18n import Message
from engine.metadata.filters import FilterSpec
from engine.metadata.registry import Entity, Field
from engine.runtime.errors import Forbidden, RecordError, ValidationFailed
from engine.runtime.query import ListQuery
from engine.runtime.service import RecordService

MAX_ROWS = 100_000  # rows per file (the file is read into memory)
BATCH = 1000  # rows per create_many
MAX_PROBLEMS = 200  # stop reporting (and reading) after this many
ENCODINGS = ("utf-8-sig", "gb18030")  # Excel in Chinese Windows saves CSV as GB18030/GBK
NOT_IMPORTED = ("computed", "rollup", "attachment", "autonumber")
SYSTEM_IMPORTED = ("owner",)  # the only system field a file may set


class ImportFailed(RecordError):
    """The file cannot be read at all (encoding, no header, too many rows, unknown columns)."""

    def __init__(self, message: dict[str, str]) -> None:
        super().__init__(Message("rejected", {"message": message}))


@dataclass
class Problem:
    line: int  # the file's line number (the header is line 1)
    column: str  # the column's header, or "" for the whole row
    message: Message


@dataclass
class ImportResult:
    created: int = 0
    columns: dict[str, str] = field(default_factory=dict)  # header -> field name
    ignored: list[str] = field(default_factory=list)  # headers that match no field
    problems: list[Problem] = field(default_factory=list)
    warnings: list[tuple[int, Message]] = field(default_factory=list)  # (line, message) of rows saved with a warning

    @property
    def ok(self) -> bool:
        return not self.problems


class _RollBack(Exception):
    pass


def importable_fields(records: RecordService, entity: Entity) -> list[Field]:
    """The fields a file may fill: the entity's own fields that the user may edit, and the owner."""
    rules = records.field_rules(entity)  # hidden or read-only for this user

    def fillable(f: Field) -> bool:
        if f.name in SYSTEM_IMPORTED:
            return True
        return not (f.system or f.read_only or f.internal or f.type in NOT_IMPORTED)

    return [f for f in entity.fields.values() if fillable(f) and f.name not in rules]


def template_csv(records: RecordService, entity: Entity, language: str) -> str:
    """A header row of the importable fields' labels, for a spreadsheet to start from."""
    out = io.StringIO()
    csv.writer(out).writerow([f.title(language) for f in importable_fields(records, entity)])
    return "\ufeff" + out.getvalue()  # the BOM makes Excel read UTF-8


def read_rows(data: bytes) -> list[list[str]]:
    for encoding in ENCODINGS:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ImportFailed({"en": "The file is neither UTF-8 nor GB18030 text; save it from the spreadsheet as CSV.",
                            "zh": "文件既不是 UTF-8 也不是 GB18030 文本，请在表格软件中另存为 CSV。"})
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]


def match_columns(fields: list[Field], headers: list[str]) -> tuple[dict[int, Field], list[str]]:
    """{column index: field} by key or label (case and spaces ignored), and unmatched headers."""
    names: dict[str, Field] = {}
    for f in fields:
        for name in (f.name, f.label.get("en", ""), f.label.get("zh", "")):
            names.setdefault(_plain(name), f)
    matched: dict[int, Field] = {}
    ignored: list[str] = []
    for i, header in enumerate(headers):
        found = names.get(_plain(header))
        if found is None:
            ignored.append(header)
        elif found in matched.values():
            raise ImportFailed({"en": f"Two columns are both '{found.title('en')}'; keep one.",
                                "zh": f"有两列都是“{found.title('zh')}”，请只保留一列。"})
        else:
            matched[i] = found
    return matched, ignored


def _plain(text: str) -> str:
    return "".join(str(text).split()).casefold()


class _Lookups:
    """Ids of the users and referenced records that the file's cells name, one query per target."""

    def __init__(self, records: RecordService) -> None:
        self.records = records
        self.ids: dict[tuple[str, str], list[int]] = {}  # (target, text) -> ids named so
        self.asked: set[tuple[str, str]] = set()

    def load(self, f: Field, texts: Iterable[str]) -> None:
        target = "crm_user" if f.type == "user" or f.name == "owner" else str(f.target)
        wanted = sorted({t for t in texts if t and not (t.startswith("#") and t[1:].isdigit())}
                        - {text for kind, text in self.asked if kind == target})
        if not wanted:
            return
        self.asked |= {(target, text) for text in wanted}
        if target == "crm_user":
            users = self.records.runtime.table("crm_user")
            with self.records.runtime.engine.connect() as conn:
                rows = conn.execute(sa.select(users.c.id, users.c.username, users.c.display_name).where(
                    sa.or_(users.c.username.in_(wanted), users.c.display_name.in_(wanted)),
                    users.c.is_active.is_(True))).all()
            for row in rows:
                for text in {row.username, row.display_name} & set(wanted):
                    self.ids.setdefault((target, text), []).append(int(row.id))
            return
        entity = self.records.entity(target)
        for start in range(0, len(wanted), 500):
            chunk = FilterSpec(entity.title, "in", tuple(wanted[start:start + 500]))
            cursor = None
            while True:  # pages, as several records may share a title
                page = self.records.query(target, ListQuery(filters=[chunk], limit=500, cursor=cursor, count=False,
                                                            titles=(), sort=["id"]))
                for record in page.rows:
                    self.ids.setdefault((target, str(record[entity.title])), []).append(int(record["id"]))
                cursor = page.next_cursor
                if cursor is None:
                    break

    def id_of(self, f: Field, text: str) -> int | Message:
        if text.startswith("#") and text[1:].isdigit():
            return int(text[1:])
        target = "crm_user" if f.type == "user" or f.name == "owner" else f.target
        found = self.ids.get((str(target), text), [])
        if len(found) == 1:
            return found[0]
        return Message("no_match" if not found else "ambiguous_match", {"text": text})


def import_csv(records: RecordService, entity_key: str, data: bytes) -> ImportResult:
    """Create one record per data row of a CSV file, all or none (see the module's doc)."""
    entity = records.entity(entity_key)
    if not records.allows(entity_key, "import") or not records.allows(entity_key, "create"):
        raise Forbidden(Message("rejected", {"message": {
            "en": f"You may not import {entity.label['en']} records.", "zh": f"您无权导入{entity.label['zh']}。"}}))
    rows = read_rows(data)
    if not rows:
        raise ImportFailed({"en": "The file is empty.", "zh": "文件是空的。"})
    if len(rows) - 1 > MAX_ROWS:
        raise ImportFailed({"en": f"The file has {len(rows) - 1:,} rows; import at most {MAX_ROWS:,} at a time.",
                            "zh": f"文件有 {len(rows) - 1:,} 行，每次最多导入 {MAX_ROWS:,} 行。"})
    headers = [h.strip() for h in rows[0]]
    columns, ignored = match_columns(importable_fields(records, entity), headers)
    if not columns:
        raise ImportFailed({"en": "No column matches a field; the first row must hold the fields' names.",
                            "zh": "没有任何列与字段对应；第一行应为字段名称。"})
    result = ImportResult(columns={headers[i]: f.name for i, f in columns.items()}, ignored=ignored)
    lookups = _Lookups(records)
    for i, f in columns.items():
        if f.type in ("reference", "user") or f.name == "owner":
            lookups.load(f, (row[i].strip() for row in rows[1:] if i < len(row)))
    try:
        with records.runtime.engine.begin() as conn:
            bound = records.runtime.records(records.actor, conn)
            for start in range(1, len(rows), BATCH):
                _import_batch(bound, entity, headers, columns, lookups, start + 1, rows[start:start + BATCH], result)
                if len(result.problems) >= MAX_PROBLEMS:
                    break
            if result.problems:
                raise _RollBack
    except _RollBack:
        result.created = 0
        result.warnings = []
    return result


def _import_batch(records: RecordService, entity: Entity, headers: list[str], columns: dict[int, Field],
                  lookups: _Lookups, first_line: int, rows: list[list[str]], result: ImportResult) -> None:
    """Create the records of `rows` (the file's lines from `first_line` on) with one create_many."""
    column_of = {f.name: headers[i] for i, f in columns.items()}
    batch: list[dict[str, Any]] = []
    lines: list[int] = []
    for line, row in enumerate(rows, start=first_line):
        values = _row_values(headers, columns, lookups, line, row, result)
        if values is not None:
            batch.append(values)
            lines.append(line)
    if not batch:
        return
    try:
        saved = records.create_many(entity.key, batch, comment="import")
    except ValidationFailed as exc:
        for key, messages in exc.errors.items():
            index, _, name = key.partition(".")
            column = column_of.get(name, entity.fields[name].title("en") if name in entity.fields else "")
            result.problems += [Problem(lines[int(index)], column, m) for m in messages]
        result.problems.sort(key=lambda p: p.line)
        return
    except RecordError as exc:
        result.problems.append(Problem(lines[0], "", exc.message))
        return
    result.created += len(saved)
    result.warnings += [(line, w) for line, record in zip(lines, saved, strict=True) for w in record.get("_warnings", [])]


def _row_values(headers: list[str], columns: dict[int, Field], lookups: _Lookups, line: int, row: list[str],
                result: ImportResult) -> dict[str, Any] | None:
    """The field values a line's cells give (references resolved), or None when a cell names no
    record (a problem is recorded)."""
    values: dict[str, Any] = {}
    before = len(result.problems)
    for i, f in columns.items():
        text = row[i].strip() if i < len(row) else ""
        if not text:
            continue
        if f.type in ("reference", "user") or f.name == "owner":
            found = lookups.id_of(f, text)
            if isinstance(found, Message):
                result.problems.append(Problem(line, headers[i], found))
                continue
            values[f.name] = found
        else:
            values[f.name] = text
    return values if len(result.problems) == before else None
