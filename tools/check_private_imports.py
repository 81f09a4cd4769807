"""Fail if a complemjax module uses another module's private names.

One owner per primitive: a helper that two modules need lives in a shared private *module*
(``complemjax/_checks.py``) under a public name, or becomes public. Importing ``_name`` from another
module (``from complemjax.ranking import _per_user_metrics``) or reaching into it
(``ranking._zero_sign``) is refused. Run: ``python tools/check_private_imports.py``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "complemjax"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, here: str, is_pkg: bool) -> str:
    if not node.level:
        return node.module or ""
    base = here.split(".")
    base = base if is_pkg else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def check(path: Path) -> list[str]:
    here = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    problems: list[str] = []
    modules: dict[str, str] = {}  # local name -> complemjax module it names
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            src = _resolve(node, here, path.name == "__init__.py")
            if not src.startswith("complemjax"):
                continue
            for alias in node.names:
                name = alias.name
                target = f"{src}.{name}"
                if (PKG / Path(*target.split(".")[1:])).with_suffix(".py").exists() or (
                    PKG / Path(*target.split(".")[1:]) / "__init__.py"
                ).exists():
                    modules[alias.asname or name] = target
                    continue
                if name.startswith("_") and src != here:
                    problems.append(f"{path}:{node.lineno}: imports private `{name}` from {src}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("complemjax"):
                    modules[alias.asname or alias.name.split(".")[0]] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and modules[node.value.id] != here
        ):
            problems.append(
                f"{path}:{node.lineno}: uses private `{node.value.id}.{node.attr}` "
                f"of {modules[node.value.id]}"
            )
    return problems


def main() -> int:
    problems = [p for f in sorted(PKG.rglob("*.py")) for p in check(f)]
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} uses of another module's private names", file=sys.stderr)
        return 1
    print("no module uses another module's private names")
    return 0


if __name__ == "__main__":
    sys.exit(main())
