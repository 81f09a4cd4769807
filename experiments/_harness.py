"""Shared benchmark harness: timing, peak memory, the matmul rate, ``--quick`` / ``--json``.

Every ``experiments/bench_*.py`` uses these helpers, so all benchmarks time and measure
memory the same way:

* **Timing** (:func:`time_call`): the first call is reported on its own (for JAX it
  includes tracing and XLA compilation); then ``repeats`` further calls are timed and
  their minimum and median wall times are reported, with the process CPU time
  (``time.process_time``, all threads) of the fastest one. On a shared machine the CPU
  time is the steadier figure; ``cpu_s / wall_s`` is the number of cores the call kept
  busy.
* **Peak memory, one way only** (:func:`peak_rss_mb`): every measured case runs in a
  fresh subprocess (:func:`run_worker`) that reports the high-water mark of its own
  resident set, ``VmHWM`` from ``/proc/self/status`` (Linux), next to its resident set
  right after the inputs were built (:func:`current_rss_mb`); the difference is what the
  computation added. ``VmHWM`` belongs to the process's address space, which ``exec``
  replaces, so it starts afresh in each worker. ``getrusage().ru_maxrss`` is *not* used on
  Linux: it is preserved across ``execve``, so a worker would inherit its parent's peak.
  Elsewhere (macOS) ``ru_maxrss`` is the fallback, and the worker is still a fresh process.
  The figure covers the whole process: Python, NumPy/JAX runtimes, inputs and buffers.
  For accelerators, :func:`device_peak_mb` reads XLA's ``peak_bytes_in_use`` instead.
* **Matmul rate** (:func:`matmul_rate`): float32 ``jnp.dot`` of two square matrices, the
  best of a few calls, in GFLOP/s; benchmarks measure it in the same run and report their
  throughput as a fraction of it.
* **Results** (:class:`Results`): rows of named figures, printed and written as JSON
  (``--json PATH``) with the host, load average, JAX version and backend, so runs can be
  collected (``experiments/cpu_baseline.json`` is written this way).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "Results",
    "Timing",
    "base_parser",
    "current_rss_mb",
    "device_peak_mb",
    "emit",
    "matmul_rate",
    "peak_rss_mb",
    "run_worker",
    "time_call",
]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (``VmHWM``; see module doc)."""
    v = _proc_status_mb("VmHWM")
    if v is not None:
        return v
    scale = 1024.0**2 if sys.platform == "darwin" else 1024.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def current_rss_mb() -> float:
    """Current resident memory of this process, MiB (``VmRSS``; else the peak)."""
    v = _proc_status_mb("VmRSS")
    return peak_rss_mb() if v is None else v


def device_peak_mb() -> float | None:
    """XLA's ``peak_bytes_in_use`` of the first JAX device in MiB (None on CPU)."""
    import jax

    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


@dataclasses.dataclass(frozen=True)
class Timing:
    """Wall times of one benchmarked call.

    Attributes:
      first_s: the first call (for JAX: tracing + compilation + one run).
      min_s, median_s: over the ``repeats`` later calls.
      cpu_s: process CPU time (all threads) of the fastest later call.
      times: all later wall times.
    """

    first_s: float
    min_s: float
    median_s: float
    cpu_s: float
    times: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _block(x):
    try:
        import jax
    except ImportError:  # NumPy-only workers
        return x
    return jax.block_until_ready(x)


def time_call(fn: Callable[[], Any], *, repeats: int = 3, warmup: int = 1) -> tuple[Timing, Any]:
    """Time ``fn()``: ``warmup`` calls (the first reported), then ``repeats`` timed ones.

    With ``warmup=0`` (code with nothing to compile, e.g. NumPy) no call is untimed and
    ``first_s`` is the first timed call.

    JAX outputs are waited for (``jax.block_until_ready``) inside each timing.

    Returns:
      (:class:`Timing`, the last call's output).
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1, got {repeats}")
    first = None
    if warmup > 0:
        t0 = time.perf_counter()
        out = _block(fn())
        first = time.perf_counter() - t0
    for _ in range(max(warmup - 1, 0)):
        out = _block(fn())
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        out = _block(fn())
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    best = min(range(repeats), key=walls.__getitem__)
    first = walls[0] if first is None else first
    timing = Timing(first, walls[best], statistics.median(walls), cpus[best], tuple(walls))
    return timing, out


def matmul_rate(size: int = 2048, repeats: int = 5) -> float:
    """Float32 ``jnp.dot`` rate on ``size x size`` matrices, GFLOP/s (best of ``repeats``)."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    f = jax.jit(jnp.dot)
    timing, _ = time_call(lambda: f(a, b), repeats=repeats)
    return 2.0 * size**3 / timing.min_s / 1e9


def machine_info() -> dict[str, Any]:
    """Host, cores, load average, and JAX version/backend when JAX is imported."""
    info: dict[str, Any] = {
        "host": platform.node(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    if "jax" in sys.modules:
        import jax

        info["jax"] = jax.__version__
        info["backend"] = jax.default_backend()
        info["devices"] = [str(d) for d in jax.devices()]
    return info


class Results:
    """Named result rows of one benchmark run, printable and writable as JSON."""

    def __init__(self, benchmark: str, *, quick: bool = False):
        self.benchmark = benchmark
        self.quick = quick
        self.rows: list[dict[str, Any]] = []

    def add(self, case: str, **fields: Any) -> dict[str, Any]:
        """Record one case (``Timing`` values are expanded into their fields)."""
        row: dict[str, Any] = {"case": case}
        for k, v in fields.items():
            if isinstance(v, Timing):
                row.update({f"{k}_{f}": x for f, x in v.as_dict().items() if f != "times"})
            else:
                row[k] = v
        self.rows.append(row)
        return row

    def to_dict(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "quick": self.quick,
            "machine": machine_info(),
            "rows": self.rows,
        }

    def write_json(self, path: str | None) -> None:
        """Write (or merge into) ``path``: one entry per benchmark name."""
        if not path:
            return
        data: dict[str, Any] = {}
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
        data[self.benchmark] = self.to_dict()
        with open(path, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True, default=float)
            f.write("\n")
        print(f"results written to {path} [{self.benchmark}]")


def base_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the flags every benchmark shares: ``--quick``, ``--json``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    p.add_argument("--json", metavar="PATH", default=None, help="merge results into this JSON")
    return p


def emit(result: dict[str, Any], inputs_rss_mb: float | None = None) -> None:
    """Worker side: print ``result`` + this process's peak memory as the last JSON line."""
    result = dict(result)
    result["peak_rss_mb"] = peak_rss_mb()
    if inputs_rss_mb is not None:
        result["inputs_rss_mb"] = inputs_rss_mb
        result["added_rss_mb"] = result["peak_rss_mb"] - inputs_rss_mb
    print(json.dumps(result, default=float))


def run_worker(
    script: str, args: Sequence[str], *, env: dict[str, str] | None = None, timeout=None
) -> dict[str, Any]:
    """Run ``python script *args`` in a fresh process; return its last JSON line.

    The worker must end with :func:`emit`. ``PYTHONPATH`` gets the repository root so
    the worker imports this checkout's ``complemjax``.
    """
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO_ROOT, full_env.get("PYTHONPATH", "")) if p
    )
    if env:
        full_env.update(env)
    cmd = [sys.executable, os.path.abspath(script), *map(str, args)]
    res = subprocess.run(
        cmd, capture_output=True, text=True, env=full_env, check=False, timeout=timeout
    )
    if res.returncode != 0:
        raise RuntimeError(f"worker {' '.join(cmd[1:])} failed:\n{res.stderr[-4000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])
