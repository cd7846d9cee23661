"""Spectral indices (光谱指数) and safe user expressions over band roles.

User expressions (``"(nir - red) / (nir + red)"``) are parsed with :mod:`ast` and evaluated by walking an
allowlist of node types: numbers, band names, ``+ - * / **`` (small constant exponents), unary minus,
comparisons and a few numpy functions. Never ``eval``; attribute access, subscripts, calls to anything else,
names that are not bands, long or deeply nested expressions are refused with :class:`UnsafeInputError`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

import numpy as np

from tuban.errors import UnsafeInputError
from tuban.raster.profiles import ROLES

__all__ = ["INDICES", "compile_expression", "expression_roles", "normalized_difference"]

_EPS = np.float32(1e-6)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(a - b) / (a + b)``, 0 where ``a + b`` is 0."""
    den = np.add(a, b, dtype=np.float32)
    out = np.subtract(a, b, dtype=np.float32)
    ok = np.abs(den) > _EPS
    np.divide(out, den, out=out, where=ok)
    out[~ok] = 0
    return out


#: named indices: name → (roles, function of a role → array mapping)
INDICES: dict[str, tuple[tuple[str, ...], Callable[[dict[str, np.ndarray]], np.ndarray]]] = {
    "ndvi": (("nir", "red"), lambda b: normalized_difference(b["nir"], b["red"])),
    "ndwi": (("green", "nir"), lambda b: normalized_difference(b["green"], b["nir"])),
    "mndwi": (("green", "swir1"), lambda b: normalized_difference(b["green"], b["swir1"])),
    "ndbi": (("swir1", "nir"), lambda b: normalized_difference(b["swir1"], b["nir"])),
    "bsi": (("swir1", "red", "nir", "blue"),
            lambda b: normalized_difference(b["swir1"] + b["red"], b["nir"] + b["blue"])),
    "brightness": (("red", "green", "blue"), lambda b: (b["red"] + b["green"] + b["blue"]) / np.float32(3)),
    # visible-band greenness for RGB-only imagery (excess green, normalised)
    "vari": (("green", "red", "blue"),
             lambda b: normalized_difference(b["green"], b["red"]) - np.float32(0.5) * normalized_difference(
                 b["blue"], b["green"])),
}

_MAX_LEN = 500
_MAX_NODES = 200
_MAX_DEPTH = 30
_FUNCS: dict[str, Callable[..., np.ndarray]] = {
    "abs": np.abs, "sqrt": np.sqrt, "log": np.log, "exp": np.exp, "minimum": np.minimum, "maximum": np.maximum,
    "where": np.where, "clip": np.clip,
}
_BINOPS = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.divide, ast.Pow: np.power}
_CMPOPS = {ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater, ast.GtE: np.greater_equal}


def _depth(node: ast.AST) -> int:
    kids = list(ast.iter_child_nodes(node))
    return 1 + (max(_depth(k) for k in kids) if kids else 0)


def _check(tree: ast.Expression, text: str) -> set[str]:
    names: set[str] = set()
    nodes = list(ast.walk(tree))
    if len(nodes) > _MAX_NODES or _depth(tree) > _MAX_DEPTH:
        raise UnsafeInputError(f"expression too complex ({len(nodes)} nodes)", hint=f"keep it under {_MAX_NODES}")
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.USub, ast.UAdd, ast.Constant, ast.Name, ast.Load,
               ast.Call, ast.Compare, *_BINOPS, *_CMPOPS)
    for node in nodes:
        if not isinstance(node, allowed):
            raise UnsafeInputError(f"expression {text!r}: {type(node).__name__} is not allowed",
                                   hint="use band roles, numbers, + - * / **, comparisons and abs/sqrt/log/…")
        if isinstance(node, ast.Constant) and not (isinstance(node.value, int | float)
                                                   and not isinstance(node.value, bool)):
            raise UnsafeInputError(f"expression {text!r}: only numeric constants are allowed")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCS or node.keywords:
                raise UnsafeInputError(f"expression {text!r}: only calls of {sorted(_FUNCS)} are allowed")
        elif isinstance(node, ast.Name) and node.id not in _FUNCS:
            if node.id not in ROLES:
                raise UnsafeInputError(f"expression {text!r}: unknown name {node.id!r}",
                                       hint=f"names are band roles: {', '.join(ROLES)}")
            names.add(node.id)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow) and not (
            isinstance(node.right, ast.Constant) and isinstance(node.right.value, int | float)
            and abs(float(node.right.value)) <= 8
        ):
            raise UnsafeInputError(f"expression {text!r}: exponents must be constants ≤ 8")
        if isinstance(node, ast.Compare) and len(node.ops) != 1:
            raise UnsafeInputError(f"expression {text!r}: chained comparisons are not allowed")
    return names


def _parse(text: str) -> tuple[ast.Expression, set[str]]:
    if not isinstance(text, str) or not text.strip():
        raise UnsafeInputError("empty expression")
    if len(text) > _MAX_LEN:
        raise UnsafeInputError(f"expression of {len(text)} characters is longer than {_MAX_LEN}")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise UnsafeInputError(f"expression {text!r} does not parse: {exc}") from None
    return tree, _check(tree, text)


def expression_roles(text: str) -> tuple[str, ...]:
    """The band roles an expression uses (validating it)."""
    return tuple(sorted(_parse(text)[1]))


def compile_expression(text: str) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """Validate ``text`` and return a function of a role → array mapping."""
    tree, _ = _parse(text)

    def ev(node: ast.AST, bands: dict[str, np.ndarray]):
        if isinstance(node, ast.Expression):
            return ev(node.body, bands)
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return np.float32(node.value)
        if isinstance(node, ast.Name):
            return bands[node.id]
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand, bands)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return _BINOPS[type(node.op)](ev(node.left, bands), ev(node.right, bands))
        if isinstance(node, ast.Compare):
            return _CMPOPS[type(node.ops[0])](ev(node.left, bands), ev(node.comparators[0], bands))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return _FUNCS[node.func.id](*(ev(a, bands) for a in node.args))
        raise UnsafeInputError(f"unexpected node {type(node).__name__}")  # pragma: no cover

    def run(bands: dict[str, np.ndarray]) -> np.ndarray:
        out = np.asarray(ev(tree, bands), dtype=np.float32)
        return np.where(np.isfinite(out), out, np.float32(0))

    return run
