"""Tools a ReAct loop may call: a name, a description the model reads, and a function str -> str.

    calculator()          arithmetic on numbers only, by walking the syntax tree (never eval)
    docs_search(retriever) the kit's retrieval (src/kit/rag/retrieval.py) over the indexed docs

A tool's function may raise; the loop (react.py) turns the exception into an observation for
the model. `calculate` is the security boundary here: model output is untrusted input, so it
accepts numbers, + - * / // % ** and parentheses, and refuses names, calls, attributes and
anything else, with a message saying what is allowed.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from kit.rag.retrieval import Hit

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
MAX_CHARS = 200
MAX_EXPONENT = 100  # 10 ** 100 is fine; 9 ** 9 ** 9 would take the process down
MAX_BITS = 10_000  # integers up to about 3,000 digits


@dataclass(frozen=True)
class Tool:
    name: str  # what the model writes after "Action:"
    description: str  # what the model reads to decide when to use it
    run: Callable[[str], str]


class UnsafeExpression(ValueError):
    """The calculator refused an expression: not plain arithmetic, or too large."""


def calculate(expression: str) -> Number:
    """Evaluate plain arithmetic: calculate("2 * (3 + 4) ** 2") -> 98."""
    text = expression.strip().strip("`").strip()
    if len(text) > MAX_CHARS:
        raise UnsafeExpression(f"the expression is longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise UnsafeExpression(f"{text!r} is not an arithmetic expression") from None
    return _evaluate(tree.body)


def _evaluate(node: ast.expr) -> Number:
    # bool is a subclass of int: True + True is not arithmetic anyone meant.
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool):
            raise UnsafeExpression(f"{node.value} is not a number")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise UnsafeExpression(f"exponents above {MAX_EXPONENT} are refused")
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        raise UnsafeExpression("^ is not a power here: write 2 ** 3")
    raise UnsafeExpression(
        f"{ast.unparse(node)!r} is not allowed: use numbers, + - * / // % ** and parentheses"
    )


def _checked(value: Any) -> Number:
    if isinstance(value, complex):  # (-8) ** 0.5
        raise UnsafeExpression("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise UnsafeExpression("the result is too large")
    result: Number = value
    return result


def calculator() -> Tool:
    def run(expression: str) -> str:
        value = calculate(expression)
        return str(round(value, 10) if isinstance(value, float) else value)

    return Tool(
        "calculator",
        "evaluates arithmetic such as 12 * (3 + 4) / 2; numbers and + - * / ** only",
        run,
    )


class Searcher(Protocol):
    """What docs_search needs: kit.rag.retrieval.Retriever fits."""

    def search(self, query: str, *, k: int = 5) -> list[Hit]: ...


def docs_search(retriever: Searcher, k: int = 3, chars: int = 300) -> Tool:
    """The top k chunks for a query, each as "[title] text" cut to `chars` characters."""

    def run(query: str) -> str:
        hits = retriever.search(query, k=k)
        if not hits:
            return "No documents matched."
        return "\n".join(f"[{hit.title}] {' '.join(hit.text.split())[:chars]}" for hit in hits)

    return Tool(
        "docs_search",
        "searches the FastAPI documentation; input is a search query",
        run,
    )
