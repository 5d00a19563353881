"""The floor: the customer list, detail and search pages of the standard CRM written by hand
with Starlette, SQLAlchemy Core and Jinja2, and no metadata engine.

It reads the engine's tables (the same rows), runs the same statements the engine runs for
these pages (same WHERE, scope, ORDER BY, LIMIT and capped count, so the same query plans),
and renders comparable HTML. What it leaves out is what a hand-written app does not need: the
registry, field types, generic decoding and formatting, role tables (an admin sees all, anyone
else their own customers plus the pool and what is shared with them).

    uvicorn --factory bench.floor.app:create_app     (BENCH_DATABASE_URL, BENCH_SECRET)
"""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import sqlalchemy as sa
import yaml
from argon2 import PasswordHasher
from argon2.exceptions import VerifyMismatchError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

HERE = Path(__file__).parent
PICKLISTS = HERE.parent.parent / "packs" / "standard_crm" / "picklists"
COUNT_LIMIT = 2_000  # the engine's query.COUNT_LIMIT
PAGE = 50
COLUMNS = ("code", "name", "customer_type", "industry", "value_grade", "maturity", "city", "phone",
           "last_follow_up_at", "next_follow_up_at")
CHOICES = {"customer_type": "customer_type", "industry": "industry", "value_grade": "value_grade",
           "maturity": "customer_maturity", "category": "customer_category", "source": "customer_source",
           "province": "province", "status": "customer_status", "company_size": "company_size"}
HEADINGS = {"code": "客户编号", "name": "客户名称", "customer_type": "客户类型", "industry": "所属行业",
            "value_grade": "价值等级", "maturity": "客户成熟度", "city": "城市", "phone": "电话",
            "last_follow_up_at": "最近跟进时间", "next_follow_up_at": "下次跟进时间", "owner": "负责人"}
# (table, label, via): the customer detail's related tabs, counted as the engine counts them.
RELATED = (("contact", "联系人", "customer"), ("follow_up", "跟进记录", "customer"), ("activity", "行动", "customer"),
           ("opportunity", "商机", "customer"), ("quote", "报价单", "customer"), ("order", "订单", "customer"),
           ("service_request", "服务请求", "customer"), ("customer", "下级客户", "parent"))
# Global search: (table, label, title, searched columns, ORDER BY, scoped to the owner for non-admins)
SEARCH = (
    ("activity", "行动", "subject", ("subject",), "planned_start DESC NULLS LAST", True),
    ("campaign", "市场活动", "name", ("name",), "start_date DESC NULLS LAST", False),
    ("competitor", "竞争对手", "name", ("name",), "name ASC NULLS LAST", False),
    ("contact", "联系人", "name", ("name", "mobile", "office_phone", "email", "im_account"), None, True),
    ("customer", "客户", "name", ("name", "mnemonic", "code", "phone"), "updated_at DESC NULLS LAST", True),
    ("department", "部门", "name", ("name", "code"), "code ASC NULLS LAST, name ASC NULLS LAST", False),
    ("employee", "员工", "name", ("name", "employee_no", "mobile", "email"), "name ASC NULLS LAST", False),
    ("expense", "费用", "subject", ("subject",), "expense_date DESC NULLS LAST", True),
    ("follow_up", "跟进记录", "subject", ("subject",), "followed_up_at DESC NULLS LAST", True),
    ("knowledge_article", "知识库", "title", ("title", "tags", "content"), "updated_at DESC NULLS LAST", False),
    ("lead", "线索", "company", ("company", "contact_name", "phone", "mobile", "email"), "created_at DESC NULLS LAST", True),
    ("opportunity", "商机", "name", ("name",), "expected_close_date ASC NULLS LAST", True),
    ("order", "订单", "code", ("code", "customer_po"), "order_date DESC NULLS LAST", True),
    ("partner", "合作伙伴", "name", ("name", "contact_person", "phone"), "name ASC NULLS LAST", False),
    ("price_list", "价格表", "name", ("name",), "valid_from DESC NULLS LAST", False),
    ("product", "产品", "name", ("code", "name", "specification"), "code ASC NULLS LAST", False),
    ("quote", "报价单", "code", ("code", "subject"), "quote_date DESC NULLS LAST", True),
    ("sales_target", "销售目标", "name", ("name",), "year DESC NULLS LAST, month ASC NULLS LAST", True),
    ("service_request", "服务请求", "subject", ("code", "subject", "serial_number"), "created_at DESC NULLS LAST", True),
)

HASHER = PasswordHasher()


def picklists() -> dict[str, dict[str, str]]:
    out = {}
    for path in PICKLISTS.glob("*.yaml"):
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        out[doc["picklist"]] = {o["key"]: o["label"]["zh"] for o in doc.get("options", [])}
    return out


def floor_like(column: str, param: str, sqlite: bool) -> str:
    """What SQLAlchemy's ilike() renders: lower() LIKE lower() on SQLite, ILIKE on PostgreSQL."""
    if sqlite:
        return f"lower({column}) like lower({param}) escape '\\'"
    return f"{column} ilike {param} escape '\\'"


def fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        return value[:16]  # a datetime as SQLite stores it
    if isinstance(value, Decimal):
        return f"¥{value:,.2f}"
    return str(value)


class Floor:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite"):
            self.engine = sa.create_engine(url, connect_args={"timeout": 30})
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.sqlite = url.startswith("sqlite")
        self.labels = picklists()
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
        self.templates.filters["fmt"] = fmt

    def q(self, sql: str) -> sa.TextClause:
        # The engine writes booleans as IS 1 on SQLite and IS true on PostgreSQL; so do we.
        return sa.text(sql.replace(":true", "1" if self.sqlite else "true"))

    def user(self, conn: sa.Connection, uid: Any) -> sa.RowMapping | None:
        if not uid:
            return None
        return conn.execute(sa.text("select id, display_name, is_admin from crm_user where id = :id and is_active"),
                            {"id": uid}).mappings().first()

    def scope(self, user: sa.RowMapping, table: str, pool: bool, walk_sort_index: bool = False) -> tuple[str, dict[str, Any]]:
        if user["is_admin"]:
            return "", {}
        quoted = f'"{table}"'
        # The list page, as the engine writes it (access.Unindexed): on SQLite `+col` keeps the
        # OR's branches from being planned as a multi-index OR, so the planner walks the sort
        # index instead. (The engine's search narrows by its FTS index first; the floor's scans.)
        plus = "+" if self.sqlite and walk_sort_index else ""
        sql = (f" and ({plus}{quoted}.owner = :me or {plus}{quoted}.id in (select record_id from crm_share "
               f"where entity = :entity_{table} and user_id = :me)"
               + (f" or {plus}{quoted}.in_pool is :true" if pool else "") + ")")
        return sql, {"me": user["id"], f"entity_{table}": table}

    # -- pages --------------------------------------------------------------------------------
    def customers(self, request: Request, user: sa.RowMapping, conn: sa.Connection) -> str:
        params = request.query_params
        scope, args = self.scope(user, "customer", pool=True, walk_sort_index=True)
        where = "customer.deleted_at is null" + scope
        for name in ("industry", "value_grade"):
            if params.get(name):
                where += f" and customer.{name} = :{name}"
                args[name] = params[name]
        # The engine's ORDER BY: the id follows the first key's direction, and a NOT NULL column
        # (updated_at) gets no NULLS LAST, so the (updated_at, id) index serves it backwards.
        if params.get("sort") == "name":
            order = "customer.name asc nulls last, customer.id asc"
            page_where = where
        else:
            order = "customer.updated_at desc, customer.id desc"
            page_where = where
            if params.get("after_at"):
                page_where += " and (customer.updated_at < :at or (customer.updated_at = :at and customer.id < :after))"
                args["at"] = params["after_at"]  # as the database wrote it (SQLite keeps text)
                args["after"] = int(params.get("after_id", 0))
        rows = conn.execute(self.q(
            f"select customer.id, {', '.join('customer.' + c for c in COLUMNS)}, customer.updated_at, "
            f"t_owner.display_name as owner_name from customer left outer join crm_user as t_owner "
            f"on t_owner.id = customer.owner where {page_where} order by {order} limit {PAGE + 1}"), args).mappings().all()
        total = conn.execute(self.q(f"select count(*) from (select customer.id from customer where {where} "
                                    f"limit {COUNT_LIMIT + 1}) as counted"), args).scalar_one()
        users = conn.execute(self.q("select id, display_name from crm_user where is_active is :true "
                                    "order by display_name")).all()
        more = len(rows) > PAGE
        rows = rows[:PAGE]
        labels = {c: self.labels[CHOICES[c]] for c in COLUMNS if c in CHOICES}
        next_url = ""
        if more and rows and params.get("sort") != "name":
            last = rows[-1]
            at = last["updated_at"]
            at = at.isoformat(sep=" ", timespec="microseconds") if isinstance(at, datetime) else str(at)
            next_url = "/customers?" + urlencode({"after_at": at, "after_id": last["id"]})
        return self.templates.get_template("list.html").render(
            user=user, rows=rows, total=min(total, COUNT_LIMIT), capped=total > COUNT_LIMIT, columns=COLUMNS,
            headings=HEADINGS, labels=labels, choices=CHOICES, all_labels=self.labels, users=users,
            params=params, next_url=next_url)

    def customer(self, request: Request, user: sa.RowMapping, conn: sa.Connection) -> str | None:
        scope, args = self.scope(user, "customer", pool=True)
        args["id"] = int(request.path_params["id"])
        row = conn.execute(self.q(
            "select customer.*, t_parent.name as parent_name, t_owner.display_name as owner_name, "
            "t_created_by.display_name as created_by_name, t_updated_by.display_name as updated_by_name "
            "from customer left outer join customer as t_parent on t_parent.id = customer.parent "
            "left outer join crm_user as t_created_by on t_created_by.id = customer.created_by "
            "left outer join crm_user as t_updated_by on t_updated_by.id = customer.updated_by "
            "left outer join crm_user as t_owner on t_owner.id = customer.owner "
            f"where customer.id = :id and customer.deleted_at is null{scope}"), args).mappings().first()
        if row is None:
            return None
        tabs = []
        for table, label, via in RELATED:
            child_scope, child_args = self.scope(user, table, pool=table == "customer")
            n = conn.execute(self.q(f'select "{table}".{via} as g, count(*) as n from "{table}" '
                                    f'where "{table}".deleted_at is null{child_scope} and "{table}".{via} = :id '
                                    f'group by "{table}".{via}'), {**child_args, "id": row["id"]}).all()
            tabs.append((label, sum(r.n for r in n)))
        return self.templates.get_template("detail.html").render(
            user=user, row=row, tabs=tabs, labels={c: self.labels[p] for c, p in CHOICES.items()})

    def search(self, request: Request, user: sa.RowMapping, conn: sa.Connection) -> str:
        typed = request.query_params.get("q", "").strip()
        groups = []
        if typed:
            terms = typed.split()[:5]
            for table, label, title, columns, order, scoped in SEARCH:
                scope, args = self.scope(user, table, pool=table == "customer") if scoped else ("", {})
                like = []
                for n, term in enumerate(terms):
                    args[f"t{n}"] = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
                    like.append("(" + " or ".join(floor_like(f'"{table}".{c}', f":t{n}", self.sqlite)
                                                  for c in columns) + ")")
                if table == "contact":  # sorted by the customer's name, as the engine does
                    sql = (f"select contact.id, contact.name as title from contact left outer join customer as t_customer "
                           f"on t_customer.id = contact.customer where contact.deleted_at is null{scope} and "
                           f"{' and '.join(like)} order by t_customer.name asc nulls last, contact.name asc nulls last, "
                           f"contact.id asc nulls last limit 9")
                else:
                    sql = (f'select "{table}".id, "{table}".{title} as title from "{table}" where "{table}".deleted_at is null'
                           f'{scope} and {" and ".join(like)} order by {order}, "{table}".id asc nulls last limit 9')
                rows = conn.execute(self.q(sql), args).all()
                if rows:
                    groups.append({"table": table, "label": label, "rows": rows[:8], "more": len(rows) > 8})
        return self.templates.get_template("search.html").render(user=user, q=typed, groups=groups)


def create_app() -> Starlette:
    floor = Floor(os.environ["BENCH_DATABASE_URL"])

    def page(render: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            def run() -> Response:
                with floor.engine.connect() as conn:
                    user = floor.user(conn, request.session.get("uid"))
                    if user is None:
                        return RedirectResponse("/login", status_code=303)
                    html = render(request, user, conn)
                return HTMLResponse(html) if html is not None else HTMLResponse("Not found", status_code=404)
            return await run_in_threadpool(run)
        return endpoint

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return HTMLResponse('<form method="post"><input name="username"><input name="password" type="password">'
                                '<button>Sign in</button></form>')
        form = await request.form()

        def check() -> int | None:
            with floor.engine.connect() as conn:
                row = conn.execute(sa.text("select id, password_hash from crm_user where username = :u and is_active"),
                                   {"u": str(form.get("username", ""))}).first()
            if row is None:
                return None
            try:
                HASHER.verify(row.password_hash, str(form.get("password", "")))
            except VerifyMismatchError:
                return None
            return int(row.id)

        uid = await run_in_threadpool(check)
        if uid is None:
            return HTMLResponse("Wrong user name or password", status_code=401)
        request.session["uid"] = uid
        return RedirectResponse("/customers", status_code=303)

    app = Starlette(
        routes=[Route("/login", login, methods=["GET", "POST"]), Route("/customers", page(floor.customers)),
                Route("/customers/{id:int}", page(floor.customer)), Route("/search", page(floor.search))],
        middleware=[Middleware(SessionMiddleware, secret_key=os.environ.get("BENCH_SECRET", "floor"),
                               session_cookie="floor_session")])
    app.state.floor = floor
    return app
