"""Every ```python block of README.md runs as written (in order, one shared namespace).

A block fenced as ```python is executed; blocks meant as fragments to adapt (for example
the multi-host recipe) are fenced ```text or marked with a first line ``# not run``.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    return [b for b in BLOCK.findall(text) if not b.lstrip().startswith("# not run")]


def test_readme_has_python_blocks():
    assert _blocks(), "README.md has no ```python block"


@pytest.mark.slow
def test_readme_blocks_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for n, block in enumerate(_blocks(), 1):
        try:
            exec(compile(block, f"README.md block {n}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the failure message is the point
            pytest.fail(f"README.md python block {n} failed: {type(e).__name__}: {e}")
