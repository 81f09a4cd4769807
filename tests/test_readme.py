"""Every ```python block of README.md runs as written (in order, one shared namespace).

Blocks whose first line is ``# not run`` are recipes to adapt (e.g. the multi-host sweep);
blocks whose first line starts with ``# slow`` (the real-data tour trains a model on
MovieLens) run only in the slow test, i.e. under ``make test-all``.
"""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def _blocks(*, slow: bool) -> list[str]:
    out = []
    for block in BLOCK.findall(README.read_text(encoding="utf-8")):
        first = block.lstrip().splitlines()[0] if block.strip() else ""
        if first.startswith("# not run"):
            continue
        if first.startswith("# slow") and not slow:
            continue
        out.append(block)
    return out


def _run(blocks, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__readme__"}
    for n, block in enumerate(blocks, 1):
        try:
            exec(compile(block, f"README.md block {n}", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the failure message is the point
            pytest.fail(f"README.md python block {n} failed: {type(e).__name__}: {e}")


@pytest.mark.slow  # an end-to-end tour (about 15 s of compiles); CI runs it in test-all
def test_readme_fast_blocks_run(tmp_path, monkeypatch):
    blocks = _blocks(slow=False)
    assert blocks, "README.md has no fast ```python block"
    _run(blocks, tmp_path, monkeypatch)


@pytest.mark.slow
def test_readme_all_blocks_run(tmp_path, monkeypatch):
    blocks = _blocks(slow=True)
    assert len(blocks) > len(_blocks(slow=False)), "README.md has no slow block"
    _run(blocks, tmp_path, monkeypatch)
