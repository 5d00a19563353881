"""Safe arithmetic expressions for computed fields.

Python's parser reads the text into a tree; we evaluate only an allow-list of node kinds
(numbers, field names, + - * /, unary minus, and a few functions). Nothing is ever `eval`ed.
Empty operands make the result empty; division by zero gives empty, not an error.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from decimal import ROUND_HALF_UP, Decimal, DivisionByZero, InvalidOperation
from typing import Any

FUNCTIONS: dict[str, Callable[..., Any]] = {
    "round": lambda x, n=0: None if x is None else x.quantize(Decimal(1).scaleb(-int(n)), ROUND_HALF_UP),
    "min": lambda *xs: None if None in xs else min(xs),
    "max": lambda *xs: None if None in xs else max(xs),
    "abs": lambda x: None if x is None else abs(x),
    "coalesce": lambda *xs: next((x for x in xs if x is not None), None),
}
OPERATORS: dict[type[ast.operator], Callable[[Decimal, Decimal], Decimal]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


class ExpressionError(ValueError):
    pass


def parse(text: str) -> ast.expr:
    """Parse and check an expression; raises ExpressionError naming what is not allowed."""
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error in expression: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp) and type(node.op) not in OPERATORS:
            raise ExpressionError("only + - * / are allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise ExpressionError(f"unknown function (allowed: {', '.join(sorted(FUNCTIONS))})")
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                raise ExpressionError("only numbers are allowed as constants")
        elif not isinstance(node, ast.BinOp | ast.UnaryOp | ast.Name | ast.Load | ast.operator
                            | ast.USub | ast.UAdd | ast.Call | ast.Constant | ast.unaryop):
            raise ExpressionError(f"'{type(node).__name__}' is not allowed in an expression")
        if isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.USub | ast.UAdd):
            raise ExpressionError("only unary - and + are allowed")
    return tree


def names(tree: ast.expr) -> set[str]:
    """Field names an expression reads (function names excluded)."""
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in calls}


def evaluate(tree: ast.expr, values: Mapping[str, Any]) -> Decimal | None:
    def ev(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return Decimal(str(node.value))
        if isinstance(node, ast.Name):
            value = values.get(node.id)
            if value is None or isinstance(value, bool):
                return None if value is None else Decimal(int(value))
            return value if isinstance(value, Decimal) else Decimal(str(value))
        if isinstance(node, ast.UnaryOp):
            operand = ev(node.operand)
            return None if operand is None else (-operand if isinstance(node.op, ast.USub) else operand)
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if left is None or right is None:
                return None
            return OPERATORS[type(node.op)](left, right)
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return FUNCTIONS[node.func.id](*[ev(a) for a in node.args])
        raise ExpressionError(type(node).__name__)

    try:
        return ev(tree)
    except (DivisionByZero, InvalidOperation, ZeroDivisionError):
        return None
    except TypeError as exc:
        raise ExpressionError(str(exc)) from None
