"""List public functions whose parameters or return are not annotated.

Public: a module-level ``def`` or a method of a module-level class, neither name starting
with ``_`` (``self``/``cls`` and ``*``/``**`` markers are not counted; ``__init__`` and
other dunders are skipped). Exit status 1 when anything is listed.

Usage: python tools/check_annotations.py [FILE_OR_DIR ...] (default: complemjax/)
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def _missing(fn: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[str]:
    a = fn.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    if is_method and params and params[0].arg in ("self", "cls"):
        decos = {getattr(d, "id", getattr(d, "attr", "")) for d in fn.decorator_list}
        if "staticmethod" not in decos:
            params = params[1:]
    params += [p for p in (a.vararg, a.kwarg) if p is not None]
    out = [p.arg for p in params if p.annotation is None]
    if fn.returns is None:
        out.append("->return")
    return out


def scan(path: Path) -> list[tuple[str, str, list[str]]]:
    """Return ``(file:line, qualified name, missing)`` for every incomplete public def."""
    tree = ast.parse(path.read_text(), filename=str(path))
    rows = []
    funcs = (ast.FunctionDef, ast.AsyncFunctionDef)
    for node in tree.body:
        if isinstance(node, funcs) and not node.name.startswith("_"):
            if miss := _missing(node, False):
                rows.append((f"{path}:{node.lineno}", node.name, miss))
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for sub in node.body:
                if isinstance(sub, funcs) and not sub.name.startswith("_"):
                    if miss := _missing(sub, True):
                        rows.append((f"{path}:{sub.lineno}", f"{node.name}.{sub.name}", miss))
    return rows


def main(argv: list[str]) -> int:
    targets = [Path(a) for a in argv] or [Path("complemjax")]
    files = sorted(f for t in targets for f in ([t] if t.is_file() else t.rglob("*.py")))
    rows = [r for f in files for r in scan(f)]
    for where, name, miss in rows:
        print(f"{where}: {name}: {', '.join(miss)}")
    n_args = sum(len([m for m in miss if m != "->return"]) for _, _, miss in rows)
    n_ret = sum("->return" in miss for _, _, miss in rows)
    print(
        f"{len(rows)} public functions incomplete in {len(files)} files: "
        f"{n_args} unannotated parameters, {n_ret} missing return annotations"
    )
    return 1 if rows else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
