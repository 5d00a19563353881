"""Engine messages in every supported language.

Errors carry a message code and parameters, not a finished sentence, so the UI can show them in
the user's language while logs and the CLI use English.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LANGUAGES = ("en", "zh")

CATALOG: dict[str, dict[str, str]] = {
    "required": {"en": "This field is required.", "zh": "此项为必填项。"},
    "not_a_string": {"en": "Expected text.", "zh": "应为文本。"},
    "too_long": {"en": "At most {max} characters.", "zh": "最多 {max} 个字符。"},
    "not_an_integer": {"en": "'{value}' is not a whole number.", "zh": "“{value}”不是整数。"},
    "not_a_number": {"en": "'{value}' is not a number.", "zh": "“{value}”不是数字。"},
    "too_small": {"en": "Must be at least {min}.", "zh": "不能小于 {min}。"},
    "too_large": {"en": "Must be at most {max}.", "zh": "不能大于 {max}。"},
    "too_many_digits": {"en": "Too many digits (at most {digits} before the point).", "zh": "数字位数过多（整数部分最多 {digits} 位）。"},
    "not_a_boolean": {"en": "'{value}' is not yes/no.", "zh": "“{value}”不是是/否。"},
    "not_a_date": {"en": "'{value}' is not a date (YYYY-MM-DD).", "zh": "“{value}”不是日期（YYYY-MM-DD）。"},
    "not_a_datetime": {"en": "'{value}' is not a date and time (YYYY-MM-DD HH:MM).", "zh": "“{value}”不是日期时间（YYYY-MM-DD HH:MM）。"},
    "not_an_email": {"en": "'{value}' is not an email address.", "zh": "“{value}”不是有效的邮箱地址。"},
    "not_a_phone": {"en": "'{value}' is not a phone number.", "zh": "“{value}”不是有效的电话号码。"},
    "not_a_url": {"en": "'{value}' is not a web address (http:// or https://).", "zh": "“{value}”不是有效的网址（http:// 或 https://）。"},
    "not_an_option": {"en": "'{value}' is not one of the options of {picklist}.", "zh": "“{value}”不是 {picklist} 的选项。"},
    "inactive_option": {"en": "'{value}' is no longer offered.", "zh": "“{value}”已停用。"},
    "not_a_list": {"en": "Expected a list of options.", "zh": "应为选项列表。"},
    "not_an_id": {"en": "'{value}' is not a record id.", "zh": "“{value}”不是记录编号。"},
    "no_such_record": {"en": "No {entity} with id {value}.", "zh": "不存在编号为 {value} 的{entity}。"},
    "no_such_user": {"en": "No user with id {value}.", "zh": "不存在编号为 {value} 的用户。"},
    "not_a_stage": {"en": "'{value}' is not a stage of this pipeline.", "zh": "“{value}”不是该流程的阶段。"},
    "stage_transition": {"en": "Cannot move from '{old}' to '{new}'.", "zh": "不能从“{old}”转到“{new}”。"},
    "stage_requires": {"en": "Required at stage '{stage}'.", "zh": "在“{stage}”阶段必须填写。"},
    "read_only": {"en": "This field is set by the system.", "zh": "此字段由系统设置。"},
    "unknown_field": {"en": "{entity} has no field '{value}'.", "zh": "{entity}没有字段“{value}”。"},
    "not_unique": {"en": "'{value}' is already used by another record.", "zh": "“{value}”已被其他记录使用。"},
    "bad_attachment": {"en": "Not an uploaded file.", "zh": "不是已上传的文件。"},
    "file_too_large": {"en": "The file is larger than {max}.", "zh": "文件大于 {max}。"},
    "referenced": {"en": "Cannot delete: {count} {entity} record(s) refer to it.", "zh": "无法删除：有 {count} 条{entity}记录引用了它。"},
    "stale_version": {"en": "Someone else changed this record (now version {current}, you edited version {given}). Reload it and apply your change again.", "zh": "其他人已修改此记录（当前版本 {current}，您编辑的是版本 {given}）。请重新加载后再修改。"},
    "not_found": {"en": "No {entity} with id {id}.", "zh": "不存在编号为 {id} 的{entity}。"},
    "unknown_entity": {"en": "There is no entity '{entity}'.", "zh": "不存在实体“{entity}”。"},
    "bad_filter": {"en": "Bad filter '{filter}': {reason}", "zh": "筛选条件“{filter}”有误：{reason}"},
    "bad_sort": {"en": "Cannot sort by '{field}'.", "zh": "不能按“{field}”排序。"},
    "bad_sum": {"en": "Cannot add up '{field}': it is not a number.", "zh": "不能对“{field}”求和：它不是数字。"},
    "bad_cursor": {"en": "The page cursor is invalid or expired.", "zh": "分页游标无效或已过期。"},
    "not_deleted": {"en": "This record is not in the recycle bin.", "zh": "此记录不在回收站中。"},
    "already_deleted": {"en": "This record is in the recycle bin.", "zh": "此记录已在回收站中。"},
    "rejected": {"en": "{message}", "zh": "{message}"},
    "no_match": {"en": "Nothing you may see is named '{text}'.", "zh": "找不到您可查看的名为“{text}”的记录或用户。"},
    "ambiguous_match": {"en": "Several records are named '{text}'; write #id (e.g. #123) instead.", "zh": "有多条记录名为“{text}”，请改写为 #编号（如 #123）。"},
    "version_required": {"en": "The record's version is required to update it.", "zh": "更新记录需要提供版本号。"},
    "bad_expression": {"en": "Cannot compute: {reason}", "zh": "无法计算：{reason}"},
}


def translate(code: str, language: str = "en", **params: Any) -> str:
    """The message `code` in `language` (falling back to English), with `params` filled in."""
    entry = CATALOG.get(code)
    if entry is None:
        return code
    template = entry.get(language) or entry["en"]
    # A parameter given as a label ({"en": ..., "zh": ...}) is shown in the message's language.
    params = {k: (v.get(language) or v.get("en") or "") if isinstance(v, dict) else v for k, v in params.items()}
    try:
        return template.format(**params)
    except (KeyError, IndexError):
        return template


@dataclass(frozen=True)
class Message:
    """A translatable message: a catalog code plus its parameters."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)

    def text(self, language: str = "en") -> str:
        if self.code == "rejected" and isinstance(self.params.get("message"), dict):
            labels = self.params["message"]
            return str(labels.get(language) or labels.get("en") or "")
        return translate(self.code, language, **self.params)

    def __str__(self) -> str:
        return self.text("en")
