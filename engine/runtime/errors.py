"""Errors a caller can cause. Each carries translatable messages; none leaks SQL or internals."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.i18n import Message


class RecordError(Exception):
    """Base of every caller-caused runtime error."""

    status = 400

    def __init__(self, message: Message) -> None:
        self.message = message
        super().__init__(str(message))

    def as_dict(self, language: str = "en") -> dict[str, Any]:
        return {"error": type(self).__name__, "message": self.message.text(language)}


class ValidationFailed(RecordError):
    """One or more fields are wrong; `errors` maps field name ("" for the record) to messages."""

    status = 422

    def __init__(self, errors: Mapping[str, list[Message]]) -> None:
        self.errors = {k: list(v) for k, v in errors.items()}
        summary = "; ".join(f"{k or 'record'}: {m}" for k, ms in self.errors.items() for m in ms)
        super().__init__(Message("rejected", {"message": summary}))

    def summary(self, language: str = "en") -> str:
        return "; ".join(f"{k or 'record'}: {m.text(language)}" for k, ms in self.errors.items() for m in ms)

    def as_dict(self, language: str = "en") -> dict[str, Any]:
        return {
            "error": "ValidationFailed",
            "message": self.summary(language),
            "fields": {k: [m.text(language) for m in ms] for k, ms in self.errors.items()},
        }


class Rejected(ValidationFailed):
    """A hook refused the change."""


class NotFound(RecordError):
    status = 404


class Conflict(RecordError):
    """The record changed since the caller read it (stale version)."""

    status = 409


class Forbidden(RecordError):
    status = 403


class BadQuery(RecordError):
    """An unknown field, operator, value or cursor in a query."""

    status = 400
