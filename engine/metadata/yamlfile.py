"""Reading YAML with the line of every value, so each error can name FILE:LINE: PATH."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathKey = tuple[str | int, ...]


@dataclass(frozen=True)
class PackError:
    """One problem in a pack, located as precisely as we can."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:" if self.line else f"{self.file}:"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where} {self.message}"


def dotted(path: PathKey) -> str:
    """('fields', 'amount', 'type') -> 'fields.amount.type'; indexes as [i]."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


@dataclass
class Document:
    """One YAML document of a pack, with line numbers for every path in it."""

    kind: str  # pack | entity | picklist | role | locale
    file: str  # shown in errors
    data: Any
    lines: dict[PathKey, int] = field(default_factory=dict)
    pack: str = ""

    def line(self, path: PathKey) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)

    def error(self, path: PathKey, message: str) -> PackError:
        return PackError(self.file, self.line(path), dotted(path), message)

    @property
    def key(self) -> str:
        """The name the document defines or extends."""
        if not isinstance(self.data, dict):
            return ""
        return str(self.data.get("extend") or self.data.get(self.kind) or "")

    @property
    def extends(self) -> bool:
        return isinstance(self.data, dict) and "extend" in self.data


# libyaml's parser (in PyYAML's wheels) reads packs about 5x faster than the pure-Python one; its
# nodes carry the same line marks, so errors keep their FILE:LINE.
_Base: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    pass


def _no_dates(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # Dates stay strings: the field types parse them, and JSON Schema sees plain YAML.
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _no_dates)


def _walk(node: yaml.Node, path: PathKey, lines: dict[PathKey, int], duplicates: list[tuple[PathKey, int]]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            here = path + (key,)
            if here in lines:  # YAML would silently keep only the last one
                duplicates.append((here, lines[here]))
                for old in [p for p in lines if p[:len(here)] == here]:
                    del lines[old]  # the lines of the value that wins, and no repeats below it
            _walk(value_node, here, lines, duplicates)
            lines[here] = key_node.start_mark.line + 1  # the key's line, not the value's
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), lines, duplicates)


def read_document(path: Path, kind: str, shown_as: str) -> tuple[Document | None, list[PackError]]:
    """Parse one YAML file; syntax errors come back as PackErrors, never as exceptions."""
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [PackError(shown_as, 0, "", f"cannot read file: {exc}")]
    try:
        loader = _Loader(source)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        problem = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem:
            started = exc.context_mark.line + 1 if exc.context_mark else 0
            where = f" that starts on line {started}" if started and started != line else ""
            problem += f" ({exc.context}{where})"
        return None, [PackError(shown_as, line, "", f"YAML syntax error: {problem}")]
    except yaml.YAMLError as exc:
        return None, [PackError(shown_as, 0, "", f"YAML error: {exc}")]
    lines: dict[PathKey, int] = {}
    duplicates: list[tuple[PathKey, int]] = []
    if node is not None:
        _walk(node, (), lines, duplicates)
    if not isinstance(data, dict):
        return None, [PackError(shown_as, 1, "", "expected a mapping (key: value pairs) at the top level")]
    doc = Document(kind, shown_as, data, lines)
    return doc, [PackError(shown_as, lines[p], dotted(p), f"duplicate key: it is also on line {first}")
                 for p, first in duplicates]
