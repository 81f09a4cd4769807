"""Fail if a function or method in complemjax/ is longer than 100 lines.

A long function is split into named steps (issue 14, "one pattern per concept"). The length
of a function is counted from its ``def`` line (decorators excluded) to its last line,
docstring and comments included, as ``end_lineno - lineno + 1`` of the AST node; nested
functions count within their parent and on their own. Run:
``python tools/check_function_length.py [--max-lines N] [paths...]`` (default: complemjax/).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "complemjax"
MAX_LINES = 100


def long_functions(path: Path, max_lines: int = MAX_LINES) -> list[tuple[int, str, int]]:
    """``(line, qualified name, length)`` of every function in ``path`` over ``max_lines``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                length = child.end_lineno - child.lineno + 1
                if length > max_lines:
                    found.append((child.lineno, name, length))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, default=[PKG])
    parser.add_argument("--max-lines", type=int, default=MAX_LINES)
    args = parser.parse_args(argv)
    files = sorted(
        f for p in args.paths for f in (p.rglob("*.py") if p.is_dir() else [p]) if f.is_file()
    )
    problems = []
    for f in files:
        shown = f.resolve().relative_to(ROOT) if f.resolve().is_relative_to(ROOT) else f
        for line, name, length in long_functions(f, args.max_lines):
            problems.append(f"{shown}:{line}: {name} has {length} lines (max {args.max_lines})")
    for p in problems:
        print(p)
    if problems:
        print(
            f"{len(problems)} functions longer than {args.max_lines} lines; split them into "
            f"named steps",
            file=sys.stderr,
        )
        return 1
    print(f"no function in {len(files)} files is longer than {args.max_lines} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
