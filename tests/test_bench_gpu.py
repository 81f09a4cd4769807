"""The GPU benchmark script: refuses CPU without --dry-run; the dry run writes its table."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "experiments", "bench_gpu.py")


def _run(*args, timeout=600):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


@pytest.mark.slow
def test_refuses_cpu_without_dry_run():
    res = _run("--cases", "ranking")
    assert res.returncode == 2
    assert "refusing to run on CPU" in res.stdout


@pytest.mark.slow
def test_dry_run_writes_table(tmp_path):
    out = tmp_path / "gpu.md"
    res = _run("--dry-run", "--cases", "ranking,knn", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    text = out.read_text()
    assert "| ranking |" in text and "| knn |" in text
    assert "users/s" in text and "skipped" not in text.split("| knn |")[1].split("\n")[0]


@pytest.mark.slow
def test_dry_run_of_every_case_succeeds(tmp_path):
    # every case at tiny sizes, so a case that no longer matches the library's API (a
    # renamed config field, say) fails here rather than on the lent GPU
    out = tmp_path / "gpu.md"
    res = _run("--dry-run", "--out", str(out))
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ")]
    cases = ("ranking", "knn", "probes", "grid", "bpr", "lightgcn")
    for case in cases:
        (row,) = [r for r in rows if r.startswith(f"| {case} |")]
        assert "failed" not in row and "skipped" not in row, row
