"""Sign-in sessions, CSRF tokens and failed-login throttling.

The session cookie (signed by Starlette's SessionMiddleware, itsdangerous) carries a random
token; the database keeps only its sha256 with the user and expiry, so signing out or an
administrator's reset really ends a session, and a leaked database does not leak live cookies.
The CSRF token lives in the same signed cookie and is renewed on sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from engine.runtime.service import Runtime
from engine.runtime.users import User, user_of, user_statement, with_roles

SESSION_LIFETIME = timedelta(hours=12)
RENEW_AFTER = timedelta(hours=1)  # extend a session used after an hour, not on every request

# Throttling: this many failures within the window lock the key (account or address) for LOCKOUT.
ACCOUNT_FAILURES = 5
ADDRESS_FAILURES = 20
WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_matches(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def start_session(runtime: Runtime, user: User, address: str | None) -> str:
    """A new session for `user`; the returned token goes into the cookie."""
    token = new_token()
    now = runtime.now()
    sessions, users = runtime.table("crm_session"), runtime.table("crm_user")
    with runtime.engine.begin() as conn:
        conn.execute(sa.delete(sessions).where(sessions.c.expires_at < now))  # housekeeping
        conn.execute(sa.insert(sessions).values(id=digest(token), user_id=user.id, created_at=now,
                                                expires_at=now + SESSION_LIFETIME, address=(address or "")[:64]))
        conn.execute(sa.update(users).where(users.c.id == user.id).values(last_login_at=now))
    return token


def session_user(runtime: Runtime, token: str | None) -> User | None:
    """The signed-in user of a session token, or None when unknown or expired. One statement:
    the session joined with its (active) user and the user's roles."""
    if not token:
        return None
    sessions, users = runtime.table("crm_session"), runtime.table("crm_user")
    now = runtime.now()
    key = digest(token)
    stmt = (user_statement(runtime, sessions.c.expires_at)
            .select_from(with_roles(runtime, sessions.join(users, users.c.id == sessions.c.user_id)))
            .where(sessions.c.id == key))
    with runtime.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows or rows[0].expires_at <= now:
        return None
    if rows[0].expires_at - now < SESSION_LIFETIME - RENEW_AFTER:
        with runtime.engine.begin() as conn:
            conn.execute(sa.update(sessions).where(sessions.c.id == key).values(expires_at=now + SESSION_LIFETIME))
    return user_of(rows)


def end_session(runtime: Runtime, token: str | None) -> None:
    if token:
        sessions = runtime.table("crm_session")
        with runtime.engine.begin() as conn:
            conn.execute(sa.delete(sessions).where(sessions.c.id == digest(token)))


def end_all_sessions(runtime: Runtime, user_id: int, keep: str | None = None) -> None:
    """Sign a user out everywhere (after a password change), optionally keeping one session."""
    sessions = runtime.table("crm_session")
    stmt = sa.delete(sessions).where(sessions.c.user_id == user_id)
    if keep:
        stmt = stmt.where(sessions.c.id != digest(keep))
    with runtime.engine.begin() as conn:
        conn.execute(stmt)


# -- throttling -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Lockout:
    until: datetime

    def minutes_left(self, now: datetime) -> int:
        return max(1, int((self.until - now).total_seconds() // 60) + 1)


def throttle_keys(username: str, address: str | None) -> list[tuple[str, int]]:
    keys = [(f"user:{username.strip().lower()[:64]}", ACCOUNT_FAILURES)]
    if address:
        keys.append((f"addr:{address[:64]}", ADDRESS_FAILURES))
    return keys


def locked(runtime: Runtime, username: str, address: str | None) -> Lockout | None:
    failures = runtime.table("crm_login_failure")
    now = runtime.now()
    keys = [k for k, _ in throttle_keys(username, address)]
    with runtime.engine.connect() as conn:
        until = conn.execute(sa.select(sa.func.max(failures.c.locked_until))
                             .where(failures.c.key.in_(keys), failures.c.locked_until > now)).scalar()
    return Lockout(until) if until else None


def record_failure(runtime: Runtime, username: str, address: str | None) -> None:
    failures = runtime.table("crm_login_failure")
    now = runtime.now()
    with runtime.engine.begin() as conn:
        for key, limit in throttle_keys(username, address):
            row = conn.execute(sa.select(failures).where(failures.c.key == key)).mappings().first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(sa.insert(failures).values(key=key, failures=1, first_at=now))
                    continue
                except sa.exc.IntegrityError:  # a concurrent failure inserted it first
                    row = conn.execute(sa.select(failures).where(failures.c.key == key)).mappings().one()
            count = 1 if row["first_at"] < now - WINDOW else row["failures"] + 1
            first_at = now if count == 1 else row["first_at"]
            conn.execute(sa.update(failures).where(failures.c.key == key).values(
                failures=count, first_at=first_at, locked_until=now + LOCKOUT if count >= limit else None))


def clear_failures(runtime: Runtime, username: str) -> None:
    failures = runtime.table("crm_login_failure")
    with runtime.engine.begin() as conn:
        conn.execute(sa.delete(failures).where(failures.c.key == throttle_keys(username, None)[0][0]))
